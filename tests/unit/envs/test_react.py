"""The ReAct protocol pieces and the ReAct heuristic on hand-made replies (no Java)."""

from __future__ import annotations

import pytest

from agentpref.envs.react import (
    RepeatTracker,
    format_reply,
    parse_reply,
    render_actions,
    similarity,
    snap_action,
)
from agentpref.records import Reward
from agentpref.rewards.react import (
    episode_reward,
    format_score,
    reasoning_score,
    turn_reward,
)

VALID = ["open door to kitchen", "go to kitchen", "pick up thermometer", "look around",
         "focus on red box", "move orange to red box"]


def test_thought_then_action() -> None:
    p = parse_reply("THOUGHT: The kitchen is next door.\nACTION: Open door to kitchen")
    assert p.thought == "The kitchen is next door."
    assert p.action == "open door to kitchen"
    assert p.has_thought_tag and p.well_formed


def test_action_alone_and_cleanup() -> None:
    p = parse_reply("ACTION: `go to kitchen`.")
    assert p.action == "go to kitchen" and p.thought == "" and p.well_formed
    assert not p.has_thought_tag


def test_action_is_first_line_after_first_tag() -> None:
    p = parse_reply("I think so.\nAction: look around\nthen more text\nACTION: wait")
    assert p.action == "look around"
    assert p.thought == "I think so."
    assert not p.well_formed  # untagged preamble, trailing text, two ACTION tags


def test_no_action_and_empty_action() -> None:
    assert parse_reply("THOUGHT: I am not sure what to do.").action is None
    assert parse_reply("ACTION:   \n").action is None


def test_similarity_orders_candidates() -> None:
    assert similarity("go to kitchen", "go to kitchen") == pytest.approx(1.0)
    assert similarity("go kitchen", "go to kitchen") > similarity("go kitchen", "look around")
    assert similarity("go to the kitchen", "go to kitchen") == pytest.approx(1.0)
    assert similarity("", "go to kitchen") == 0.0


def test_snap_exact_near_miss_and_far() -> None:
    assert snap_action("go to kitchen", VALID) == ("go to kitchen", 1.0)
    assert snap_action("open the door to the kitchen", VALID)[0] == "open door to kitchen"
    snapped, score = snap_action("go kitchen", VALID)
    assert snapped == "go to kitchen" and 0.4 <= score < 1.0
    assert snap_action("pick thermometer up", VALID)[0] == "pick up thermometer"
    assert snap_action("move orange to box", VALID)[0] == "move orange to red box"
    assert snap_action("dance wildly", VALID)[0] is None
    assert snap_action("go to kitchen", []) == (None, 0.0)


def test_repeat_tracker_fires_on_third_identical() -> None:
    t = RepeatTracker(3)
    assert not t.add("ACTION: wait")
    assert not t.add("ACTION: wait ")
    assert t.add("ACTION: wait")
    t2 = RepeatTracker(3)
    assert not any(t2.add(r) for r in ["a", "a", "b", "a", "a"])


def test_render_lists_few_actions_one_per_line() -> None:
    block = render_actions(VALID)
    assert block.splitlines()[0] == "AVAILABLE ACTIONS:"
    assert block.splitlines()[1:] == VALID


def test_render_many_actions_as_templates_and_objects() -> None:
    many = [f"move obj{i} to obj{j}" for i in range(40) for j in range(40)]
    objects = [f"obj{i}" for i in range(100)]
    block = render_actions(many, templates=["look around", "move OBJ to OBJ"], objects=objects,
                           max_objects=20)
    lines = block.splitlines()
    assert len(lines) == 4  # header, two templates, objects
    assert lines[1:3] == ["look around", "move OBJ to OBJ"]
    assert lines[3].startswith("OBJECTS: obj0, obj1") and lines[3].endswith("(80 more)")


def test_format_reply_round_trips() -> None:
    p = parse_reply(format_reply("go to kitchen", "I should go."))
    assert (p.thought, p.action, p.well_formed) == ("I should go.", "go to kitchen", True)


# -- the heuristic -------------------------------------------------------------------------


def test_format_component() -> None:
    assert format_score(parse_reply("THOUGHT: go there.\nACTION: go to kitchen")) == 1.0
    assert format_score(parse_reply("ACTION: go to kitchen")) == 0.75
    assert format_score(parse_reply("Sure!\nACTION: go to kitchen\nDone.")) == 0.5
    assert format_score(parse_reply("I will go to the kitchen.")) == 0.0


def test_reasoning_component() -> None:
    context = "This room is called the hallway. A door to the kitchen (that is closed)."
    good, checks = reasoning_score("The kitchen door is closed, so I open it first.", context)
    assert good == pytest.approx(1.0) and all(checks.values())
    short, checks = reasoning_score("Open it.", context)
    assert not checks["length_ok"] and short < 1.0
    ungrounded, checks = reasoning_score("Bananas are yellow and very tasty fruits.", context)
    assert not checks["grounded"] and ungrounded == pytest.approx(2 / 3)
    earlier = ["The kitchen door is closed, so I open it first."]
    stale, checks = reasoning_score(earlier[0], context, earlier)
    assert not checks["fresh"] and stale == pytest.approx(2 / 3)
    assert reasoning_score("", context)[0] == 0.0


def test_turn_reward_weights() -> None:
    context = "A door to the kitchen (that is closed)."
    full = turn_reward(
        parse_reply("THOUGHT: The kitchen door is closed, so I open it.\nACTION: open door"),
        "accepted", context,
    )
    assert full.total == pytest.approx(1.0)
    assert full.breakdown["valid"] is True
    snapped = turn_reward(parse_reply("ACTION: opn door"), "snapped", context)
    # format 0.75 * 0.4 + validity 0.5 * 0.3 + no thought 0 * 0.3
    assert snapped.total == pytest.approx(0.3 + 0.15)
    missing = turn_reward(parse_reply("no idea"), "missing", context)
    assert missing.breakdown["valid"] is False and missing.breakdown["format"] == 0.0


def test_episode_reward_combines_score_and_heuristic() -> None:
    turns = [Reward(total=1.0, breakdown={"format": 1.0, "validity": 1.0, "reasoning": 1.0}),
             Reward(total=0.5, breakdown={"format": 0.5, "validity": 1.0, "reasoning": 0.0})]
    r = episode_reward(50, turns, score_weight=1.0, heuristic_weight=0.2, valid=True)
    assert r.total == pytest.approx(0.5 + 0.2 * 0.75)
    assert r.breakdown["env_score"] == 0.5 and r.breakdown["heuristic"] == 0.75
    assert r.breakdown["format"] == 0.75 and r.breakdown["valid"] is True
    failed = episode_reward(-100, turns, score_weight=1.0, heuristic_weight=0.0, valid=True)
    assert failed.total == 0.0 and failed.breakdown["score"] == -100
