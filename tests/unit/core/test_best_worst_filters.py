import pytest

from agentpref.errors import ConfigError
from agentpref.filters.base import FilterContext
from agentpref.filters.duplicates import DuplicateFilter
from agentpref.filters.length import LengthFilter
from agentpref.filters.margin import MarginFilter
from agentpref.filters.validity import ChosenValidFilter
from agentpref.pairs.base import PairContext
from agentpref.pairs.best_worst import BestWorst, all_tied, pick_best_worst
from agentpref.records import Message, Reward, SamplingParams, Task, Trajectory

TASK = Task(id="t:1", source="test", env="sql", spec={})


def ep(idx, score, text="SELECT name FROM t", valid=True):
    return Trajectory(
        id=f"t:1#r0#s{idx}", task_id="t:1", sample_index=idx, policy="p",
        messages=[Message(role="user", content="q"), Message(role="assistant", content=text)],
        prompt_len=1, reward=Reward(total=score, breakdown={"valid": valid}),
    )


def test_best_vs_worst_with_deterministic_ties():
    eps = [ep(0, 0.5), ep(1, 1.0), ep(2, -0.5), ep(3, 1.0), ep(4, -0.5)]
    best, worst = pick_best_worst(eps, 0.1)
    assert (best.sample_index, worst.sample_index) == (1, 2)


def test_ties_and_small_margins_make_no_pair():
    assert pick_best_worst([ep(0, 1.0), ep(1, 1.0)], 0.1) is None
    assert pick_best_worst([ep(0, 0.5), ep(1, 0.45)], 0.1) is None
    assert pick_best_worst([ep(0, 0.5), ep(1, 0.4)], 0.1) is not None
    assert pick_best_worst([ep(0, 1.0)], 0.0) is None
    assert all_tied([ep(0, -0.5), ep(1, -0.5)], 0.1)
    assert not all_tied([ep(0, -0.5), ep(1, 1.0)], 0.1)


def test_strategy_builds_pair_with_provenance():
    ctx = PairContext(round=0, sampling=SamplingParams())
    pairs = BestWorst(min_margin=0.2).make_pairs([TASK], {"t:1": [ep(0, 1.0), ep(1, -0.25)]}, ctx)
    assert len(pairs) == 1
    p = pairs[0]
    assert p.margin == 1.25 and p.strategy == "best-worst"
    assert p.provenance["chosen"]["episode"] == "t:1#r0#s0"
    assert p.prompt == [Message(role="user", content="q")]
    ctx.paired.add("t:1")
    only = BestWorst(only_unpaired=True)
    assert only.make_pairs([TASK], {"t:1": [ep(0, 1.0), ep(1, -0.25)]}, ctx) == []
    with pytest.raises(ConfigError, match="unknown key 'min_margn'"):
        BestWorst(min_margn=0.1)


def make(chosen="SELECT name FROM t", rejected="SELECT * FROM nowhere", cs=1.0, rs=-0.5,
         valid=True):
    ctx = PairContext(round=0, sampling=SamplingParams())
    eps = [ep(0, cs, chosen, valid), ep(1, rs, rejected)]
    return BestWorst(min_margin=0.0).make_pairs([TASK], {"t:1": eps}, ctx)[0]


def test_filters_each_catch_their_case():
    ctx = FilterContext()
    assert MarginFilter().check(make(), ctx) is None
    assert "margin" in MarginFilter(min_margin=2.0).check(make(), ctx)
    assert LengthFilter().check(make(), ctx) is None
    assert "rejected too short" in LengthFilter().check(make(rejected="SELECT 1"), ctx)
    assert ChosenValidFilter().check(make(), ctx) is None
    assert "not valid" in ChosenValidFilter().check(make(valid=False), ctx)
    dup = DuplicateFilter()
    first = make()
    assert dup.check(first, ctx) is None
    assert dup.check(first, ctx) is None  # the same pair again is not its own duplicate
    twin = first.model_copy(update={"id": "other"})
    assert "duplicate of" in dup.check(twin, ctx)
    spaced = first.model_copy(update={"id": "o2", "chosen": [
        Message(role="assistant", content="SELECT  name\nFROM t")]})
    assert "duplicate of" in dup.check(spaced, ctx)
