"""Do the pairs teach? Two rounds of iterative DPO, held-out databases, a length-only control.

The experiment (fixed and documented, so its figures can be compared between runs):

- Tasks: Spider, SParC and CoSQL dev questions on the 13 databases of ../shared/data, plus the
  same Spider questions played in AgentBench's DB Bench protocol. Whole databases are held out
  (`tasks.heldout_fraction`); nothing on a held-out database is ever trained on.
- Each round: k self-play samples per training task; pairs by the survey's hybrid (best-worst
  where self-play gives a pair, the gold query where it gives none); one LoRA DPO epoch on the
  round's kept pairs; the next round samples from the new adapter (`agentpref iterate`).
- Held-out evaluation of the base model and of each round's adapter, greedy: execution accuracy
  with its 95% interval, executes rate, valid-SQL rate and format failures on the single-turn
  tasks, and success (query / INSERT / UPDATE and the benchmark's mean) in the DB Bench protocol.
- Control: as many pairs as round 0 kept, made from the same round-0 episodes by length alone
  (the shortest reply chosen over the longest, whatever their scores), trained the same way and
  evaluated the same way. A gain that the control also shows is a length/format effect, not
  what the verifier's pairs taught.
- Sizes: the quick one caps DB Bench episodes at 5 operations (sampling and evaluation; the
  benchmark and the full size allow 15) and probes the loss on 4 rows; evaluation gives each
  episode one turn more than the operations, so the environment's own limit ends it.

    python benchmarks/pair_quality.py --quick                 # 0.5B, about 25 min on 2 cores
    python benchmarks/pair_quality.py --model qwen2.5-coder-1.5b
    python benchmarks/pair_quality.py --quick --engine vllm   # the vLLM engine (on a CPU its
                                                              # LoRA rounds are slower)

Everything goes into --out (default runs/pair_quality[-quick]): the run folder, each round's
adapter, the control's adapter, and `pair_quality.json` with every figure printed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"

SIZES = {
    # a plumbing check of the whole experiment in minutes (with --model default)
    "smoke": {
        "spider": 6,
        "sparc": 2,
        "cosql": 2,
        "dbbench": 4,
        "k": 2,
        "tokens": 32,
        "heldout_sql": 4,
        "heldout_dbbench": 2,
        "operations": 3,
        "probe": 2,
    },
    # tasks per source (before the held-out split), k, new tokens, held-out tasks per protocol,
    # DB Bench operations per episode (the benchmark allows 15), loss-probe rows per training
    "quick": {
        "spider": 16,
        "sparc": 4,
        "cosql": 4,
        "dbbench": 6,
        "k": 4,
        "tokens": 128,
        "heldout_sql": 30,
        "heldout_dbbench": 10,
        "operations": 5,
        "probe": 4,
    },
    "full": {
        "spider": 120,
        "sparc": 40,
        "cosql": 40,
        "dbbench": 40,
        "k": 8,
        "tokens": 256,
        "heldout_sql": 120,
        "heldout_dbbench": 40,
        "operations": 15,
        "probe": 32,
    },
}


def recipe(args: argparse.Namespace, size: dict[str, Any]) -> dict[str, Any]:
    spider = str(args.data / "spider")
    db = str(args.data / "spider" / "database")
    sources = [
        {"name": "spider", "path": spider, "split": "dev", "count": size["spider"]},
        {
            "name": "sparc",
            "path": str(args.data / "sparc"),
            "split": "dev",
            "count": size["sparc"],
            "options": {"database_dir": db},
        },
        {
            "name": "cosql",
            "path": str(args.data / "cosql"),
            "split": "dev",
            "count": size["cosql"],
            "options": {"database_dir": db},
        },
        {
            "name": "spider",
            "path": spider,
            "split": "dev",
            "count": size["dbbench"],
            "env": "dbbench",
        },
    ]
    policy: dict[str, Any] = {"backend": args.engine, "model": args.model}
    if args.dtype != "auto":
        policy["options"] = {"dtype": args.dtype}
    return {
        "name": "pair-quality",
        "seed": args.seed,
        "rounds": 2,
        "tasks": {"sources": sources, "heldout_fraction": 0.3},
        "policy": policy,
        # the 0.5B explains step by step and runs out of tokens otherwise (see envs/sql/single.py)
        "envs": {
            "sql": {"instruction": "sql-only"},
            # the quick size caps DB Bench episodes at 5 operations (the benchmark: 15): the
            # 0.5B either answers within two turns or loops to the cap, and the loops were
            # most of its sampling time
            "dbbench": {"max_operations": size["operations"]},
        },
        "sampling": {
            "k": size["k"],
            "temperature": 1.0,
            "top_p": 0.95,
            "max_new_tokens": size["tokens"],
            "max_samples": size["k"],
            "episodes_per_batch": 32,
        },
        "strategies": [
            {"name": "best-worst", "options": {"min_margin": 0.1}},
            {"name": "gold", "options": {"only_unpaired": True}},
        ],
        "filters": [
            {"name": "margin"},
            {"name": "length"},
            {"name": "chosen-valid"},
            {"name": "duplicates"},
        ],
        # batches of 4 as one row at a time, 4 accumulated: the same update, a quarter of the
        # logits in memory (Qwen's 151,936-token vocabulary makes 4 x 2 x 1024 of them 5 GB)
        "train": {
            "loss": "dpo",
            "beta": 0.1,
            "lora_rank": 16,
            "epochs": 1,
            "batch_size": 1,
            "grad_accum": 4,
            "max_length": 1024,
            "lr": 5.0e-5,
            # the probe runs policy and reference over its rows before and after training:
            # on all 14 rows of a quick round it doubled the training time
            "loss_probe": size["probe"],
            "dtype": args.dtype,
        },
        "export": {"formats": ["dpo"], "parquet": False},
    }


def heldout(run: Any, size: dict[str, Any], recipe_dict: dict[str, Any]) -> list[Any]:
    """The fixed held-out set: N single-turn and M DB Bench-protocol tasks drawn (seeded) from
    every dev question on the run's held-out databases, not only the few the run itself sampled.
    No database a training task uses is ever in it."""
    from agentpref.config import TasksConfig
    from agentpref.records import stable_hash
    from agentpref.tasks.build import build_tasks
    from agentpref.tasks.text import group_of

    held = {g for t in run.store.tasks(split="eval") if (g := group_of(t))}
    trained = {g for t in run.train_tasks() if (g := group_of(t))}
    sources = [{**src, "count": None} for src in recipe_dict["tasks"]["sources"]]
    built = build_tasks(TasksConfig.model_validate({"sources": sources}), recipe_dict["seed"])
    pool = [t for t in built.train + built.eval if group_of(t) in held - trained]
    pool.sort(key=lambda t: stable_hash(recipe_dict["seed"], "heldout", t.id))
    sql = [t for t in pool if t.env == "sql"][: size["heldout_sql"]]
    dbb = [t for t in pool if t.env == "dbbench"][: size["heldout_dbbench"]]
    return sql + dbb


def length_pairs(run: Any, count: int, seed: int) -> list[Any]:
    """The control: shortest reply chosen over the longest, from round 0's own episodes."""
    from agentpref.pairs.base import make_pair
    from agentpref.records import stable_hash

    tasks = {t.id: t for t in run.train_tasks()}
    pairs = []
    for task_id, eps in sorted(run.episodes_by_task(0).items()):

        def size(e: Any) -> int:
            return sum(len(m.content) for m in e.continuation if m.role == "assistant")

        distinct = {size(e): e for e in sorted(eps, key=lambda e: e.sample_index)}
        if len(distinct) < 2 or task_id not in tasks:
            continue
        short, long = distinct[min(distinct)], distinct[max(distinct)]
        pairs.append(make_pair(tasks[task_id], short, long, "length-control", 0))
    pairs.sort(key=lambda p: stable_hash(seed, p.task_id))
    return pairs[:count]


