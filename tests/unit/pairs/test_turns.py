"""Turn pairs: identical history up to a turn, then different replies with different outcomes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agentpref.errors import ConfigError
from agentpref.pairs.base import PairContext
from agentpref.pairs.turns import DivergentTurns
from agentpref.records import Message, Reward, SamplingParams, Task, Trajectory
from agentpref.registry import lookup
from agentpref.rollout import play

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "envs"))
from dbbench_helpers import answer, build_library, library_tasks, op, scripted, turns_played  # noqa: E402

TASK = Task(id="t:train:1", source="test", env="dbbench")
OPENING = [
    Message(role="user", content="instruction"),
    Message(role="assistant", content="Ok."),
    Message(role="user", content="question"),
]


def episode(i: int, turns: list[str], score: float, outcome: str = "done") -> Trajectory:
    """An episode whose assistant turns are `turns`, each followed by an observation."""
    msgs = list(OPENING)
    for k, t in enumerate(turns):
        msgs.append(Message(role="assistant", content=t))
        if k < len(turns) - 1:
            msgs.append(Message(role="user", content=f"obs of {t}"))
    return Trajectory(
        id=f"{TASK.id}#r0#s{i}", task_id=TASK.id, sample_index=i, policy="p", messages=msgs,
        prompt_len=len(OPENING), reward=Reward(total=score, breakdown={"valid": True}),
        outcome=outcome,
    )


def ctx() -> PairContext:
    return PairContext(round=0, sampling=SamplingParams())


def pairs_of(eps, **options):
    return DivergentTurns(**options).make_pairs([TASK], {TASK.id: eps}, ctx())


def test_registered_under_turns():
    assert lookup("strategy", "turns") is DivergentTurns


def test_pair_at_the_turn_where_histories_part():
    eps = [
        episode(0, ["look", "answer A"], 1.0),
        episode(1, ["look", "answer B"], 0.0),
    ]
    (p,) = pairs_of(eps)
    assert p.meta["divergence_turn"] == 1
    assert p.meta["divergence_message"] == 5
    assert p.prompt == eps[0].messages[:5]
    assert p.prompt[-1].content == "obs of look"
    assert p.chosen == [Message(role="assistant", content="answer A")]
    assert p.rejected == [Message(role="assistant", content="answer B")]
    assert (p.chosen_score, p.rejected_score) == (1.0, 0.0)
    assert p.strategy == "turns" and p.task_id == TASK.id
    assert p.provenance["chosen"]["episode"] == eps[0].id
    assert p.provenance["rejected"]["episode"] == eps[1].id


def test_first_turn_divergence_and_nested_branches():
    eps = [
        episode(0, ["look", "a1"], 1.0),
        episode(1, ["look", "a2"], 0.0),
        episode(2, ["guess"], -0.5),
        episode(3, ["guess"], -0.5),
    ]
    pairs = pairs_of(eps)
    assert [p.meta["divergence_turn"] for p in pairs] == [0, 1]
    first = pairs[0]
    assert first.prompt == OPENING
    assert first.chosen[0].content == "look" and first.rejected[0].content == "guess"
    # Each reply is valued by the mean outcome of the episodes that took it.
    assert (first.chosen_score, first.rejected_score) == (0.5, -0.5)
    assert (first.meta["chosen_episodes"], first.meta["rejected_episodes"]) == (2, 2)
    assert pairs_of(eps, min_turn=1) == pairs[1:]
    assert [p.meta["divergence_turn"] for p in pairs_of(eps, max_pairs_per_task=1)] == [0]


def test_no_pair_without_a_margin_or_a_real_divergence():
    same_outcome = [episode(0, ["look", "a"], 1.0), episode(1, ["look", "b"], 1.0)]
    assert pairs_of(same_outcome) == []
    small = [episode(0, ["look", "a"], 1.0), episode(1, ["look", "b"], 0.95)]
    assert pairs_of(small) == []
    assert len(pairs_of(small, min_margin=0.05)) == 1
    identical = [episode(0, ["look", "a"], 1.0), episode(1, ["look", "a"], 0.0)]
    assert pairs_of(identical) == []
    # Histories that part at an observation (not a reply) give no pair there.
    a, b = episode(0, ["look", "a"], 1.0), episode(1, ["look", "b"], 0.0)
    b_msgs = list(b.messages)
    b_msgs[4] = Message(role="user", content="a different observation")
    b = b.model_copy(update={"messages": b_msgs})
    assert pairs_of([a, b]) == []


def test_env_errors_eval_only_tasks_and_ids():
    eps = [episode(0, ["look", "a"], 1.0), episode(1, ["look", "b"], -0.5, outcome="env_error")]
    assert pairs_of(eps) == []
    eval_task = TASK.model_copy(update={"eval_only": True})
    good = [episode(0, ["look", "a"], 1.0), episode(1, ["look", "b"], 0.0)]
    assert DivergentTurns().make_pairs([eval_task], {TASK.id: good}, ctx()) == []
    again = pairs_of(list(reversed(good)))
    assert [p.id for p in again] == [p.id for p in pairs_of(good)]
    with pytest.raises(ConfigError, match="unknown key 'margin'"):
        DivergentTurns(margin=0.2)


def test_turn_pairs_from_played_dbbench_episodes(tmp_path):
    """K episodes share the gold query, then part: right answer, wrong answer, another query."""
    task = library_tasks(build_library(tmp_path / "lib.sqlite"))[1]  # books costing 9.0
    right = answer(["Guards! Guards!", "Small Gods"])

    def fn(conv, i):
        n = turns_played(conv)
        if n == 0:
            return op("SELECT title FROM books WHERE price = 9.0")
        if n == 1:
            return [right, right, answer(["Mort"]), op("SELECT count(*) FROM books")][i]
        return right

    eps = play(scripted(fn), [(task, i) for i in range(4)], SamplingParams())
    assert [e.reward.breakdown["success"] for e in eps] == [True, True, False, True]
    (p,) = DivergentTurns().make_pairs([task], {task.id: eps}, ctx())
    assert p.meta["divergence_turn"] == 1
    assert p.prompt == eps[0].messages[:5]
    assert p.prompt[-1].content == "[('Guards! Guards!',), ('Small Gods',)]"
    assert p.chosen == [Message(role="assistant", content=right)]
    assert p.rejected[0].content.endswith('["Mort"]')
    assert p.chosen_score == 1.0 and p.rejected_score == 0.0
    assert p.provenance["rejected"]["episode"] == eps[2].id
