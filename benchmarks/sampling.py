"""Sampling throughput on one job, several engines, one run: the survey's recipe against
agentpref's batched transformers sampling and the managed vLLM engine.

The survey samples with a batch of 4 prompts and one reply each per `generate` call (the
baseline). agentpref sends many prompts with n replies each in one policy call: the
transformers policy packs them into large length-sorted batches; the vLLM engine gets them
as concurrent requests, either one request per reply with its own seed (`seeded`, the
default: reproducible) or one request for n replies without a seed (`unseeded`). All sample
the same prompts, the same number of replies, with the same weights and settings. Figures:
generated tokens per second of wall time and per CPU-second (this process plus, for vLLM,
every process of the server), and their ratios to the baseline. A second baseline row runs
agentpref's batched call with the row sampler it had before 2026-12-02 (a sort of the whole
vocabulary per row and step), so what the partial top-k sampler saves shows in the same run.

    python benchmarks/sampling.py                          # tiny default model on CPU
    python benchmarks/sampling.py --prompts 12 --n 8 --engine transformers,vllm
    python benchmarks/sampling.py --model Qwen/Qwen2.5-7B-Instruct --device cuda \
        --prompts 64 --n 8 --max-new-tokens 256
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


Policy = Any


def survey_recipe(
    policy: Policy, prompts: list[list[Message]], sampling: SamplingParams, batch: int
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
    policy: Policy, prompts: list[list[Message]], sampling: SamplingParams
) -> list[Completion]:
    """n replies per prompt in one policy call."""
    return [c for group in policy.generate(prompts, sampling) for c in group]


class PreviousSampler:
    """agentpref's row sampler before 2026-12-02, kept as this benchmark's baseline: it sorted
    and scattered the whole vocabulary for every row and step, and drew over all of it."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float, top_k: int,
                 device: Any) -> None:
        import torch

        gen_device = device if getattr(device, "type", "cpu") == "cuda" else "cpu"
        self.generators = [torch.Generator(device=gen_device).manual_seed(s) for s in seeds]
        self.temperature, self.top_p, self.top_k = temperature, top_p, top_k

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        logits = scores.float() / self.temperature
        if self.top_k and self.top_k < logits.shape[-1]:
            kth = torch.topk(logits, self.top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.top_p < 1.0:
            ordered, order = torch.sort(logits, descending=True, dim=-1)
            cum = ordered.softmax(dim=-1).cumsum(dim=-1)
            drop = cum - ordered.softmax(dim=-1) > self.top_p
            ordered = ordered.masked_fill(drop, float("-inf"))
            logits = torch.full_like(logits, float("-inf")).scatter(-1, order, ordered)
        probs = logits.softmax(dim=-1)
        out = torch.full_like(scores, float("-inf"))
        for r, gen in enumerate(self.generators):
            row = probs[r] if probs.device == gen.device else probs[r].to(gen.device)
            out[r, torch.multinomial(row, 1, generator=gen).to(scores.device)] = 0.0
        return out


def batched_previous_sampler(
    policy: Policy, prompts: list[list[Message]], sampling: SamplingParams
) -> list[Completion]:
    """`batched`, with the previous full-vocabulary sampler patched in."""
    import agentpref.policies.transformers as module

    current = module._RowSampler
    module._RowSampler = PreviousSampler  # type: ignore[assignment,misc]
    try:
        return batched(policy, prompts, sampling)
    finally:
        module._RowSampler = current  # type: ignore[misc]


def batched_seeded(
    policy: Policy, prompts: list[list[Message]], sampling: SamplingParams
) -> list[Completion]:
    """n replies per prompt in one policy call, each reply with its own seed."""
    seeds = [[sampling.seed * 1_000_003 + i * 101 + j for j in range(sampling.n)]
             for i in range(len(prompts))]
    return [c for group in policy.generate(prompts, sampling, seeds=seeds) for c in group]


def group_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of live processes (Linux /proc), in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


@dataclass
class Figures:
    label: str
    replies: int
    tokens: int
    wall_s: float
    cpu_s: float
    stopped: float

    @property
    def tps(self) -> float:
        return self.tokens / self.wall_s

    @property
    def per_cpu(self) -> float:
        return self.tokens / self.cpu_s


def measure(
    label: str, fn: Callable[..., list[Completion]], *args: Any, server_pids: Sequence[int] = ()
) -> Figures:
    """Run once; CPU time is this process's plus the server processes' (when given)."""
    cpu0 = time.process_time() + group_cpu_seconds(list(server_pids))
    start = time.perf_counter()
    replies = fn(*args)
    seconds = time.perf_counter() - start
    cpu = time.process_time() + group_cpu_seconds(list(server_pids)) - cpu0
    tokens = sum(c.tokens for c in replies)
    stopped = sum(c.finish_reason == "stop" for c in replies) / max(len(replies), 1)
    figures = Figures(label, len(replies), tokens, seconds, cpu, stopped)
    print(f"  {label}: {tokens} tokens in {seconds:.1f}s wall, {cpu:.1f} CPU-s", flush=True)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="'default', folder, .gguf or hub id")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (every engine)")
    parser.add_argument(
        "--engine", default="transformers,vllm",
        help="engines besides the survey baseline: transformers, vllm (comma-separated)",
    )
    parser.add_argument(
        "--vllm-modes", default="seeded,unseeded",
        help="seeded (a request per reply, reproducible), unseeded (n per request)",
    )
    parser.add_argument("--vllm-env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment for the vLLM server (repeatable)")
    parser.add_argument("--kv-cache-gb", type=float, default=None, help="vLLM KV cache")
    parser.add_argument("--vllm-dtype", default=None,
                        help="vLLM's dtype (default: --dtype; auto: see agentpref.precision)")
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
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    engines = {e.strip() for e in args.engine.split(",") if e.strip()}
    unknown = engines - {"transformers", "vllm"}
    if unknown:
        parser.error(f"unknown engine(s) {', '.join(sorted(unknown))}: transformers, vllm")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from agentpref.policies.transformers import TransformersPolicy

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
    warm_prompts = [[Message(role="user", content="Say hi.")]]
    warm = sampling.model_copy(update={"n": 1, "max_new_tokens": 4})
    policy.generate(warm_prompts, warm)

    print(
        f"model={policy.name} device={policy.device} dtype={policy.dtype} "
        f"prompts={args.prompts} n={args.n} max_new_tokens={args.max_new_tokens} "
        f"temperature={args.temperature} cores={os.cpu_count()}",
        flush=True,
    )
    rows = [
        measure(f"survey (transformers, batch {args.survey_batch}, n=1/call)", survey_recipe,
                policy, prompts, sampling, args.survey_batch)
    ]
    if "transformers" in engines:
        rows.append(measure(f"  same, previous full-sort sampler ({args.prompts}x n={args.n})",
                            batched_previous_sampler, policy, prompts, sampling))
        rows.append(measure(f"agentpref transformers ({args.prompts}x n={args.n}/call)",
                            batched, policy, prompts, sampling))
    policy.close()
    if "vllm" in engines:
        rows += vllm_rows(args, prompts, sampling, warm_prompts, warm)

    base = rows[0]
    print(f"{'recipe':<46}{'replies':>8}{'tokens':>8}{'wall s':>8}{'tok/s':>8}"
          f"{'CPU s':>8}{'tok/CPU-s':>10}{'x wall':>8}{'x CPU':>7}{'stopped':>8}")
    for r in rows:
        print(f"{r.label:<46}{r.replies:>8}{r.tokens:>8}{r.wall_s:>8.1f}{r.tps:>8.1f}"
              f"{r.cpu_s:>8.1f}{r.per_cpu:>10.1f}{r.tps / base.tps:>8.2f}"
              f"{r.per_cpu / base.per_cpu:>7.2f}{r.stopped:>8.0%}")
    return 0


