"""Iterative DPO: N rounds of sample -> pair -> train -> evaluate, each round sampling from the
newest policy (the base model plus the latest adapter).

Every stage leaves a mark in the run store, so a killed run resumes between and within rounds:
sampling and pairing resume through the store's deterministic ids; a round's training and
evaluation run once and are skipped when their marks are there.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from agentpref.config import Recipe, validate_options
from agentpref.pipeline import LazyPolicy, Run
from agentpref.policies.base import Policy

log = logging.getLogger(__name__)


def _eval_tasks(run: Run) -> list[Any]:
    return run.store.tasks(split="eval")


def _evaluate(run: Run, policy: Policy, label: str, adapter: str | None, round: int) -> dict:
    """Evaluate once per label; the stored result is reused on resume."""
    done = run.store.marked("eval", label)
    if done:
        return dict(done)
    from agentpref.train.evaluate import EvalOptions, evaluate, write_result

    tasks = _eval_tasks(run)
    opts = validate_options(EvalOptions, run.recipe.evaluate or {}, "evaluate")
    result = evaluate(tasks, policy, run.recipe.envs, opts, round=round)
    write_result(result, run.out / "eval" / f"{label}.json", label, adapter=adapter, round=round)
    summary = {"label": label, "round": round, "adapter": adapter, **result.headline()}
    run.store.mark("eval", label, summary)
    return summary


def _train(run: Run, round: int, init_adapter: str | None) -> dict[str, Any]:
    done = run.store.marked("train", str(round))
    if done:
        return dict(done)
    from agentpref.train.dpo import TrainConfig, train

    config = validate_options(TrainConfig, run.recipe.train or {}, "train")
    name = "kto.jsonl" if config.is_kto else "dpo.jsonl"
    data = run.out / "export" / f"round_{round}" / name
    rows = data.read_text().count("\n") if data.is_file() else 0
    if rows == 0:
        log.warning("round %d: no kept pairs to train on; the policy stays as it is", round)
        summary: dict[str, Any] = {"adapter": init_adapter, "skipped": "no pairs", "rows": 0}
    else:
        result = train(
            config,
            data,
            run.recipe.policy.model,
            run.out / "train" / f"round_{round}",
            round=round,
            init_adapter=init_adapter,
        )
        summary = {
            "adapter": result.adapter_path,
            "rows": result.rows,
            "steps": result.steps,
            "loss_before": result.loss_before,
            "loss_after": result.loss_after,
            "first_loss": result.losses[0] if result.losses else None,
            "last_loss": result.losses[-1] if result.losses else None,
            "seconds": result.seconds,
        }
    run.store.mark("train", str(round), summary)
    return summary


def iterate(
    recipe: Recipe,
    out_dir: str | Path,
    rounds: int | None = None,
    policy_factory: Any = None,
    progress: bool = True,
    evaluate: bool = True,
) -> dict[str, Any]:
    """Run `rounds` rounds (default: recipe.rounds) and return a per-round summary.

    `policy_factory(adapter) -> Policy` replaces the recipe's policy (tests use scripted ones).
    """
    n_rounds = rounds or recipe.rounds
    out = Path(out_dir)
    summary: dict[str, Any] = {"rounds": []}
    adapter: str | None = None

    def make(adapter: str | None) -> Policy:
        if policy_factory is not None:
            return policy_factory(adapter)  # type: ignore[no-any-return]
        # Lazy: a resumed round with nothing left to sample never loads the model.
        return LazyPolicy(recipe.policy.model_copy(update={"adapter": adapter}))  # type: ignore[return-value]

    for r in range(n_rounds):
        policy = make(adapter)
        with Run(recipe, out, policy=policy, progress=progress) as run:
            if recipe.rounds < 2 and n_rounds > 1:
                # per-round export folders are what each round trains on
                run.recipe = recipe.model_copy(update={"rounds": n_rounds})
            run.run_round(r)
            kept = len(run.kept_pairs(r))
            evals: list[dict[str, Any]] = []
            has_eval = evaluate and bool(_eval_tasks(run))
            if has_eval and r == 0:
                evals.append(_evaluate(run, policy, "base", None, 0))
            # Training loads its own copy of the model: free the sampling one first (a 0.5B
            # in float32 is 2.5 GB; holding both ran a 24 GiB machine out of memory), and
            # stop an engine server kept alive for it: an idle vLLM CPU server holds 6.6 GB
            # resident for the 0.5B, and on a GPU most of the device's memory.
            getattr(policy, "release", policy.close)()
            trained = _train(run, r, adapter)
            new_adapter = trained.get("adapter")
            label = f"round_{r}"
            if has_eval and new_adapter and new_adapter != adapter:
                done = run.store.marked("eval", label)
                if done:
                    evals.append(dict(done))
                else:
                    after = make(new_adapter)
                    try:
                        evals.append(_evaluate(run, after, label, new_adapter, r))
                    finally:
                        after.close()
            adapter = new_adapter
            summary["rounds"].append(
                {"round": r, "pairs_kept": kept, "train": trained, "eval": evals}
            )
            stats = run.stats()
        summary["stats"] = stats
        (out / "iterate.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    summary["adapter"] = adapter
    return summary
