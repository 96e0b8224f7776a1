"""The built-in quick-start suite: databases build once, every gold query executes."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

from agentpref import registry
from agentpref.config import SourceConfig
from agentpref.tasks.builtin import DATABASES, build_databases, cache_dir, load_builtin, questions


def test_suite_shape() -> None:
    qs = questions()
    assert 55 <= len(qs) <= 65
    assert len({q["id"] for q in qs}) == len(qs)
    assert set(Counter(q["db_id"] for q in qs)) == set(DATABASES)
    assert {"easy", "medium", "hard", "extra"} <= {q["difficulty"] for q in qs}


def test_databases_build_with_foreign_keys_and_rows(private_cache: Path) -> None:
    paths = build_databases()
    assert set(paths) == set(DATABASES)
    for db, path in paths.items():
        assert path.parent == cache_dir() and str(path).startswith(str(private_cache))
        conn = sqlite3.connect(path)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert len(tables) >= 3, db
        fks = sum(len(conn.execute(f"PRAGMA foreign_key_list({t})").fetchall()) for t in tables)
        assert fks >= 2, db
        rows = sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables)
        assert 20 <= rows <= 80, (db, rows)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        conn.close()
    mtimes = {db: p.stat().st_mtime_ns for db, p in paths.items()}
    again = build_databases()  # cached: not rebuilt
    assert {db: p.stat().st_mtime_ns for db, p in again.items()} == mtimes
    assert not [p for p in cache_dir().iterdir() if p.name.startswith(".")]  # no temp left


def test_every_gold_query_executes_and_returns_rows() -> None:
    result = load_builtin(SourceConfig(name="builtin"))
    assert len(result.tasks) == len(questions()) and result.skipped == []
    empty = []
    for task in result.tasks:
        assert task.env == "sql" and task.prompt == [] and task.source == "builtin"
        assert task.id == f"builtin:train:{task.meta['db_id']}-{task.id.rsplit('-', 1)[1]}"
        spec = task.spec
        assert set(spec) == {"db_path", "gold_sql", "question", "db_id"}
        assert Path(spec["db_path"]).is_absolute()
        conn = sqlite3.connect(f"file:{spec['db_path']}?mode=ro", uri=True)
        rows = conn.execute(spec["gold_sql"]).fetchall()
        conn.close()
        if not rows:
            empty.append(task.id)
    assert empty == []  # every question has an answer to find


def test_registered_under_builtin() -> None:
    assert registry.lookup("source", "builtin") is load_builtin
