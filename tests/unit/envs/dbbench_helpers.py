"""Shared helpers for the dbbench tests: a gold-path policy and small databases."""

from __future__ import annotations

import ast
import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from agentpref.policies.scripted import ScriptedPolicy
from agentpref.records import Message, Task

REPO = Path(__file__).resolve().parents[3]
DATA = REPO.parent / "shared" / "data"
SPIDER = DATA / "spider"


def op(sql: str, thought: str = "Let me check the table.") -> str:
    return f"{thought}\nAction: Operation\n```sql\n{sql}\n```"


def answer(values: list[str], thought: str = "I have the answer.") -> str:
    return f"{thought}\nAction: Answer\nFinal Answer: {json.dumps(values)}"


def question_key(conv: list[Message]) -> str:
    """The task's question: the first line of the third opening message."""
    return conv[2].content.split("\n")[0]


def turns_played(conv: list[Message]) -> int:
    return sum(1 for m in conv[3:] if m.role == "assistant")


def gold_path_policy(tasks: list[Task]) -> ScriptedPolicy:
    """Replays each task's gold path: run the gold statement, then answer from its result."""
    by_question = {t.spec["question"]: t for t in tasks}
    assert len(by_question) == len(tasks), "questions must be unique to script by them"

    def fn(conv: list[Message], _i: int) -> str:
        task = by_question[question_key(conv)]
        if turns_played(conv) == 0:
            return op(task.spec["gold_sql"].replace("\n", " "))
        if task.spec.get("kind", "query") != "query":
            return answer([], "The change is made.")
        rows = ast.literal_eval(conv[-1].content)
        return answer([str(c) for row in rows for c in row])

    return ScriptedPolicy(fn=fn)


def scripted(fn: Callable[[list[Message], int], str]) -> ScriptedPolicy:
    return ScriptedPolicy(fn=fn)


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build_library(path: Path) -> Path:
    """A small two-table database written by the test (text keys, NULLs, reals)."""
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE authors(code TEXT PRIMARY KEY, name TEXT NOT NULL, born INTEGER);
        CREATE TABLE books(id INTEGER PRIMARY KEY, title TEXT, author TEXT, year INTEGER,
                           price REAL, notes TEXT);
        INSERT INTO authors VALUES ('AC', 'Agatha Christie', 1890), ('TP', 'Terry Pratchett',
            1948), ('UL', 'Ursula Le Guin', 1929), ('JA', 'Jane Austen', NULL);
        INSERT INTO books VALUES
            (1, 'Mort', 'TP', 1987, 8.5, NULL),
            (2, 'Guards! Guards!', 'TP', 1989, 9.0, 'city watch'),
            (3, 'The Dispossessed', 'UL', 1974, 11.25, NULL),
            (4, 'Emma', 'JA', 1815, 5.0, 'it''s long'),
            (5, 'Curtain', 'AC', 1975, 7.0, NULL),
            (6, 'Small Gods', 'TP', 1992, 9.0, NULL);
        """
    )
    conn.commit()
    conn.close()
    return path


def library_tasks(db: Path) -> list[Task]:
    """One hand-written task of each kind on the library database."""

    def task(key: str, question: str, gold: str, kind: str = "query", table: str = "") -> Task:
        spec = {"db_path": str(db), "gold_sql": gold, "question": question, "db_id": "library"}
        if kind != "query":
            spec.update(kind=kind, table=table)
        return Task(id=f"lib:train:{key}", source="lib", env="dbbench", spec=spec)

    return [
        task("q1", "How many books did Terry Pratchett write?",
             "SELECT count(*) FROM books WHERE author = 'TP'"),
        task("q2", "Which books cost 9.0?", "SELECT title FROM books WHERE price = 9.0"),
        task("q3", "What is the average price of the books?", "SELECT avg(price) FROM books"),
        task("i1", "Add the book Hogfather (id 7) by TP from 1996 costing 9.5.",
             "INSERT INTO books (id, title, author, year, price) "
             "VALUES (7, 'Hogfather', 'TP', 1996, 9.5)", "insert", "books"),
        task("u1", "Raise the price of every Terry Pratchett book by 1.",
             "UPDATE books SET price = price + 1 WHERE author = 'TP'", "update", "books"),
        task("d1", "Remove the author whose code is JA.",
             "DELETE FROM authors WHERE code = 'JA'", "delete", "authors"),
    ]
