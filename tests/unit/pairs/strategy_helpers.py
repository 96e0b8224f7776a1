"""Shared helpers for the strategy tests: real Spider databases, scripted policies, a store."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from agentpref.pairs.base import PairContext
from agentpref.policies.scripted import ScriptedPolicy
from agentpref.records import Message, SamplingParams, Task, Trajectory
from agentpref.store import RunStore

ROOT = Path(__file__).resolve().parents[3]
SPIDER = ROOT.parent / "shared" / "data" / "spider"
DB = SPIDER / "database" / "concert_singer" / "concert_singer.sqlite"

# (key, question, gold SQL) on concert_singer, from Spider dev.
QUESTIONS = [
    ("q0", "How many singers do we have?", "SELECT count(*) FROM singer"),
    ("q1", "What are the names of all stadiums?", "SELECT name FROM stadium"),
    (
        "q2",
        "Show the names of singers and the names of concerts they take part in.",
        "SELECT T2.name, T3.concert_name FROM singer_in_concert AS T1 JOIN singer AS T2 "
        "ON T1.singer_id = T2.singer_id JOIN concert AS T3 ON T1.concert_id = T3.concert_id",
    ),
    ("q3", "What is the average age of all singers?", "SELECT avg(age) FROM singer"),
]
GOLD = {q: sql for _, q, sql in QUESTIONS}


def sql_task(key: str, question: str, gold: str, env: str = "sql", **extra) -> Task:
    return Task(
        id=f"spider:dev:{key}" if env == "sql" else f"dbb:dev:{key}",
        source="spider" if env == "sql" else "dbb",
        split="train",
        env=env,
        spec={"db_path": str(DB), "gold_sql": gold, "question": question,
              "db_id": "concert_singer", **extra},
    )


def tasks(env: str = "sql") -> list[Task]:
    return [sql_task(k, q, s, env) for k, q, s in QUESTIONS]


def question_of(conversation: Sequence[Message]) -> str:
    """The Spider question inside a sql-env or dbbench-env prompt."""
    for m in conversation:
        match = re.search(r"Question: (.*)", m.content)
        if match:
            return match.group(1).strip()
        for _, q, _ in QUESTIONS:
            if q in m.content:
                return q
    raise AssertionError("no question in the conversation")


def fenced(sql: str) -> str:
    return f"Let me write it.\n```sql\n{sql}\n```"


def policy(model: str, answer: Callable[[str, int], str]) -> ScriptedPolicy:
    """A scripted single-turn SQL policy: answer(question, index) -> SQL."""
    return ScriptedPolicy(model=model, fn=lambda conv, i: fenced(answer(question_of(conv), i)))


def context(tmp_path: Path, **kw) -> PairContext:
    store = RunStore(tmp_path / "store.sqlite")
    return PairContext(round=0, sampling=SamplingParams(temperature=0.0), store=store, **kw)


def play_students(
    ctx: PairContext, student: ScriptedPolicy, tasks: Sequence[Task], k: int = 2
) -> dict[str, list[Trajectory]]:
    """Self-play episodes (kind policy), grouped by task as the pipeline hands them over."""
    played = ctx.play(student, [(t, i) for t in tasks for i in range(k)], tag="s", kind="policy")
    out: dict[str, list[Trajectory]] = {}
    for e in played:
        out.setdefault(e.task_id, []).append(e)
    return out
