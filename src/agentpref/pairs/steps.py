"""Step-level pairs by branching (Step-DPO for agent episodes).

At a turn t of a policy episode: restore the state by replaying the first t replies (the
environment does it at reset from `spec["prefix"]`), sample several alternative next turns with
the policy, roll each alternative out `rollouts` times with the policy, and take an
alternative's value as the mean final environment score (0..1) of its rollouts. The best and
the worst alternative make a pair when their values differ by at least `min_margin`.

The pair's prompt is the history up to turn t; chosen and rejected are single assistant turns,
so no environment text is in them. `meta` records t, every alternative's value, the rollout
count and the source episode. A rollout whose replayed history differs from the source
episode (a non-deterministic environment) is not used.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from agentpref.config import validate_options
from agentpref.errors import ConfigError
from agentpref.pairs.base import PairContext, make_pair
from agentpref.pairs.common import CommonOptions, finish, select_tasks
from agentpref.records import Message, Pair, Task, Trajectory

log = logging.getLogger(__name__)

#: Environments whose reset replays `spec["prefix"]` (the state-restoring replay).
BRANCHABLE = ("scienceworld",)


class StepOptions(CommonOptions):
    """`min_margin` (inherited) is the least value gap between best and worst."""

    alternatives: int = Field(default=4, ge=2, description="Next turns sampled at each branch.")
    rollouts: int = Field(default=2, ge=1, description="Rollouts per alternative.")
    branch_points: int = Field(
        default=2, ge=1, description="Turns branched per source episode, evenly spaced."
    )
    at_turns: list[int] | None = Field(
        default=None, description="Branch exactly at these turn indices (0 = first reply)."
    )
    episodes_per_task: int = Field(
        default=1, ge=1, description="Source episodes per task, lowest score first."
    )
    include_original: bool = Field(
        default=True, description="The source episode's own reply is one of the alternatives."
    )


def assistant_positions(messages: Sequence[Message]) -> list[int]:
    return [i for i, m in enumerate(messages) if m.role == "assistant"]


def spread(n: int, k: int) -> list[int]:
    """k indices evenly spaced over range(n)."""
    if k >= n:
        return list(range(n))
    return sorted({(i * n) // k for i in range(k)})


def value_of(e: Trajectory) -> float:
    """Final environment score in [0, 1] (falls back to the reward total)."""
    value = e.reward.breakdown.get("env_score")
    return float(value) if isinstance(value, (int, float)) else float(e.score)


def branch_turn(e: Trajectory) -> dict[str, Any]:
    """The heuristic breakdown of a rollout's branched turn (the env records it in meta)."""
    info = e.meta.get("branch_turn")
    return dict(info) if isinstance(info, dict) else {}


class _Branch:
    def __init__(self, task: Task, source: Trajectory, turn: int, history: list[Message],
                 candidates: list[str]) -> None:
        self.task = task
        self.source = source
        self.turn = turn
        self.history = history
        self.candidates = candidates
        self.tasks: list[Task] = []