def eval_options(recipe_obj: Any) -> Any:
    """Greedy, the sampling's token limit, and one turn more than DB Bench's operations, so the
    environment's own limit ends (and scores) an episode: a cut by the rollout's turn limit
    would score 0 and record no operations."""
    from agentpref.envs.sql.dbbench import DBBenchOptions
    from agentpref.train.evaluate import EvalOptions

    dbbench = DBBenchOptions.model_validate(recipe_obj.envs.get("dbbench", {}))
    operations = dbbench.max_operations
    return EvalOptions(
        max_new_tokens=recipe_obj.sampling.max_new_tokens, max_turns=operations + 1, batch_size=32
    )


def evaluate_all(
    run: Any, recipe_obj: Any, tasks: list[Any], adapters: dict[str, str | None], out: Path
) -> dict[str, Any]:
    from agentpref.policies.base import make_policy
    from agentpref.train.evaluate import evaluate, write_result

    options = eval_options(recipe_obj)
    results: dict[str, Any] = {}
    ids = [t.id for t in tasks]
    for label, adapter in adapters.items():
        done = out / "heldout" / f"{label}.json"
        if done.exists():  # a resumed run: the same tasks and adapter were evaluated already
            old = json.loads(done.read_text())
            if old.get("task_ids") == ids and old.get("adapter") == adapter:
                results[label] = {"metrics": old["metrics"], "seconds": old.get("seconds")}
                continue
        start = time.perf_counter()
        policy = make_policy(recipe_obj.policy.model_copy(update={"adapter": adapter}))
        try:
            result = evaluate(tasks, policy, recipe_obj.envs, options)
        finally:
            policy.close()
        seconds = round(time.perf_counter() - start)
        write_result(result, done, label, adapter=adapter)
        record = json.loads(done.read_text())
        record.update(task_ids=ids, seconds=seconds)
        done.write_text(json.dumps(record, indent=2, default=str) + "\n")
        results[label] = {"metrics": result.metrics, "seconds": seconds}
    return results


