"""Sampling throughput: the survey's recipe against agentpref's batched sampling, same run.

The survey samples with a batch of 4 prompts and one reply each per `generate` call. agentpref
sends many prompts with n replies each in one policy call, which the transformers policy packs
into large length-sorted batches. Both sample the same prompts, the same number of replies, with
the same model and settings; the figures are replies/s and generated tokens/s.

    python benchmarks/sampling.py                      # tiny default model on CPU
    python benchmarks/sampling.py --model Qwen/Qwen2.5-7B-Instruct --device cuda \
        --prompts 64 --n 8 --max-new-tokens 256
"""

from __future__ import annotations

import argparse
import logging
import time

from agentpref.policies.transformers import TransformersPolicy
from agentpref.records import Completion, Message, SamplingParams

SCHEMAS = [
    (
        "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);"
        "\nCREATE TABLE concert (concert_id INTEGER PRIMARY KEY, venue TEXT, year INTEGER);"
        "\nCREATE TABLE singer_in_concert (concert_id INTEGER, singer_id INTEGER);",
        [
            "How many singers are there?",
            "List the names of singers from France ordered by age.",
            "Which venue hosted the most concerts?",
            "What is the average age of singers who performed in 2014?",
        ],
    ),
    (
        "CREATE TABLE employee (id INTEGER PRIMARY KEY, name TEXT, dept_id INTEGER, salary REAL);"
        "\nCREATE TABLE department (dept_id INTEGER PRIMARY KEY, title TEXT, budget REAL);",
        [
            "Which department has the highest total salary?",
            "Name the employees earning more than 50000.",
            "How many employees work in each department?",
            "List departments whose budget exceeds the sum of their salaries.",
        ],
    ),
    (
        "CREATE TABLE book (book_id INTEGER PRIMARY KEY, title TEXT, author_id INTEGER, "
        "year INTEGER, pages INTEGER);\nCREATE TABLE author (author_id INTEGER PRIMARY KEY, "
        "name TEXT, born INTEGER);\nCREATE TABLE loan (book_id INTEGER, member TEXT, day TEXT);",
        [
            "Which author wrote the most books?",
            "What are the titles of books never loaned?",
            "Show the average number of pages per author, highest first.",
            "Which member borrowed books by the most distinct authors?",
        ],
    ),
]


def build_prompts(count: int) -> list[list[Message]]:
    """`count` single-turn SQL prompts (schema + question), cycling through the examples."""
    pool = [(schema, q) for schema, questions in SCHEMAS for q in questions]
    prompts = []
    for i in range(count):
        schema, question = pool[i % len(pool)]
        text = (
            "You write SQLite queries.\n\nDatabase schema:\n"
            f"{schema}\n\nQuestion: {question}\n\n"
            "Answer with one SQL query in a ```sql fenced block."
        )
        prompts.append([Message(role="user", content=text)])
    return prompts


def survey_recipe(
    policy: TransformersPolicy, prompts: list[list[Message]], sampling: SamplingParams, batch: int
) -> list[Completion]:
    """n replies per prompt, drawn `batch` prompts at a time with one reply each per call."""
    rows = [(p, j) for j in range(sampling.n) for p in prompts]
    out: list[Completion] = []
    one = sampling.model_copy(update={"n": 1})
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        seeded = one.model_copy(update={"seed": sampling.seed + start})
        groups = policy.generate([p for p, _ in chunk], seeded)
        out.extend(g[0] for g in groups)
    return out


def batched(
    policy: TransformersPolicy, prompts: list[list[Message]], sampling: SamplingParams
) -> list[Completion]:
    """n replies per prompt in one policy call."""
    return [c for group in policy.generate(prompts, sampling) for c in group]


def measure(label: str, fn: object, *args: object) -> tuple[float, float, int, int, float]:
    start = time.perf_counter()
    replies = fn(*args)  # type: ignore[operator]
    seconds = time.perf_counter() - start
    tokens = sum(c.tokens for c in replies)
    stopped = sum(c.finish_reason == "stop" for c in replies) / max(len(replies), 1)
    return len(replies) / seconds, tokens / seconds, len(replies), tokens, stopped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="'default', folder, .gguf or hub id")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--prompts", type=int, default=8, help="distinct prompts")
    parser.add_argument("--n", type=int, default=4, help="replies per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--survey-batch", type=int, default=4, help="prompts per call (survey)")
    parser.add_argument("--batch-size", type=int, default=256, help="agentpref rows per call")
    parser.add_argument("--token-budget", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    policy = TransformersPolicy(
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        token_budget=args.token_budget,
    )
    prompts = build_prompts(args.prompts)
    sampling = SamplingParams(
        n=args.n,
        temperature=args.temperature,
        top_p=0.95,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
    )
    warm = sampling.model_copy(update={"n": 1, "max_new_tokens": 4})
    policy.generate(prompts[:2], warm)

    print(
        f"model={policy.name} device={policy.device} dtype={policy.dtype} "
        f"prompts={args.prompts} n={args.n} max_new_tokens={args.max_new_tokens} "
        f"temperature={args.temperature}"
    )
    base = measure("survey", survey_recipe, policy, prompts, sampling, args.survey_batch)
    ours = measure("agentpref", batched, policy, prompts, sampling)
    header = f"{'recipe':<28}{'replies':>8}{'tokens':>8}{'replies/s':>11}{'tokens/s':>10}"
    print(header + f"{'stopped':>9}")
    for label, (rps, tps, count, tokens, stopped) in (
        (f"survey (batch {args.survey_batch}, n=1/call)", base),
        (f"agentpref ({args.prompts}x n={args.n}/call)", ours),
    ):
        print(f"{label:<28}{count:>8}{tokens:>8}{rps:>11.2f}{tps:>10.1f}{stopped:>9.0%}")
    print(
        f"ratio agentpref/survey: replies/s x{ours[0] / base[0]:.2f}, "
        f"tokens/s x{ours[1] / base[1]:.2f}"
    )
    policy.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
