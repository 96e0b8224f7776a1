"""Held-out evaluation: tasks played greedily, scored by their own verifiers.

Metrics per environment:
- `sql` (single turn): execution accuracy, the share of tasks whose query result matched the
  gold result (`breakdown["match"]`);
- `dbbench` (multi-turn): success rate (`breakdown["success"]`), overall and by task kind
  (`spec["kind"]`: query, insert, update, delete), plus DB Bench's reported figure, the mean of
  the per-kind rates;
- `scienceworld`: mean score 0..100 (`breakdown["score"]`) and the share of tasks solved;
- any other environment: mean reward.
Every environment also reports its mean reward and how many tasks it held. An episode that
crashed or never answered counts as a failure (score 0), never as a skipped task.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentpref.policies.base import Policy
from agentpref.records import SamplingParams, Task, Trajectory
from agentpref.rollout import play

log = logging.getLogger(__name__)

#: The headline metric of each environment (what a side-by-side table shows first).
HEADLINE = {
    "sql": "execution_accuracy",
    "dbbench": "success_rate",
    "scienceworld": "mean_score",
}


class EvalOptions(BaseModel):
    """Evaluation options (recipe section `evaluate`)."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(default=256, ge=1, description="Tokens per reply.")
    max_turns: int = Field(default=64, ge=1, description="Turns per episode at most.")
    batch_size: int = Field(default=64, ge=1, description="Episodes played together.")
    limit: int | None = Field(default=None, ge=1, description="Evaluate the first N tasks only.")
    seed: int = 0


class EvalResult(BaseModel):
    """Metrics of one policy on a set of held-out tasks."""

    model_config = ConfigDict(extra="forbid")

    policy: str
    tasks: int
    metrics: dict[str, dict[str, Any]] = Field(
        description="Per environment: n, mean_reward and its own metrics (see module doc)."
    )
    per_task: list[dict[str, Any]] = Field(
        default_factory=list, description="task_id, env, kind, reward, success, score, outcome."
    )
    episodes: list[Trajectory] = Field(default_factory=list, exclude=True)

    def flat(self) -> dict[str, float]:
        """'env/metric' -> value, by-kind rates as 'dbbench/success_rate/insert'."""
        out: dict[str, float] = {}
        for env, m in self.metrics.items():
            for key, value in m.items():
                if isinstance(value, dict):
                    for sub, v in value.items():
                        out[f"{env}/{key}/{sub}"] = float(v)
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    out[f"{env}/{key}"] = float(value)
        return out

    def headline(self) -> dict[str, float]:
        """Each environment's main metric."""
        return {
            env: float(m[HEADLINE.get(env, "mean_reward")])
            for env, m in self.metrics.items()
            if m.get(HEADLINE.get(env, "mean_reward")) is not None
        }


def _task_row(task: Task, episode: Trajectory) -> dict[str, Any]:
    b = episode.reward.breakdown
    row: dict[str, Any] = {
        "task_id": task.id,
        "env": task.env,
        "reward": float(episode.reward.total),
        "outcome": episode.outcome,
    }
    if task.env == "sql":
        row["success"] = bool(b.get("match", False))
    elif task.env == "dbbench":
        row["kind"] = str(task.spec.get("kind") or b.get("kind") or "query").lower()
        row["success"] = bool(b.get("success", False))
    elif task.env == "scienceworld":
        score = b.get("score")
        row["score"] = float(score) if isinstance(score, (int, float)) else 0.0
        row["success"] = row["score"] >= 100.0
    return row


def _rate(rows: list[dict[str, Any]]) -> float:
    return round(sum(bool(r.get("success")) for r in rows) / len(rows), 4) if rows else 0.0


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-task rows -> per-environment metrics."""
    by_env: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_env[r["env"]].append(r)
    metrics: dict[str, dict[str, Any]] = {}
    for env, items in sorted(by_env.items()):
        m: dict[str, Any] = {
            "n": len(items),
            "mean_reward": round(sum(r["reward"] for r in items) / len(items), 4),
        }
        if env == "sql":
            m["execution_accuracy"] = _rate(items)
        elif env == "dbbench":
            m["success_rate"] = _rate(items)
            kinds: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for r in items:
                kinds[r["kind"]].append(r)
            m["success_rate_by_kind"] = {k: _rate(v) for k, v in sorted(kinds.items())}
            m["n_by_kind"] = {k: len(v) for k, v in sorted(kinds.items())}
            m["mean_of_kinds"] = round(sum(m["success_rate_by_kind"].values()) / len(kinds), 4)
        elif env == "scienceworld":
            m["mean_score"] = round(sum(r["score"] for r in items) / len(items), 2)
            m["solved_rate"] = _rate(items)
        metrics[env] = m
    return metrics


def evaluate(
    tasks: Sequence[Task],
    policy: Policy,
    env_options: dict[str, dict[str, Any]] | None = None,
    options: EvalOptions | None = None,
    round: int = 0,
    on_done: Callable[[list[Trajectory]], None] | None = None,
) -> EvalResult:
    """Play each task once, greedily (temperature 0, n=1), and score it by its environment."""
    opts = options or EvalOptions()
    chosen = list(tasks)[: opts.limit] if opts.limit else list(tasks)
    sampling = SamplingParams(
        n=1, temperature=0.0, top_p=1.0, max_new_tokens=opts.max_new_tokens, seed=opts.seed
    )
    episodes = play(
        policy,
        [(t, 0) for t in chosen],
        sampling,
        env_options=env_options,
        round=round,
        tag="e",
        max_turns=opts.max_turns,
        batch_size=opts.batch_size,
        on_done=on_done,
    )
    by_id = {t.id: t for t in chosen}
    rows = [_task_row(by_id[e.task_id], e) for e in episodes]
    result = EvalResult(
        policy=policy.name,
        tasks=len(chosen),
        metrics=summarise(rows),
        per_task=rows,
        episodes=episodes,
    )
    log.info("evaluated %s on %d tasks: %s", policy.name, len(chosen), result.headline())
    return result


def side_by_side(results: dict[str, EvalResult]) -> list[dict[str, Any]]:
    """One row per metric, one column per labelled result (e.g. base, adapter)."""
    keys: list[str] = []
    flats = {label: r.flat() for label, r in results.items()}
    for flat in flats.values():
        keys.extend(k for k in flat if k not in keys)
    return [{"metric": k, **{label: flat.get(k) for label, flat in flats.items()}} for k in keys]


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of `side_by_side` rows."""
    if not rows:
        return "no metrics"
    cols = list(rows[0])
    cells = [[str(c) for c in cols]] + [
        [r["metric"]] + ["-" if r[c] is None else f"{r[c]:.4g}" for c in cols[1:]] for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells
    )


def write_result(
    result: EvalResult, path: Path, label: str, adapter: str | None = None, round: int = 0
) -> Path:
    """Write one evaluation as JSON (label: base, adapter, round_1, ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"label": label, "adapter": adapter, "round": round, **result.model_dump(mode="json")}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path
