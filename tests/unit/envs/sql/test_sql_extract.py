"""SQL extraction from model replies."""

from __future__ import annotations

import pytest

from agentpref.envs.sql.extract import extract_sql


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("```sql\nSELECT 1\n```", "SELECT 1"),
        ("Let me think.\n```SQL\nSELECT name\nFROM t;\n```\nDone.", "SELECT name\nFROM t;"),
        ("first ```sql\n\n```, then ```sql\nSELECT 2\n```", "SELECT 2"),  # empty block skipped
        ("```sql\nSELECT a FROM t WHERE x = 1", "SELECT a FROM t WHERE x = 1"),  # cut off
        ("```\nSELECT 3\n```", "SELECT 3"),
        ("```python\nprint(1)\n```\nSELECT 4;", "SELECT 4;"),
        (
            "The query is:\nSELECT count(*) FROM singer;\nIt counts rows.",
            "SELECT count(*) FROM singer;",
        ),
        ("SQL: SELECT x FROM t\n\nThis returns x.", "SELECT x FROM t"),
        ("WITH a AS (SELECT 1) SELECT * FROM a", "WITH a AS (SELECT 1) SELECT * FROM a"),
        (
            "I answer: SELECT name FROM t WHERE n = 'a;b'; done",
            "SELECT name FROM t WHERE n = 'a;b';",
        ),
        ("DROP TABLE t;", "DROP TABLE t;"),  # extracted; the sandbox refuses it
        ("```sql\n```sql\nSELECT 5\n```", "SELECT 5"),
    ],
)
def test_extract(reply: str, expected: str) -> None:
    assert extract_sql(reply) == expected


@pytest.mark.parametrize(
    "reply",
    ["", None, "I don't know.", "You should select the rows you need.", "```python\nx = 1\n```"],
)
def test_no_sql(reply: str | None) -> None:
    assert extract_sql(reply) is None
