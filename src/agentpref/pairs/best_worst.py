"""Best-of-N self-play: the best episode of a task against its worst (RAFT-style pairs)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from agentpref.config import validate_options
from agentpref.pairs.base import PairContext, make_pair
from agentpref.records import Pair, Task, Trajectory


class BestWorstOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_margin: float = Field(default=0.1, ge=0.0, description="Best minus worst must reach this.")
    only_unpaired: bool = Field(default=False, description="Skip tasks that already have a pair.")


def pick_best_worst(
    episodes: Sequence[Trajectory], min_margin: float
) -> tuple[Trajectory, Trajectory] | None:
    """(best, worst) or None when the spread is below `min_margin` (ties make no pair).

    Among equal scores the earliest sample wins both roles, so the choice is deterministic.
    """
    if len(episodes) < 2:
        return None
    ordered = sorted(episodes, key=lambda e: (-e.score, e.sample_index))
    best = ordered[0]
    worst = sorted(episodes, key=lambda e: (e.score, e.sample_index))[0]
    if best.score - worst.score < min_margin - 1e-12:
        return None
    return best, worst


def all_tied(episodes: Sequence[Trajectory], min_margin: float) -> bool:
    """True when no two episodes differ by the margin: sampling more may break the tie."""
    if not episodes:
        return True
    scores = [e.score for e in episodes]
    return max(scores) - min(scores) < min_margin - 1e-12


class BestWorst:
    """Pair the best and the worst of a task's episodes when their margin is large enough."""

    name = "best-worst"

    def __init__(self, **options: object) -> None:
        self.options: BestWorstOptions = validate_options(
            BestWorstOptions, dict(options), "strategies.best-worst.options"
        )

    def make_pairs(
        self, tasks: Sequence[Task], episodes: dict[str, list[Trajectory]], ctx: PairContext
    ) -> list[Pair]:
        pairs = []
        for task in tasks:
            if self.options.only_unpaired and task.id in ctx.paired:
                continue
            picked = pick_best_worst(episodes.get(task.id, []), self.options.min_margin)
            if picked is None:
                continue
            best, worst = picked
            pairs.append(make_pair(task, best, worst, self.name, ctx.round))
        return pairs