class StepBranching:
    """Pairs of single next turns at branch points, valued by real rollouts."""

    name = "steps"

    def __init__(self, **options: object) -> None:
        self.options: StepOptions = validate_options(
            StepOptions, dict(options), "strategies.steps.options"
        )

    def make_pairs(
        self, tasks: Sequence[Task], episodes: dict[str, list[Trajectory]], ctx: PairContext
    ) -> list[Pair]:
        if ctx.policy is None:
            raise ConfigError("strategy 'steps' needs the policy to sample alternatives")
        opts = self.options
        branches: list[_Branch] = []
        for task in select_tasks(tasks, opts, ctx):
            if task.env not in BRANCHABLE:
                continue
            sources = sorted(
                (e for e in episodes.get(task.id, []) if e.outcome != "env_error"),
                key=lambda e: (e.score, e.sample_index),
            )[: opts.episodes_per_task]
            for e in sources:
                branches.extend(self._branch_points(task, e, ctx))
        if not branches:
            return []
        jobs: list[tuple[Task, int]] = []
        for b in branches:
            prefix = [m.content for m in b.history[b.source.prompt_len :] if m.role == "assistant"]
            for j, cand in enumerate(b.candidates):
                spec = {**b.task.spec, "prefix": [*prefix, cand]}
                bt = b.task.model_copy(update={"id": f"{b.task.id}~t{b.turn}a{j}", "spec": spec})
                b.tasks.append(bt)
                jobs.extend((bt, r) for r in range(opts.rollouts))
        played = ctx.play(ctx.policy, jobs, tag="b", kind="branch")
        by_task: dict[str, list[Trajectory]] = {}
        for ep in played:
            by_task.setdefault(ep.task_id, []).append(ep)
        pairs = [p for b in branches if (p := self._pair(b, by_task, ctx)) is not None]
        log.info("steps: %d pairs from %d branch points (%d rollouts)",
                 len(pairs), len(branches), len(jobs))
        return finish(pairs, opts, ctx)

    def _branch_points(self, task: Task, e: Trajectory, ctx: PairContext) -> list[_Branch]:
        opts = self.options
        positions = assistant_positions(e.continuation)
        if not positions:
            return []
        if opts.at_turns is not None:
            turns = [t for t in opts.at_turns if 0 <= t < len(positions)]
        else:
            turns = spread(len(positions), opts.branch_points)
        out = []
        for t in turns:
            history = list(e.prompt) + list(e.continuation[: positions[t]])
            sampling = ctx.sampling.model_copy(
                update={"n": opts.alternatives, "seed": ctx.sampling.seed + 7919 * t + 1}
            )
            replies = ctx.policy.generate([history], sampling)[0]
            texts = [c.text for c in replies]
            if opts.include_original:
                texts.insert(0, e.continuation[positions[t]].content)
            unique: list[str] = []
            for text in texts:
                if text.strip() not in {u.strip() for u in unique}:
                    unique.append(text)
            if len(unique) < 2:
                continue
            out.append(_Branch(task, e, t, history, unique))
        return out

    def _pair(
        self, b: _Branch, by_task: dict[str, list[Trajectory]], ctx: PairContext
    ) -> Pair | None:
        values: list[float | None] = []
        reps: list[Trajectory | None] = []
        diverged = 0
        for bt in b.tasks:
            eps = [
                ep for ep in by_task.get(bt.id, [])
                if ep.outcome != "env_error" and ep.messages[: len(b.history)] == b.history
            ]
            diverged += len(by_task.get(bt.id, [])) - len(eps)
            values.append(sum(value_of(ep) for ep in eps) / len(eps) if eps else None)
            reps.append(eps[0] if eps else None)
        if diverged:
            log.warning("steps: %s turn %d: %d rollouts unusable (diverged or crashed)",
                        b.task.id, b.turn, diverged)
        scored = [(v, j) for j, v in enumerate(values) if v is not None]
        if len(scored) < 2:
            return None
        best_v, best = max(scored, key=lambda x: (x[0], -x[1]))
        worst_v, worst = min(scored, key=lambda x: (x[0], x[1]))
        if best == worst or best_v - worst_v < self.options.min_margin - 1e-12:
            return None
        chosen_ep, rejected_ep = reps[best], reps[worst]
        assert chosen_ep is not None and rejected_ep is not None
        meta = {
            "turn": b.turn,
            "values": [None if v is None else round(v, 6) for v in values],
            "chosen_index": best,
            "rejected_index": worst,
            "rollouts": self.options.rollouts,
            "alternatives": len(b.candidates),
            "source_episode": b.source.id,
        }
        pair = make_pair(
            b.task, chosen_ep, rejected_ep, self.name, ctx.round,
            prompt=b.history,
            chosen_messages=[Message(role="assistant", content=b.candidates[best])],
            rejected_messages=[Message(role="assistant", content=b.candidates[worst])],
            meta=meta,
        )
        # The turn itself (not the whole rollout) is what each side is judged on.
        provenance = dict(pair.provenance)
        for side, ep, v in (("chosen", chosen_ep, best_v), ("rejected", rejected_ep, worst_v)):
            info = dict(provenance[side])
            info["breakdown"] = {**branch_turn(ep), "value": v}
            provenance[side] = info
        return pair.model_copy(
            update={"chosen_score": best_v, "rejected_score": worst_v, "provenance": provenance}
        )
