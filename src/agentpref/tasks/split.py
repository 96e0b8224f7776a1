"""Seeded sampling stratified by database, and the held-out split by database."""

from __future__ import annotations

import random
from collections import defaultdict

from agentpref.records import Task, stable_hash
from agentpref.tasks.text import group_of


def _rng(seed: int, *salt: str) -> random.Random:
    return random.Random(int(stable_hash(seed, *salt), 16))


def stratified_sample(
    tasks: list[Task], count: int | None, seed: int, salt: str = ""
) -> list[Task]:
    """Take `count` tasks round-robin over databases (in seeded random order), each database's
    tasks in seeded random order, so every database is used before any is used twice.

    Tasks without a database form one group per task. Returns tasks in input order.
    """
    if count is None or count >= len(tasks):
        return list(tasks)
    rng = _rng(seed, "sample", salt)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(tasks):
        groups[group_of(t) or f"\0{t.id}"].append(i)
    order = sorted(groups)
    rng.shuffle(order)
    queues = []
    for g in order:
        members = list(groups[g])
        rng.shuffle(members)
        queues.append(members)
    taken: list[int] = []
    depth = 0
    while len(taken) < count:
        progressed = False
        for q in queues:
            if depth < len(q):
                taken.append(q[depth])
                progressed = True
                if len(taken) == count:
                    break
        if not progressed:
            break
        depth += 1
    return [tasks[i] for i in sorted(taken)]


def heldout_groups(tasks: list[Task], fraction: float, seed: int) -> set[str]:
    """The databases held out for evaluation: every eval-only task's database, plus a seeded
    `fraction` of all databases (at least one when fraction > 0 and two or more exist)."""
    groups = sorted({g for t in tasks if (g := group_of(t))})
    forced = {g for t in tasks if t.eval_only and (g := group_of(t))}
    if fraction <= 0 or not groups:
        return forced
    want = max(1, round(fraction * len(groups))) if len(groups) > 1 else 0
    rng = _rng(seed, "heldout")
    order = list(groups)
    rng.shuffle(order)
    chosen = set(forced)
    for g in order:
        if len(chosen) >= max(want, len(forced)):
            break
        chosen.add(g)
    return chosen


def split_by_group(
    tasks: list[Task], fraction: float, seed: int
) -> tuple[list[Task], list[Task], set[str]]:
    """(train, eval, held-out databases). No database serves both; eval-only tasks never train.

    Tasks without a database train unless they are eval-only.
    """
    held = heldout_groups(tasks, fraction, seed)
    train: list[Task] = []
    evals: list[Task] = []
    for t in tasks:
        g = group_of(t)
        if t.eval_only or (g is not None and g in held):
            evals.append(t)
        else:
            train.append(t)
    return train, evals, held
