"""Synthetic negatives (Agent-FLAN): corrupt a good reply, keep what the verifier rejects.

From the best valid episode of a task, each kind of corruption makes one rejected variant:

- `format`: the reply loses its required form (no fenced block, no `Action:` line; for
  ReAct-style replies the `ACTION:` marker);
- `invented-action`: an action or tool call that does not exist;
- `wrong-table` / `wrong-column`: the query reads another table or column of the same database;
- `syntax`: the query no longer parses.

Each variant is played through the task's environment by a scripted policy named
"synthetic:<kind>" (the turns after the corrupted one replay the original's, a DB Bench answer
being rebuilt from what the corrupted query returned), so it is scored by the same verifier;
a variant becomes a pair only when its score is below the original's by `min_margin`.
"""

from __future__ import annotations

import logging
import random
import re
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field

from agentpref.config import validate_options
from agentpref.pairs.base import PairContext, make_pair
from agentpref.pairs.common import CommonOptions, TurnScript, finish, is_valid, replay, select_tasks
from agentpref.pairs.gold import dbbench_answer, rows_to_answer
from agentpref.records import Message, Pair, Task, Trajectory, stable_hash

log = logging.getLogger(__name__)

Kind = Literal["format", "invented-action", "wrong-table", "wrong-column", "syntax"]
KINDS: tuple[Kind, ...] = ("format", "invented-action", "wrong-table", "wrong-column", "syntax")

