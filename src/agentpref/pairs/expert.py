"""Expert as chosen (the ETO recipe): ScienceWorld gold paths against failed policy episodes.

The expert episode replays the simulator's gold action sequence through the environment, each
action preceded by a short thought, so it opens with the same prompt as the policy's episodes
and is scored by the same simulator (it must reach 100, else it makes no pair). The rejected
side is a policy episode of the same task that failed (score below `fail_below`), worst first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pydantic import Field

from agentpref.config import validate_options
from agentpref.pairs.base import PairContext, make_pair
from agentpref.pairs.common import CommonOptions, TurnScript, finish, replay, select_tasks
from agentpref.records import Message, Pair, Task, Trajectory

log = logging.getLogger(__name__)

EXPERT_MODEL = "expert"
#: Step limit of an expert replay: gold paths may be longer than the policy's limit.
EXPERT_STEP_LIMIT = 400


class ExpertOptions(CommonOptions):
    per_task: int = Field(
        default=1, ge=1, description="Failed episodes paired with the expert one (worst first)."
    )
    fail_below: float = Field(
        default=100.0, description="A policy episode whose score (0..100) is below this failed."
    )


def env_score(e: Trajectory) -> float:
    """The simulator's score (0..100) of an episode; -1 when not recorded."""
    value = e.reward.breakdown.get("score")
    return float(value) if isinstance(value, (int, float)) else -1.0


def expert_script(task: Task, env_options: dict[str, object]) -> TurnScript:
    """Replies of the gold path, computed on the first turn (never when the store has it)."""
    from agentpref.envs.science import expert_replies, gold_actions

    cache: list[str] = []

    def turns(conversation: list[Message], turn: int) -> str | None:
        if not cache:
            cache.extend(expert_replies(gold_actions(task, env_options)))
        return cache[turn] if turn < len(cache) else None

    return TurnScript(turns)


def play_experts(ctx: PairContext, tasks: Sequence[Task]) -> dict[str, Trajectory]:
    """Expert episodes (tag 'x', kind 'expert'), one per ScienceWorld task."""
    options = dict(ctx.env_options.get("scienceworld") or {})
    scripts = []
    for task in tasks:
        spec = {**task.spec, "step_limit": max(int(task.spec.get("step_limit") or 0),
                                               EXPERT_STEP_LIMIT)}
        scripts.append((task.model_copy(update={"spec": spec}), 0, expert_script(task, options)))
    return {e.task_id: e for e in replay(ctx, scripts, EXPERT_MODEL, tag="x", kind="expert")}


class ExpertChosen:
    """Chosen: the expert (gold path) episode; rejected: the policy's failed episodes."""

    name = "expert"

    def __init__(self, **options: object) -> None:
        self.options: ExpertOptions = validate_options(
            ExpertOptions, dict(options), "strategies.expert.options"
        )

    def make_pairs(
        self, tasks: Sequence[Task], episodes: dict[str, list[Trajectory]], ctx: PairContext
    ) -> list[Pair]:
        failed: dict[str, list[Trajectory]] = {}
        for task in select_tasks(tasks, self.options, ctx):
            if task.env != "scienceworld":
                continue
            bad = [
                e for e in episodes.get(task.id, [])
                if e.outcome != "env_error" and env_score(e) < self.options.fail_below
            ]
            if bad:
                failed[task.id] = bad
        todo = [t for t in tasks if t.id in failed]
        experts = play_experts(ctx, todo)
        pairs: list[Pair] = []
        for task in todo:
            x = experts.get(task.id)
            if x is None or env_score(x) < 100 or x.outcome != "done":
                log.warning("expert: gold path of %s did not reach 100 (%s)", task.id,
                            x.outcome if x else "missing")
                continue
            rejected = sorted(failed[task.id], key=lambda e: (e.score, e.sample_index))
            seen: set[str] = set()
            for e in rejected:
                if x.score - e.score < self.options.min_margin - 1e-12 or e.prompt != x.prompt:
                    continue
                text = "\x00".join(m.content for m in e.continuation)
                if text in seen:
                    continue
                seen.add(text)
                pairs.append(
                    make_pair(task, x, e, self.name, ctx.round,
                              meta={"expert_turns": len(x.continuation) // 2,
                                    "rejected_env_score": env_score(e)})
                )
                if len(seen) >= self.options.per_task:
                    break
        log.info("expert: %d pairs from %d tasks with failed episodes", len(pairs), len(todo))
        return finish(pairs, self.options, ctx)
