"""Pull one SQL query out of a model reply.

Order of preference: a ```sql fenced block, then any fenced block, then a bare statement that
starts a line (optionally after a short label such as "SQL:") with a SQL keyword. A fence the
model never closed (cut off by the token limit) still counts up to the end of the text.
"""

from __future__ import annotations

import re

_SQL_FENCE = re.compile(r"```[ \t]*(?:sql|sqlite|mysql)[ \t]*\n?(.*?)(?:```|\Z)", re.I | re.S)
_ANY_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)(?:```|\Z)", re.S)
_KEYWORDS = (
    "SELECT|WITH|VALUES|INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|PRAGMA|ATTACH|DETACH"
    "|VACUUM|EXPLAIN"
)
_BARE_LINE = re.compile(
    rf"^[ \t>*-]*(?:[A-Za-z][A-Za-z ]{{0,24}}:[ \t]*)?((?:{_KEYWORDS})\b.*)$", re.I | re.M
)
_BARE_UPPER = re.compile(r"\b((?:SELECT|WITH)\b.*)", re.S)
_NOT_SQL_LANGS = {"python", "py", "json", "bash", "sh", "text", "javascript", "js"}


def extract_sql(text: str | None) -> str | None:
    """The SQL query in a reply, or None when there is none."""
    if not text:
        return None
    for match in _SQL_FENCE.finditer(text):
        sql = _clean(match.group(1))
        if sql:
            return sql
    for match in _ANY_FENCE.finditer(text):
        if match.group(1).lower() in _NOT_SQL_LANGS:
            continue
        sql = _clean(match.group(2))
        if sql and re.match(rf"(?:{_KEYWORDS})\b", sql, re.I):
            return sql
    for match in _BARE_LINE.finditer(text):
        sql = _bare_statement(text, match.start(1))
        if sql:
            return sql
    upper = _BARE_UPPER.search(text)
    if upper:
        return _bare_statement(text, upper.start(1))
    return None


def _bare_statement(text: str, start: int) -> str | None:
    """From `start` up to the first top-level semicolon or blank line."""
    rest = text[start:]
    end = _statement_end(rest)
    sql = rest[:end].split("```", 1)[0]
    blank = re.search(r"\n[ \t]*\n", sql)
    if blank:
        sql = sql[: blank.start()]
    return _clean(sql)


def _statement_end(sql: str) -> int:
    """Index just past the first semicolon outside quotes (or len(sql))."""
    quote: str | None = None
    i = 0
    while i < len(sql):
        ch = sql[i]
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
        elif ch == ";":
            return i + 1
        i += 1
    return len(sql)


def _clean(sql: str) -> str | None:
    sql = sql.strip()
    if sql.lower().startswith("sql\n"):
        sql = sql[4:].strip()
    return sql or None
