"""DB Bench text protocol: reply parsing, observation rendering, opening turns, options."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agentpref.envs.sql.dbbench import (
    DBBenchEnv,
    parse_reply,
    render_rows,
    table_hash,
    truncate,
)
from agentpref.errors import ConfigError
from agentpref.records import Task


def op(sql: str, thought: str = "I will look.") -> str:
    return f"{thought}\nAction: Operation\n```sql\n{sql}\n```"


# --------------------------------------------------------------------------- parsing


def test_operation_reply_gives_its_sql():
    p = parse_reply(op("SELECT name FROM t WHERE id = 1;"))
    assert p.action == "operation"
    assert p.sql == "SELECT name FROM t WHERE id = 1;"


def test_operation_sql_over_several_lines_is_joined_and_only_first_block_counts():
    text = "Action: Operation\n```sql\nSELECT a\nFROM t\n```\nand\n```sql\nDROP TABLE t\n```"
    p = parse_reply(text)
    assert p.action == "operation"
    assert p.sql == "SELECT a FROM t"


def test_answer_reply_gives_the_rest_of_the_final_answer_line():
    p = parse_reply('Counted.\nAction: Answer\nFinal Answer: ["3", "x"]\nthanks')
    assert p.action == "answer"
    assert p.answer == '["3", "x"]'


def test_final_answer_without_action_line_still_answers_like_the_benchmark():
    assert parse_reply('So\nFinal Answer: ["a"]').action == "answer"


@pytest.mark.parametrize(
    "text",
    [
        "SELECT * FROM t",  # bare SQL
        "Action: Operation\nSELECT * FROM t",  # no fenced block
        "Action: Operation\n```\nSELECT 1\n```",  # fence without the sql tag
        "Action: Operation\n```sql\nSELECT 1```",  # block not closed on its own line
        "Action: Operation",  # action word without its newline
        "Action: Answer\nFinal answer: [1]",  # wrong case
        "Final Answer: [1]",  # answer not on its own line
        "Action: Query\n```sql\nSELECT 1\n```",  # unknown action, no answer
        "",
    ],
)
def test_malformed_replies_are_invalid(text):
    p = parse_reply(text)
    assert p.action == "invalid"
    assert p.problem


# --------------------------------------------------------------------------- rendering


def test_rows_render_as_python_repr_of_tuples():
    assert render_rows([("Lima",)]) == "[('Lima',)]"
    assert render_rows([(3,)]) == "[(3,)]"
    assert render_rows([]) == "[]"
    assert render_rows([(1, None, 2.5, "it's")]) == "[(1, None, 2.5, \"it's\")]"


def test_long_observations_are_cut_at_800_and_marked():
    rows = [(i, "x" * 20) for i in range(100)]
    out = render_rows(rows)
    assert len(out) == 800 + len("[TRUNCATED]")
    assert out.endswith("[TRUNCATED]")
    assert out[:800] == str(rows)[:800]
    assert truncate("a" * 800) == "a" * 800
    assert truncate("a" * 801) == "a" * 800 + "[TRUNCATED]"


def test_table_hash_ignores_row_order_but_not_content():
    a = sqlite3.connect(":memory:")
    b = sqlite3.connect(":memory:")
    a.executescript("CREATE TABLE t(x, y); INSERT INTO t VALUES (1,'a'),(2,'b'),(2,'b');")
    b.executescript("CREATE TABLE t(x, y); INSERT INTO t VALUES (2,'b'),(1,'a'),(2,'b');")
    assert table_hash(a, "t") == table_hash(b, "t")
    b.execute("DELETE FROM t WHERE rowid = (SELECT max(rowid) FROM t)")
    assert table_hash(a, "t") != table_hash(b, "t")  # duplicates count
    a.executescript("CREATE TABLE u(x); INSERT INTO u VALUES (NULL)")
    b.executescript("CREATE TABLE u(x); INSERT INTO u VALUES ('None')")
    assert table_hash(a, "u") != table_hash(b, "u")


# --------------------------------------------------------------------------- opening turns


@pytest.fixture()
def two_table_db(tmp_path: Path) -> Path:
    path = tmp_path / "shop.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, price REAL);"
        "CREATE TABLE orders(id INTEGER, item_id INTEGER, qty INTEGER);"
        "INSERT INTO items VALUES (1,'pen',1.5),(2,'ink',4.0);"
        "INSERT INTO orders VALUES (1,1,3),(2,2,1),(3,1,2);"
    )
    conn.commit()
    conn.close()
    return path


def test_opening_turns_follow_the_protocol(two_table_db):
    env = DBBenchEnv()
    task = Task(
        id="t:1",
        source="test",
        env="dbbench",
        spec={"db_path": str(two_table_db), "gold_sql": "SELECT 1", "question": "How many?"},
    )
    msgs = env.reset(task)
    env.close()
    assert [m.role for m in msgs] == ["user", "assistant", "user"]
    assert "Action: Operation" in msgs[0].content and "Final Answer:" in msgs[0].content
    assert msgs[1].content == "Ok."
    assert msgs[2].content == (
        "How many?\n"
        "The name of this table is items, and the headers of this table are id,name,price.\n"
        "The name of this table is orders, and the headers of this table are id,item_id,qty."
    )


def test_add_description_and_evidence_are_used_verbatim(two_table_db):
    env = DBBenchEnv()
    spec = {
        "db_path": str(two_table_db),
        "answer": ["1"],
        "question": "Q?",
        "evidence": "pen means item 1",
        "add_description": "The name of this table is items, and the headers are id.",
    }
    msgs = env.reset(Task(id="t:2", source="test", env="dbbench", spec=spec))
    env.close()
    assert msgs[2].content == (
        "Q?\nHint: pen means item 1\nThe name of this table is items, and the headers are id."
    )


def test_instruction_file_replaces_the_built_in_text(tmp_path, two_table_db):
    custom = tmp_path / "instr.txt"
    custom.write_text("Operate the database. Use Action: Operation or Action: Answer.\n")
    env = DBBenchEnv(instruction_file=str(custom), acknowledgement="Sure.")
    spec = {"db_path": str(two_table_db), "gold_sql": "SELECT 1", "question": "Q?"}
    msgs = env.reset(Task(id="t:3", source="test", env="dbbench", spec=spec))
    env.close()
    assert msgs[0].content == "Operate the database. Use Action: Operation or Action: Answer."
    assert msgs[1].content == "Sure."


def test_bad_options_are_one_line_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'max_ops'"):
        DBBenchEnv(max_ops=3)
    with pytest.raises(ConfigError, match="does not exist"):
        DBBenchEnv(instruction_file=str(tmp_path / "missing.txt"))
    with pytest.raises(ConfigError, match="unknown key 'bonus'"):
        DBBenchEnv(reward={"bonus": 1})
    with pytest.raises(ConfigError, match="outranks"):
        DBBenchEnv(reward={"partial": 0.9})