def row(label: str, metrics: dict[str, Any]) -> str:
    sql = metrics.get("sql", {})
    dbb = metrics.get("dbbench", {})
    lo, hi = sql.get("execution_accuracy_ci95", [0.0, 0.0])
    return (
        f"{label:<14} EX {100 * sql.get('execution_accuracy', 0):5.1f}% "
        f"[{100 * lo:4.1f}, {100 * hi:4.1f}]  executes {100 * sql.get('executes_rate', 0):5.1f}%"
        f"  format fail {100 * sql.get('format_failure_rate', 0):5.1f}%  "
        f"DB Bench {100 * dbb.get('success_rate', 0):5.1f}% "
        f"(mean of kinds {100 * dbb.get('mean_of_kinds', 0):5.1f}%)"
    )


def _split(run_dir: Path) -> dict[str, Any]:
    """The run's split by database, from its task report (train and held-out databases)."""
    report = run_dir / "tasks_report.json"
    if not report.exists():
        return {}
    split = json.loads(report.read_text()).get("split", {})
    return {k: split[k] for k in ("train_databases", "eval_databases") if k in split}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="0.5B, about 25 min on 2 cores (bfloat16)"
    )
    parser.add_argument("--smoke", action="store_true", help="a minutes-long plumbing check")
    parser.add_argument("--model", default=None, help="policy model (default by size)")
    parser.add_argument("--engine", default="transformers", help="transformers or vllm")
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16"],
        help="sampling and training precision (auto: bfloat16 on a CPU with AMX or AVX512-BF16)",
    )
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    begun = time.perf_counter()
    size_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    size = SIZES[size_name]
    args.model = args.model or ("qwen2.5-coder-0.5b" if args.quick else "qwen2.5-coder-1.5b")
    out = args.out or Path("runs") / f"pair_quality-{size_name}"
    out.mkdir(parents=True, exist_ok=True)

    import torch

    from agentpref.config import recipe_from_dict
    from agentpref.iterate import iterate
    from agentpref.pipeline import Run
    from agentpref.precision import auto_precision
    from agentpref.train.dpo import TrainConfig, train

    device = "cuda" if torch.cuda.is_available() else "cpu"  # what policy and training pick
    recipe_dict = recipe(args, size)
    recipe_obj = recipe_from_dict(recipe_dict, "pair_quality")
    run_dir = out / "run"
    timings: dict[str, float] = {}
    start = time.perf_counter()
    summary = iterate(recipe_obj, run_dir, evaluate=False, progress=True)
    timings["sample+pair+train (2 rounds)"] = round(time.perf_counter() - start)
    rounds = summary["rounds"]
    stages = summary.get("stats", {}).get("timing", {}).get("stages", {})
    for r in rounds:
        sample = stages.get(f"sample@{r['round']}", {}).get("seconds")
        if sample is not None:
            timings[f"round {r['round']} sampling"] = round(sample)
        if r["train"].get("seconds") is not None:
            timings[f"round {r['round']} training"] = round(r["train"]["seconds"])
    adapters: dict[str, str | None] = {"base": None}
    for r in rounds:
        if r["train"].get("adapter"):
            adapters[f"round_{r['round']}"] = r["train"]["adapter"]

    with Run(recipe_obj, run_dir, progress=False) as run:
        tasks = heldout(run, size, recipe_dict)
        control = length_pairs(run, rounds[0]["pairs_kept"], args.seed)
    from agentpref.export.trl import export_dpo

    control_dir = out / "control"
    if control:
        (path,) = [
            p for p in export_dpo(control, control_dir, parquet=False) if p.suffix == ".jsonl"
        ]
        marker = control_dir / "train" / "control.json"
        if marker.exists() and json.loads(marker.read_text()).get("pairs") == len(control):
            adapters["control"] = json.loads(marker.read_text())["adapter"]  # resumed
        else:
            start = time.perf_counter()
            config = TrainConfig.model_validate(recipe_obj.train or {})
            result = train(config, path, recipe_obj.policy.model, control_dir / "train")
            timings["control train"] = round(time.perf_counter() - start)
            adapters["control"] = result.adapter_path
            marker.write_text(json.dumps({"pairs": len(control), "adapter": result.adapter_path}))

    start = time.perf_counter()
    evals = evaluate_all(run, recipe_obj, tasks, adapters, out)
    timings["held-out evaluation"] = round(time.perf_counter() - start)
    for label, e in evals.items():
        timings[f"evaluation {label}"] = e["seconds"]

    timings["total (this invocation)"] = round(time.perf_counter() - begun)
    report = {
        "size": size_name,
        "model": args.model,
        "engine": args.engine,
        "dtype": args.dtype if args.dtype != "auto" else auto_precision(device),
        "seed": args.seed,
        "held_out_tasks": {
            "sql": sum(t.env == "sql" for t in tasks),
            "dbbench": sum(t.env == "dbbench" for t in tasks),
        },
        "pairs_per_round": [r["pairs_kept"] for r in rounds],
        "control_pairs": len(control),
        "train": [r["train"] for r in rounds],
        "eval": evals,
        "seconds": timings,
        "split": _split(run_dir),
    }
    (out / "pair_quality.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(
        f"\npair quality ({size_name}, {args.model}, {args.engine}, {report['dtype']}); held-out: "
        f"{report['held_out_tasks']}"
    )
    print(f"pairs kept per round: {report['pairs_per_round']}; control pairs: {len(control)}")
    for label, e in evals.items():
        print(row(label, e["metrics"]))
    print("wall time: " + ", ".join(f"{k} {v}s" for k, v in timings.items()))
    print(f"written: {out / 'pair_quality.json'}")


if __name__ == "__main__":
    main()
