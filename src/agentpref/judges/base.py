"""The judge contract: look at pairs and say which side an LLM prefers.

A judge returns one Judgement per pair. Pairwise judges ask twice, with the chosen side shown
first and then second, and give a verdict only when both orders agree: position bias (a
judge that always says "A") shows up as "inconsistent", never as agreement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from agentpref.records import Judgement, Pair, Task


class Judge(Protocol):
    name: str

    def judge(self, pairs: Sequence[Pair], task_lookup: Mapping[str, Task]) -> list[Judgement]: ...


def combine(first: str, second: str) -> str:
    """Verdict from the two orders: chosen shown as A (`first`), then as B (`second`)."""
    if first == "A" and second == "B":
        return "chosen"
    if first == "B" and second == "A":
        return "rejected"
    return "inconsistent"


def _rate(agree: int, consistent: int) -> float | None:
    return round(agree / consistent, 4) if consistent else None


def _stats(judgements: Sequence[Judgement]) -> dict[str, Any]:
    consistent = [j for j in judgements if j.verdict != "inconsistent"]
    agree = sum(1 for j in consistent if j.verdict == "chosen")
    return {
        "judged": len(judgements),
        "consistent": len(consistent),
        "agree": agree,
        "consistency": _rate(len(consistent), len(judgements)),
        "agreement": _rate(agree, len(consistent)),
    }


def agreement(
    judgements: Sequence[Judgement], pairs: Mapping[str, Pair] | Sequence[Pair] = ()
) -> dict[str, Any]:
    """How often the judge agrees with the verifier's label, overall, by source and strategy.

    The verifier's label is the pair's orientation (chosen beat rejected), so agreement is the
    share of consistent verdicts that are "chosen"; inconsistent verdicts count only toward
    `consistency`. Pairs not found in `pairs` are grouped under source "?".
    """
    by_id = dict(pairs) if isinstance(pairs, Mapping) else {p.id: p for p in pairs}
    groups: dict[str, dict[str, list[Judgement]]] = {"source": {}, "strategy": {}}
    for j in judgements:
        p = by_id.get(j.pair_id)
        groups["source"].setdefault(p.source if p else "?", []).append(j)
        groups["strategy"].setdefault(p.strategy if p else "?", []).append(j)
    return {
        **_stats(judgements),
        "by_source": {k: _stats(v) for k, v in sorted(groups["source"].items())},
        "by_strategy": {k: _stats(v) for k, v in sorted(groups["strategy"].items())},
    }