def vllm_rows(
    args: argparse.Namespace,
    prompts: list[list[Message]],
    sampling: SamplingParams,
    warm_prompts: list[list[Message]],
    warm: SamplingParams,
) -> list[Figures]:
    """One fresh server per mode (seeded needs chunked prefill off on CPU), measured warm."""
    from agentpref.policies.vllm import VLLMPolicy, installed

    if not installed():
        print("vllm: not installed (agentpref engine install vllm); skipped")
        return []
    env = dict(item.split("=", 1) for item in args.vllm_env)
    rows = []
    for mode in [m.strip() for m in args.vllm_modes.split(",") if m.strip()]:
        if mode not in ("seeded", "unseeded"):
            raise SystemExit(f"unknown vLLM mode {mode!r}: seeded, unseeded")
        seeded = mode == "seeded"
        started = time.perf_counter()
        policy = VLLMPolicy(
            model=args.model, device=args.device, dtype=args.vllm_dtype or args.dtype,
            send_seed=seeded,
            lora=False, kv_cache_gb=args.kv_cache_gb, env=env, keep_alive=False,
        )
        print(f"  vllm {mode}: server ready in {time.perf_counter() - started:.0f}s "
              f"({' '.join(policy.server.command[3:])})", flush=True)
        policy.generate(warm_prompts, warm)
        fn = batched_seeded if seeded else batched
        what = "a request per reply" if seeded else f"n={args.n} per request"
        rows.append(measure(f"agentpref vllm {mode} ({what})", fn, policy, prompts, sampling,
                            server_pids=policy.server.pids()))
        policy.close()
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
