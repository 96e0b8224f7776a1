"""ScienceWorld episode steps per second: the worker pool against one environment, same run.

Modes, all on the same task and the same scripted replies:

- `official-one-env`: one `scienceworld.ScienceWorldEnv` (its own JVM), episodes one after
  another, as a plain script would drive it (its step also fetches look, inventory and the
  valid action list every time).
- `pool-sequential`: our environment, one worker, one episode at a time.
- `pool-rollout`: `agentpref.rollout.play` with every episode live at once (batched policy
  calls; the environments are stepped one after another inside a turn).
- `pool-threads`: every episode on its own thread, the pool's workers stepping in parallel.

Run: python benchmarks/env_pool.py --episodes 8 --steps 12 --workers 2
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable

from agentpref.envs.pool import close_pool, get_pool
from agentpref.envs.science import ScienceWorldEnv
from agentpref.policies.scripted import ScriptedPolicy
from agentpref.records import SamplingParams, Task
from agentpref.rollout import play

ACTIONS = ["look around", "open door to kitchen", "go to kitchen", "look around",
           "open door to outside", "go to outside", "look around", "go to kitchen"]


def task(name: str, variation: int, steps: int) -> Task:
    return Task(id=f"bench:{name}:{variation}", source="bench", env="scienceworld",
                spec={"task_name": name, "variation": variation, "step_limit": steps})


def reply(turn: int) -> str:
    return f"THOUGHT: Step {turn}.\nACTION: {ACTIONS[turn % len(ACTIONS)]}"


def official_one_env(env: object) -> Callable[[list[Task], int], int]:
    def run(tasks: list[Task], steps: int) -> int:
        n = 0
        for t in tasks:
            env.load(t.spec["task_name"], t.spec["variation"], "")  # type: ignore[attr-defined]
            env.reset()  # type: ignore[attr-defined]
            for turn in range(steps):
                env.step(ACTIONS[turn % len(ACTIONS)])  # type: ignore[attr-defined]
                n += 1
        return n

    return run


def one_episode(t: Task, steps: int) -> int:
    pool = get_pool()
    env = ScienceWorldEnv(max_workers=pool.max_workers, sims_per_worker=pool.sims_per_worker)
    env.reset(t)
    n = 0
    try:
        for turn in range(steps):
            n += 1
            if env.step(reply(turn)).done:
                break
    finally:
        env.close()
    return n


def pool_sequential(tasks: list[Task], steps: int) -> int:
    return sum(one_episode(t, steps) for t in tasks)


def pool_rollout(tasks: list[Task], steps: int) -> int:
    policy = ScriptedPolicy(fn=lambda conv, i: reply(sum(m.role == "assistant" for m in conv) - 1))
    eps = play(policy, [(t, 0) for t in tasks], SamplingParams(temperature=0.0))
    return sum(int(e.reward.breakdown.get("turns", 0)) for e in eps)


def pool_threads(tasks: list[Task], steps: int) -> int:
    counts = [0] * len(tasks)

    def run(i: int) -> None:
        counts[i] = one_episode(tasks[i], steps)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(tasks))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sum(counts)


def measure(label: str, fn: Callable[[list[Task], int], int], tasks: list[Task],
            steps: int) -> float:
    start = time.perf_counter()
    n = fn(tasks, steps)
    seconds = time.perf_counter() - start
    rate = n / seconds
    print(f"{label:18s} {n:5d} steps in {seconds:7.2f} s = {rate:7.1f} steps/s", flush=True)
    return rate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="find-living-thing")
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    tasks = [task(args.task, v, args.steps) for v in range(args.episodes)]

    print(f"task {args.task}, {args.episodes} episodes x {args.steps} steps")
    from scienceworld import ScienceWorldEnv as Official

    start = time.perf_counter()
    official = Official("", envStepLimit=args.steps + 5)
    official.load(args.task, 0, "")
    official.reset()
    print(f"official env start + first load: {time.perf_counter() - start:.2f} s")
    base = measure("official-one-env", official_one_env(official), tasks, args.steps)
    official.close()

    get_pool(max_workers=1)
    start = time.perf_counter()
    one_episode(tasks[0], 2)
    print(f"pool worker start + first episode: {time.perf_counter() - start:.2f} s")
    seq = measure("pool-sequential", pool_sequential, tasks, args.steps)
    close_pool()

    # Spread the episodes over the workers (by default a worker takes 16 before the next starts).
    get_pool(max_workers=args.workers, sims_per_worker=-(-args.episodes // args.workers))
    for t in tasks[: args.workers]:
        one_episode(t, 2)
    pool_threads(tasks[: args.workers * 2], 2)  # start every worker before timing
    stats = get_pool().stats()
    roll = measure("pool-rollout", pool_rollout, tasks, args.steps)
    thr = measure("pool-threads", pool_threads, tasks, args.steps)
    print(f"workers started: {stats.live_workers}")
    print(f"vs official-one-env: pool-sequential x{seq / base:.2f}, "
          f"pool-rollout x{roll / base:.2f}, pool-threads x{thr / base:.2f}")
    close_pool()
    return 0


if __name__ == "__main__":
    sys.exit(main())
