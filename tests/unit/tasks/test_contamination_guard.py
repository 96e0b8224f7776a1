"""The contamination guard on planted ALFWorld/TextWorld/AgentBench items and on clean ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentpref.errors import ConfigError, DataError
from agentpref.tasks.contamination import ContaminationGuard, record_text, screen

# Written in ALFWorld's style (the guard is never given ALFWorld data).
PLANTED = {
    "Your task is to: put a clean mug in coffeemachine.": "alfworld_goal",
    "put some spraybottle on toilet": "alfworld_goal",
    "heat some egg and put it in diningtable.": "alfworld_goal",
    "cool some pan and put it in stoveburner": "alfworld_goal",
    "examine the alarmclock with the desklamp": "alfworld_goal",
    "look at bowl under the desklamp": "alfworld_goal",
    "find two pillow and put them in sofa.": "alfworld_goal",
    "put two cellphone in sofa.": "alfworld_goal",
    "put a hot apple in fridge.": "alfworld_goal",
    "clean some soapbar and put it in countertop.": "alfworld_goal",
    "put a saltshaker in drawer.": "alfworld_goal",
    "You are in the middle of a room. Looking quickly around you, you see a cabinet 6, "
    "a countertop 1, a fridge 1.": "alfworld_room",
    "Observation: you see a cabinet 4 and a drawer 2.": "alfworld_receptacles",
    "> go to countertop 1": "alfworld_action",
    "take mug 1 from countertop 2": "alfworld_action",
    "THOUGHT: warm it first.\n ACTION: heat egg 1 with microwave 1": "alfworld_action",
    "-= Welcome to TextWorld, ALFRED! =-": "textworld_banner",
    "json_2.1.1/train/pick_and_place_simple-Mug-None-CoffeeMachine-10/"
    "trial_T20190909_070318_417738/game.tw-pddl": "alfworld_path",
    "see trial_T20190907_212755_456877 for details": "alfworld_trial_id",
    (
        "Interact with a household to solve a task. Imagine you are an intelligent agent in a "
        "household environment and your target is to perform actions to complete the task goal."
    ): "agentbench_alfworld_instruction",
    "I will ask you a question, then you should help me operate a MySQL database with SQL "
    "to answer the question.": "agentbench_dbbench_instruction",
}

CLEAN = [
    # ScienceWorld
    "Your task is to boil water. For compounds without a boiling point, combusting the "
    "substance is also acceptable. First, focus on the substance. Then, take actions that "
    "will cause it to change its state of matter.",
    "Your task is to find a(n) animal. First, focus on the thing. Then, move it to the red "
    "box in the kitchen.",
    "This room is called the kitchen. In it, you see: a fridge. The fridge door is closed. "
    "a counter. On the counter is: a bowl, a drawer. a sink, which is turned off. a stove.",
    "Seeds are in the bedroom. You see flower pot 1, flower pot 2 and flower pot 3.",
    "move seed jar to flower pot 2",
    # SQL and prose
    "How many singers do we have?",
    "List the names of products that were never ordered.",
    "Put the book on the shelf in the living room.",
    # the DB Bench protocol itself (our own episodes follow it) is not contamination
    "Action: Operation\n```sql\nSELECT * FROM t;\n```",
    "The name of this table is Players, and the headers of this table are Name,Team,Age.",
    "i need a long clip-in hair extension, and price lower than 40.00 dollars",
]


@pytest.mark.parametrize("text,rule", list(PLANTED.items()))
def test_planted_items_are_caught_with_their_rule(text: str, rule: str) -> None:
    verdict = screen(text)
    assert not verdict.clean
    assert rule in verdict.reasons
    assert len(verdict.evidence) == len(verdict.reasons)


@pytest.mark.parametrize("text", CLEAN)
def test_clean_items_stay(text: str) -> None:
    verdict = screen(text)
    assert verdict.clean, verdict.reasons
    assert verdict.reasons == []


def test_no_false_positive_on_real_text_to_sql_questions(shared_data: Path) -> None:
    questions = [r["question"] for r in json.loads((shared_data / "spider/dev.json").read_text())]
    for name in ("sparc/dev.json", "cosql/cosql_dev.json"):
        for rec in json.loads((shared_data / name).read_text()):
            questions += [t["utterance"] for t in rec["interaction"]]
    assert len(questions) > 1500
    flagged = [q for q in questions if not screen(q).clean]
    assert flagged == []


def test_blocklist_ngram_overlap(tmp_path: Path) -> None:
    block = tmp_path / "block.txt"
    block.write_text(
        "the quick brown fox jumps over the lazy dog near the river bank today\n"
        "a short secret test item\n"
        "two words\n"
    )
    guard = ContaminationGuard({"blocklists": [str(block)], "ngram": 8})
    long_hit = guard.screen("Story: The quick brown fox jumps over the lazy dog near a tree.")
    assert "blocklist_overlap" in long_hit.reasons
    assert "blocklist_overlap" in guard.screen("Here is A SHORT secret test item, again").reasons
    assert guard.screen("two words only").clean  # lines under min_line_words are ignored
    assert guard.screen("the quick brown fox sleeps").clean
    strict = ContaminationGuard({"blocklists": [str(block)], "ngram": 8, "min_matches": 3})
    assert strict.screen("the quick brown fox jumps over the lazy dog").clean


def test_blocklist_jsonl_uses_record_text(tmp_path: Path) -> None:
    block = tmp_path / "block.jsonl"
    block.write_text(
        json.dumps(
            {
                "conversations": [
                    {
                        "from": "human",
                        "value": "count the purple widgets stored in the northern warehouse please",
                    }
                ]
            }
        )
        + "\n"
    )
    guard = ContaminationGuard({"blocklists": [str(block)], "ngram": 6})
    assert not guard.screen(
        "Could you count the purple widgets stored in the northern warehouse"
    ).clean


def test_bad_guard_options_and_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'ngrams'"):
        ContaminationGuard({"ngrams": 5})
    with pytest.raises(DataError, match="does not exist"):
        ContaminationGuard({"blocklists": [str(tmp_path / "nope.txt")]})
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(DataError, match="line 1"):
        ContaminationGuard({"blocklists": [str(bad)]})


def test_record_text_layouts() -> None:
    assert record_text({"text": "hello"}) == "hello"
    conv = {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]}
    assert record_text(conv) == "a\nb"
    assert record_text({"messages": [{"role": "user", "content": "c"}]}) == "c"
    assert "x" in record_text({"prompt": [{"role": "user", "content": "x"}], "n": 1})