_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_+-]*[ \t]*\n(.*?)(?:```|\Z)", re.S)
_ACTION_LINE = re.compile(r"^[ \t]*Action:[ \t]*(\w[\w ]*?)[ \t]*$", re.M)
_REACT_ACTION = re.compile(r"(ACTION:[ \t]*)([^\n]+)")
_INVENTED_TOOLS = ("lookup_schema", "web_search", "ask_database_admin", "fetch_rows")
_INVENTED_COMMANDS = ("teleport to goal", "use magic wand", "summon helper", "scan everything")


class NegativesOptions(CommonOptions):
    kinds: list[Kind] = Field(
        default_factory=lambda: list(KINDS), description="Corruptions to try, in order."
    )
    per_task: int | None = Field(
        default=None, ge=1, description="At most this many negatives per task (None: one per kind)."
    )
    min_score: float | None = Field(
        default=None, description="The good reply must score at least this (None: any valid)."
    )


# -- schema and SQL rewriting -------------------------------------------------------------------
def read_schema(db_path: str) -> dict[str, list[str]]:
    """{table: [columns]} of a SQLite file, opened read-only."""
    uri = Path(db_path).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
                "ORDER BY name"
            )
        ]
        return {
            t: [r[1] for r in conn.execute(f'PRAGMA table_info("{t}")')] for t in tables
        }
    finally:
        conn.close()


def _rng(*keys: object) -> random.Random:
    return random.Random(int(stable_hash(*keys, length=12), 16))


def wrong_table(sql: str, schema: dict[str, list[str]], rng: random.Random) -> str | None:
    """Swap one table the query reads for another table of the database."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except Exception:
        return None
    tables = [t for t in tree.find_all(exp.Table) if t.name]
    if not tables:
        return None
    used = {t.name.lower() for t in tables}
    others = [name for name in schema if name.lower() not in used]
    if not others:
        return None
    target = tables[0]
    target.set("this", exp.to_identifier(rng.choice(others)))
    return tree.sql(dialect="sqlite")


def wrong_column(sql: str, schema: dict[str, list[str]], rng: random.Random) -> str | None:
    """Swap one column the query names for another column of a table it reads."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except Exception:
        return None
    lower = {t.lower(): cols for t, cols in schema.items()}
    read = [t.name.lower() for t in tree.find_all(exp.Table) if t.name]
    known = {c.lower() for t in read for c in lower.get(t, [])}
    columns = [c for c in tree.find_all(exp.Column) if c.name and c.name.lower() in known]
    if not columns:
        return None
    target = columns[0]
    candidates = sorted(
        {c for t in read for c in lower.get(t, []) if c.lower() != target.name.lower()}
    )
    if not candidates:
        return None
    target.set("this", exp.to_identifier(rng.choice(candidates)))
    return tree.sql(dialect="sqlite")


def broken_syntax(sql: str) -> str | None:
    """Misspell the leading keyword and drop a closing parenthesis or the FROM keyword."""
    broken, n = re.subn(r"\bSELECT\b", "SELCT", sql, count=1, flags=re.I)
    if n == 0:
        broken, n = re.subn(r"\b(INSERT|UPDATE|DELETE|WITH)\b", r"\1X", sql, count=1, flags=re.I)
    if n == 0:
        return None
    return broken


def replace_sql(reply: str, old: str, new: str) -> str:
    """The reply with its query text swapped (or the fenced block's body when not verbatim)."""
    if old in reply:
        return reply.replace(old, new, 1)
    match = _FENCE.search(reply)
    if match:
        return reply[: match.start(1)] + new + "\n" + reply[match.end(1) :].lstrip("\n")
    return reply + "\n" + new


def format_violation(reply: str, sql: str | None) -> str | None:
    """The reply with its required markers removed: fences, `Action:` lines, `ACTION:` markers."""
    if _REACT_ACTION.search(reply) and sql is None:
        return _REACT_ACTION.sub(lambda m: m.group(2), reply, count=1).replace("ACTION:", "")
    if sql is None:
        return None
    prose = " ".join(sql.split())
    return f"To answer this I would look at the data with the query {prose} and report it."


def invented_action(reply: str, sql: str | None, rng: random.Random) -> str | None:
    """An action or tool call the environment does not offer."""
    if sql is None:
        match = _REACT_ACTION.search(reply)
        if match is None:
            return None
        return reply[: match.start(2)] + rng.choice(_INVENTED_COMMANDS) + reply[match.end(2) :]
    tool = rng.choice(_INVENTED_TOOLS)
    if _ACTION_LINE.search(reply):
        return f'Action: {tool}\nAction Input: {{"query": "{" ".join(sql.split())}"}}'
    return f'<tool_call>\n{{"name": "{tool}", "arguments": {{}}}}\n</tool_call>'


# -- the strategy ------------------------------------------------------------------------------
class SyntheticNegatives:
    """Chosen: a good reply; rejected: corrupted variants the verifier confirms are worse."""

    name = "negatives"

    def __init__(self, **options: object) -> None:
        self.options: NegativesOptions = validate_options(
            NegativesOptions, dict(options), "strategies.negatives.options"
        )

    def make_pairs(
        self, tasks: Sequence[Task], episodes: dict[str, list[Trajectory]], ctx: PairContext
    ) -> list[Pair]:
        plans: list[tuple[Task, Trajectory, int, str, list[str]]] = []
        for task in select_tasks(tasks, self.options, ctx):
            good = self._good_episode(task, episodes.get(task.id, []), ctx)
            if good is None:
                continue
            for kind, turn, variant in self.variants(task, good):
                plans.append((task, good, turn, kind, variant))

        pairs: list[Pair] = []
        counts: dict[str, int] = {}
        cap = self.options.per_task
        for task, good, turn, kind, turns in plans:
            if cap is not None and counts.get(task.id, 0) >= cap:
                continue
            tag = f"n.{kind}.{stable_hash(good.id, turns, length=8)}."
            script = TurnScript(_replay_turns(task, turns, turn))
            (bad,) = replay(ctx, [(task, 0, script)], f"synthetic:{kind}", tag, "synthetic")
            if good.score - bad.score < self.options.min_margin - 1e-12:
                log.debug("negatives: %s %s not confirmed worse", task.id, kind)
                continue
            cut = good.prompt_len + _assistant_index(good, turn)
            if bad.messages[:cut] != good.messages[:cut]:
                continue
            pairs.append(
                make_pair(
                    task, good, bad, self.name, ctx.round,
                    prompt=good.messages[:cut],
                    chosen_messages=good.messages[cut:],
                    rejected_messages=bad.messages[cut:],
                    meta={"negative": kind},
                )
            )
            counts[task.id] = counts.get(task.id, 0) + 1
        log.info("negatives: %d pairs from %d variants", len(pairs), len(plans))
        return finish(pairs, self.options, ctx)

    def _good_episode(
        self, task: Task, own: list[Trajectory], ctx: PairContext
    ) -> Trajectory | None:
        candidates = list(own)
        if ctx.store is not None:
            for kind in ("teacher", "expert"):
                candidates += ctx.store.episodes(task_id=task.id, round=ctx.round, kind=kind)
        candidates = [e for e in candidates if is_valid(e) and e.outcome != "env_error"]
        if self.options.min_score is not None:
            candidates = [e for e in candidates if e.score >= self.options.min_score - 1e-12]
        if not candidates:
            return None
        return sorted(candidates, key=lambda e: (-e.score, e.id))[0]

    def variants(self, task: Task, good: Trajectory) -> list[tuple[str, int, list[str]]]:
        """(kind, corrupted turn, assistant turns) for each applicable corruption."""
        from agentpref.envs.sql.extract import extract_sql

        replies = [m.content for m in good.continuation if m.role == "assistant"]
        if not replies:
            return []
        turn, sql = 0, None
        is_sql = task.env in ("sql", "dbbench")
        if is_sql:
            for i, reply in enumerate(replies):
                sql = extract_sql(reply)
                if sql is not None:
                    turn = i
                    break
        reply = replies[turn]
        schema: dict[str, list[str]] = {}
        db_path = task.spec.get("db_path")
        if sql is not None and db_path and Path(db_path).is_file():
            try:
                schema = read_schema(str(db_path))
            except sqlite3.Error as exc:
                log.debug("negatives: cannot read schema of %s: %s", db_path, exc)
        out: list[tuple[str, int, list[str]]] = []
        for kind in self.options.kinds:
            rng = _rng(task.id, good.id, kind)
            new: str | None = None
            if kind == "format":
                new = format_violation(reply, sql)
            elif kind == "invented-action":
                new = invented_action(reply, sql, rng)
            elif sql is not None and kind == "wrong-table" and schema:
                q = wrong_table(sql, schema, rng)
                new = replace_sql(reply, sql, q) if q else None
            elif sql is not None and kind == "wrong-column" and schema:
                q = wrong_column(sql, schema, rng)
                new = replace_sql(reply, sql, q) if q else None
            elif sql is not None and kind == "syntax":
                q = broken_syntax(sql)
                new = replace_sql(reply, sql, q) if q else None
            if new is None or new == reply:
                continue
            out.append((kind, turn, replies[:turn] + [new] + replies[turn + 1 :]))
        return out


def _assistant_index(e: Trajectory, turn: int) -> int:
    """Offset within the continuation of the episode's `turn`-th assistant message."""
    seen = -1
    for i, m in enumerate(e.continuation):
        if m.role == "assistant":
            seen += 1
            if seen == turn:
                return i
    return len(e.continuation)


def _replay_turns(
    task: Task, turns: list[str], corrupted: int
) -> Callable[[list[Message], int], str | None]:
    """Replies for a variant: the given turns, a DB Bench answer rebuilt after the corruption."""

    def reply(conversation: list[Message], turn: int) -> str | None:
        if turn >= len(turns):
            return None
        text = turns[turn]
        if (
            task.env == "dbbench"
            and turn > corrupted
            and text.lstrip().startswith("Action: Answer")
            and conversation[-1].role == "user"
        ):
            return dbbench_answer(rows_to_answer(conversation[-1].content))
        return text

    return reply
