"""float32 against bfloat16 on this machine: sampling and LoRA DPO training, one model, one run.

`dtype: auto` (policy and `train`) picks bfloat16 on a GPU and on a CPU whose matrix units
multiply it natively (AMX or AVX512-BF16), float32 elsewhere (`agentpref.precision`). This
benchmark measures what that choice is worth, float32 being the baseline:

- Sampling: the transformers policy answers the same Spider dev questions (their schema and
  question as the prompt), n replies each, seeded, with the same settings in both types.
  Figures: generated tokens per second of wall time, the ratio to float32, and how many
  replies are a single SQL statement that runs on its database (so a faster type that
  answers worse shows).
- Training: the same DPO rows (the gold query chosen over a reply that is not SQL), LoRA,
  the same steps, `agentpref.train.dpo.train` as the pipeline calls it. Figures: seconds per
  optimizer step, the ratio to float32, and the first and last loss.

    python benchmarks/precision.py                                  # tiny default model
    python benchmarks/precision.py --model qwen2.5-coder-0.5b       # the pair-quality model
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SPIDER = HERE.parent.parent / "shared" / "data" / "spider"


def spider_questions(spider: Path, count: int) -> list[dict[str, Any]]:
    """The first `count` dev questions, one per database first, with the schema as text."""
    dev = json.loads((spider / "dev.json").read_text())
    seen: set[str] = set()
    firsts = [q for q in dev if not (q["db_id"] in seen or seen.add(q["db_id"]))]
    rest = [q for q in dev if q not in firsts]
    out = []
    for q in (firsts + rest)[:count]:
        db = spider / "database" / q["db_id"] / f"{q['db_id']}.sqlite"
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            ddl = [r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE sql NOT NULL")]
        prompt = (
            "Schema:\n" + "\n".join(ddl) + f"\n\nQuestion: {q['question']}\n"
            "Reply with one SQLite query and nothing else."
        )
        out.append({"db": db, "prompt": prompt, "gold": q["query"]})
    return out


def runs_on(db: Path, text: str) -> bool:
    sql = text.strip().removeprefix("```sql").removeprefix("```").removesuffix("```").strip()
    if not sql or ";" in sql.rstrip(";"):
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            conn.execute(sql).fetchmany(1)
    except sqlite3.Error:
        return False
    return True


def sample(model: str, dtype: str, questions: list[dict[str, Any]], args: argparse.Namespace):
    from agentpref.policies.transformers import TransformersPolicy
    from agentpref.records import SamplingParams, messages

    policy = TransformersPolicy(model=model, device="cpu", dtype=dtype)
    convs = [messages(("user", q["prompt"])) for q in questions]
    sampling = SamplingParams(
        n=args.n, temperature=1.0, top_p=0.95, max_new_tokens=args.max_new_tokens, seed=0
    )
    policy.generate(convs[:1], sampling.model_copy(update={"n": 1, "max_new_tokens": 4}))
    start = time.perf_counter()
    out = policy.generate(convs, sampling)
    seconds = time.perf_counter() - start
    policy.close()
    tokens = sum(c.tokens for group in out for c in group)
    good = sum(
        runs_on(q["db"], c.text) for q, group in zip(questions, out, strict=True) for c in group
    )
    return {"seconds": seconds, "tokens": tokens, "runs": good, "replies": len(convs) * args.n}


def dpo_file(questions: list[dict[str, Any]], folder: Path) -> Path:
    rows = [
        {
            "prompt": [{"role": "user", "content": q["prompt"]}],
            "chosen": [{"role": "assistant", "content": q["gold"]}],
            "rejected": [
                {"role": "assistant", "content": "I would need to look at the data first."}
            ],
            "id": f"p{i}",
            "task_id": f"t{i}",
            "template_hash": "",
        }
        for i, q in enumerate(questions)
    ]
    path = folder / "dpo.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def train_once(model: str, dtype: str, data: Path, folder: Path, steps: int) -> dict[str, Any]:
    from agentpref.train.dpo import TrainConfig, train

    config = TrainConfig(
        dtype=dtype, max_steps=steps, batch_size=1, grad_accum=4, lora_rank=16, loss_probe=0
    )
    result = train(config, data, model, folder / dtype)
    per_step = result.metrics.get("train_runtime", result.seconds) / max(result.steps, 1)
    return {"per_step": per_step, "first": result.losses[0], "last": result.losses[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--steps", type=int, default=3, help="DPO optimizer steps (4 rows each)")
    parser.add_argument("--spider", type=Path, default=SPIDER)
    args = parser.parse_args()

    from agentpref.precision import auto_precision, cpu_has_native_bf16

    questions = spider_questions(args.spider, args.questions)
    print(
        f"model {args.model}; CPU multiplies bfloat16 natively: {cpu_has_native_bf16()}; "
        f"auto picks {auto_precision('cpu')}"
    )
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = dpo_file(questions, Path(tmp))
        for dtype in ("float32", "bfloat16"):  # the baseline first
            s = sample(args.model, dtype, questions, args)
            t = train_once(args.model, dtype, data, Path(tmp), args.steps)
            results[dtype] = {**s, **t}
    base = results["float32"]
    print(
        f"\n{'dtype':<10} {'sample tok/s':>12} {'x':>5} {'replies that run':>17} "
        f"{'train s/step':>12} {'x':>5} {'loss first -> last':>20}"
    )
    for dtype, r in results.items():
        rate = r["tokens"] / r["seconds"]
        speed = rate / (base["tokens"] / base["seconds"])
        faster = base["per_step"] / r["per_step"]
        print(
            f"{dtype:<10} {rate:>12.1f} {speed:>5.2f} {r['runs']:>8}/{r['replies']:<8} "
            f"{r['per_step']:>12.1f} {faster:>5.2f} {r['first']:>9.4f} -> {r['last']:.4f}"
        )


if __name__ == "__main__":
    main()
