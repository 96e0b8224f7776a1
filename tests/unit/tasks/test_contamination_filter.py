"""The `contamination` pair filter: the task guard applied to a pair's text."""

from __future__ import annotations

import pytest

from agentpref import registry
from agentpref.errors import ConfigError
from agentpref.filters.base import FilterContext
from agentpref.records import Pair, messages


def _pair(prompt: str, chosen: str, rejected: str = "SELECT 1") -> Pair:
    return Pair(
        id="p",
        task_id="t",
        source="s",
        strategy="best-worst",
        prompt=messages(("user", prompt)),
        chosen=messages(("assistant", chosen)),
        rejected=messages(("assistant", rejected)),
        chosen_score=1.0,
        rejected_score=0.0,
    )


def test_filter_drops_alfworld_pairs_and_keeps_sql_pairs() -> None:
    cls = registry.lookup("filter", "contamination")
    f = cls()
    ctx = FilterContext()
    assert f.check(_pair("How many singers are there?", "SELECT count(*) FROM singer"), ctx) is None
    reason = f.check(
        _pair("Your task is to: put a hot apple in fridge.", "ACTION: go to fridge 1"), ctx
    )
    assert reason is not None and "alfworld_goal" in reason and "alfworld_action" in reason
    only_prompt = cls(sides=["chosen"])
    assert only_prompt.check(_pair("put a hot apple in fridge.", "OK"), ctx) is None


def test_filter_options_are_validated() -> None:
    cls = registry.lookup("filter", "contamination")
    with pytest.raises(ConfigError, match="filters.contamination.options"):
        cls(sides=["everything"])
