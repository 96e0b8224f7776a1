"""DB Bench-style multi-turn SQL episodes (env "dbbench").

The episode follows AgentBench DB Bench's text protocol (see PROTOCOLS.md): an instruction, a
short acknowledgement, then the question with one "The name of this table is T, and the
headers of this table are a,b,c." line per table. Each assistant reply either runs one SQL
statement (`Action: Operation` + a fenced sql block) and gets back the Python repr of the rows
or the error text, cut at 800 characters, or ends the episode with `Action: Answer` and
`Final Answer: [...]`. A reply matching neither pattern fails at once; at most 15 operations.

Two engines play it (`engine`): `mysql`, the benchmark's own world (a MariaDB/MySQL server,
one database per episode with every column TEXT, MySQL's rows and error texts, the
benchmark's MD5 table hash; see `mysql_engine`), the default when a server is available; and
`sqlite`, a private copy of the task's SQLite file per episode, where SQLite-only syntax that
MySQL would reject is counted (`mysql_incompatible`). Either way the source database never
changes. Query tasks are scored with DB Bench's answer comparison against the task's gold
answer list (or the gold query's result); modification tasks (spec["kind"]
insert/update/delete) by an order-independent hash of the table after the episode against the
table after the gold statement (or the record's `answer_md5`).

Limits on both engines: a deadline per statement and for the final table hash, rows fetched
only until the observation is known to be cut (a huge result is never held), a cap on how
much one episode's database may grow (the statement that passes it fails as the policy's
error), and no access to any other database or file.
"""

from __future__ import annotations

import ast
import datetime
import decimal
import json
import logging
import re
import shutil
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from agentpref.envs.base import Branching, Environment, Script, StepResult, interval, rate
from agentpref.envs.sql import db
from agentpref.envs.sql.compare import dbbench_answer_match, parse_dbbench_answer
from agentpref.envs.sql.dbbench_reward import DBBenchRewardOptions, EpisodeStats, episode_reward
from agentpref.errors import ConfigError, DataError
from agentpref.plugins import Options, validate_model
from agentpref.records import Message, Task, Trajectory, messages
from agentpref.scratch import scratch_dir

log = logging.getLogger(__name__)

MODIFICATION_KINDS = ("insert", "update", "delete")
TRUNCATED = "[TRUNCATED]"
GOLD_TIMEOUT_S = 30.0
GOLD_MAX_ROWS = 100_000
GOLD_MAX_CHARS = 10_000_000
MAX_VALUE_BYTES = 1_000_000  # per value; the benchmark's cells are short, MySQL TEXT holds 64 KB
DEFAULT_INSTRUCTION = "dbbench_instruction.txt"
Engine = Literal["mysql", "sqlite"]

_ACTION_RE = re.compile(r"Action: (.*?)\n")
_SQL_RE = re.compile(r"```sql\n([\s\S]*?)\n```")
_ANSWER_RE = re.compile(r"\nFinal Answer:(.*)")


class DBBenchOptions(Options):
    """Options of the dbbench environment (recipe `envs.dbbench`)."""

    engine: Engine | None = Field(
        default=None,
        description="mysql (the benchmark's engine: a MariaDB/MySQL server) or sqlite; "
        "unset: mysql when a server is available, else sqlite.",
    )
    url: str | None = Field(
        default=None,
        description="A MySQL 8 / MariaDB server to use, mysql://user:pass@host:port; unset: "
        "agentpref starts a private MariaDB from the system's binaries.",
    )
    max_operations: int = Field(default=15, ge=1, description="Operations per episode.")
    observation_chars: int = Field(
        default=800, ge=1, description="Observations longer than this are cut, + [TRUNCATED]."
    )
    timeout_s: float = Field(
        default=5.0, gt=0.0, description="Deadline for one statement and for the final hash."
    )
    max_rows: int = Field(
        default=1000, ge=1, description="Rows fetched per statement (the rest are never shown)."
    )
    max_growth_mb: float = Field(
        default=64.0,
        gt=0.0,
        description="How much an episode's database may grow; the statement that grows it "
        "further fails (as the policy's error).",
    )
    instruction_file: str | None = Field(
        default=None, description="Text file replacing the built-in instruction text."
    )
    acknowledgement: str = Field(default="Ok.", description="The assistant's opening reply.")
    reward: dict[str, Any] = Field(
        default_factory=dict,
        description="Reward weights (envs.sql.dbbench_reward.DBBenchRewardOptions).",
    )


# --------------------------------------------------------------------------- protocol


@dataclass(frozen=True)
class ParsedReply:
    """A reply read the way DB Bench reads it."""

    action: str
    """operation, answer or invalid."""
    sql: str = ""
    answer: str = ""
    problem: str = ""


def parse_reply(text: str) -> ParsedReply:
    """Read a reply with DB Bench's patterns.

    The action word is the text after the first `Action: ` up to a newline. `Operation`
    needs a fenced sql block (its SQL, with newlines turned into spaces); anything else is
    an answer when a line starts with `Final Answer:`, and invalid otherwise.
    """
    action = _ACTION_RE.search(text)
    if action and action.group(1) == "Operation":
        block = _SQL_RE.search(text)
        if not block:
            return ParsedReply("invalid", problem="Action: Operation without a ```sql block")
        sql = block.group(1).strip().replace("\n", " ")
        return ParsedReply("operation", sql=sql)
    answer = _ANSWER_RE.search(text)
    if answer:
        return ParsedReply("answer", answer=answer.group(1).strip())
    if action:
        return ParsedReply("invalid", problem=f"unknown action {action.group(1)[:40]!r}")
    return ParsedReply("invalid", problem="no 'Action: Operation' or 'Final Answer:'")


def truncate(text: str, limit: int = 800) -> str:
    """Cut an observation to `limit` characters and mark the cut."""
    return text if len(text) <= limit else text[:limit] + TRUNCATED


def render_rows(rows: list[tuple[Any, ...]], limit: int = 800) -> str:
    """Rows as the benchmark shows them: the Python repr of a list of tuples."""
    return truncate(str([tuple(r) for r in rows]), limit)


def table_line(table: str, columns: list[str]) -> str:
    headers = ",".join(columns)
    return f"The name of this table is {table}, and the headers of this table are {headers}."


def gold_answer(rows: list[tuple[Any, ...]]) -> list[str]:
    """A gold query's result as DB Bench's answer list: every cell, row by row, as text."""
    return [str(cell) for row in rows for cell in row]


def answer_overlap(answer: list[Any], gold: list[Any]) -> float:
    """Jaccard overlap of the answer and gold value sets (numbers compared as numbers)."""

    def norm(v: str) -> str:
        try:
            return repr(float(v))
        except ValueError:
            return v.strip()

    a, g = {norm(str(v)) for v in answer}, {norm(str(v)) for v in gold}
    if not a and not g:
        return 1.0
    return len(a & g) / len(a | g)


# --------------------------------------------------------------------------- SQLite


_quote = db.quote_ident
list_tables = db.tables_with_columns


class HashTimeout(Exception):
    """The table hash ran past its deadline."""


def table_hash(conn: sqlite3.Connection, table: str, timeout_s: float | None = None) -> str:
    """An order-independent hash of every row of `table` (duplicates count), as DB Bench does
    with MD5 in MySQL (agentpref.envs.sql.db.table_hash). With `timeout_s`, SQLite and the
    scan both stop at the deadline (HashTimeout)."""
    try:
        return db.table_hash(conn, table, timeout_s)
    except db.DeadlineExceeded:
        raise HashTimeout(table) from None
    except sqlite3.OperationalError as exc:
        if db.is_interrupt(exc):
            raise HashTimeout(table) from None
        raise


@dataclass
class Execution:
    rows: list[tuple[Any, ...]]
    error: str | None = None
    timed_out: bool = False
    cut: bool = False
    """Fetching stopped before the end: the rendered rows are cut."""


def fetch_limited(
    fetch: Callable[[int], Sequence[Any]], chars: int, max_rows: int
) -> tuple[list[tuple[Any, ...]], bool]:
    """Rows in growing chunks until the repr of the list reaches `chars` characters.

    Once "[" plus the rows so far is `chars` long, the first `chars` characters of the
    whole result's repr are known, so nothing more is read: (rows, cut). A huge result is
    never held in memory, and its observation is the same as the whole result's.
    """
    rows: list[tuple[Any, ...]] = []
    size = 1
    chunk = 1
    while len(rows) < max_rows:
        got = fetch(min(chunk, max_rows - len(rows)))
        if not got:
            return rows, False
        for r in got:
            t = tuple(r)
            size += len(repr(t)) + (2 if rows else 0)
            rows.append(t)
            if size >= chars:
                return rows, True
        if len(got) < chunk:
            return rows, False
        chunk = min(chunk * 2, 256)
    return rows, True


def execute(
    conn: sqlite3.Connection,
    sql: str,
    timeout_s: float,
    max_rows: int,
    max_chars: int = GOLD_MAX_CHARS,
) -> Execution:
    """Run one statement under a deadline; errors come back as text, never raised.

    Rows are read until their repr reaches `max_chars` characters, so a huge result is
    never held in memory.
    """
    try:
        with db.deadline(conn, timeout_s):
            cur = conn.execute(sql)
            if not cur.description:
                return Execution([])
            rows, cut = fetch_limited(cur.fetchmany, max_chars, max_rows)
            return Execution(rows, cut=cut)
    except sqlite3.OperationalError as exc:
        if db.is_interrupt(exc):
            return Execution([], f"Query timed out after {timeout_s:g} seconds.", True)
        return Execution([], str(exc))
    except (sqlite3.Error, ValueError, OverflowError, MemoryError) as exc:
        return Execution([], str(exc) or type(exc).__name__)


copy_database = db.copy_database


_HASH_CACHE: dict[tuple[str, int, int, str, str], str] = {}
_HASH_LOCK = threading.Lock()


def gold_table_hash(db_path: Path, gold_sql: str, table: str, timeout_s: float) -> str:
    """Hash of `table` after the gold statement ran on an in-memory copy, once per file version."""

    def compute() -> str:
        mem = db.copy_to_memory(db_path)
        try:
            run = execute(mem, gold_sql, timeout_s, 1)
            if run.error:
                raise DataError(f"gold statement fails on {db_path.name}: {run.error}")
            return table_hash(mem, table, timeout_s)
        finally:
            mem.close()

    st = db_path.stat()
    key = (str(db_path.resolve()), st.st_mtime_ns, st.st_size, gold_sql, table)
    with _HASH_LOCK:
        hit = _HASH_CACHE.get(key)
    if hit is None:
        hit = compute()
        with _HASH_LOCK:
            _HASH_CACHE[key] = hit
    return hit


# Pragmas an episode may not set: they would lift the size cap or break the file.
_LOCKED_PRAGMAS = {"max_page_count", "page_size", "writable_schema", "mmap_size"}


# printf('%.*c', 1000000000, 'x') loops inside one SQLite call for seconds, where no deadline
# can stop it; MySQL has no printf, so the benchmark's world loses nothing.
_LOCKED_FUNCTIONS = {"printf", "format"}
_SQLITE_FUNCTION = getattr(sqlite3, "SQLITE_FUNCTION", 31)


def _authorizer(action: int, arg1: str | None, arg2: str | None, *_: Any) -> int:
    if action == sqlite3.SQLITE_PRAGMA and arg1 and arg1.lower() in _LOCKED_PRAGMAS and arg2:
        return sqlite3.SQLITE_DENY
    if action == _SQLITE_FUNCTION and arg2 and arg2.lower() in _LOCKED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


class SQLiteEpisode:
    """One episode's private SQLite database (a copy of the task's file, or a snapshot)."""

    engine = "sqlite"

    def __init__(
        self,
        conn: sqlite3.Connection,
        folder: Path | None,
        timeout_s: float,
        max_growth_bytes: int,
    ) -> None:
        self.conn = conn
        self.folder = folder
        self.timeout_s = timeout_s
        # The copy is the only file the policy may touch: no ATTACH (nor VACUUM INTO, which
        # attaches), no giant values, and a page cap SQLite itself enforces.
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
        conn.execute(f"PRAGMA max_page_count = {pages + max(1, max_growth_bytes // page_size)}")
        # Temporary results (INSERT INTO t SELECT ... FROM t is materialised first) too.
        conn.execute(f"PRAGMA temp.max_page_count = {max(1, max_growth_bytes // page_size)}")
        conn.set_authorizer(_authorizer)
        self.last_state = self.state()

    @classmethod
    def copy_of(cls, src: Path, timeout_s: float, max_growth_bytes: int) -> SQLiteEpisode:
        folder = scratch_dir("dbbench")
        try:
            copy = folder / src.name
            copy_database(src, copy)
            # Autocommit: every statement is applied at once, as on the benchmark.
            conn = sqlite3.connect(copy, isolation_level=None, check_same_thread=False)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return cls(conn, folder, timeout_s, max_growth_bytes)

    @classmethod
    def from_bytes(cls, data: bytes, timeout_s: float, max_growth_bytes: int) -> SQLiteEpisode:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.deserialize(data)
        return cls(conn, None, timeout_s, max_growth_bytes)

    def tables(self) -> list[tuple[str, list[str]]]:
        return list_tables(self.conn)

    def public(self, text: str) -> str:
        return text

    def state(self) -> tuple[int, int]:
        """(rows changed so far, schema version): moves on every data or schema write."""
        version = self.conn.execute("PRAGMA schema_version").fetchone()[0]
        return self.conn.total_changes, int(version)

    def run(self, sql: str, limit: int, max_rows: int) -> tuple[Execution, bool]:
        """(execution, whether it wrote)."""
        run = execute(self.conn, sql, self.timeout_s, max_rows, limit)
        if self.conn.in_transaction:  # an explicit BEGIN stays open; keep writes applied
            try:
                self.conn.commit()
            except sqlite3.Error:
                pass
        state = self.state()
        wrote = state != self.last_state
        self.last_state = state
        return run, wrote

    def table_hash(self, table: str) -> str | None:
        try:
            return table_hash(self.conn, table, self.timeout_s)
        except (sqlite3.Error, HashTimeout):  # the policy dropped, broke or bloated the table
            return None

    def dump(self) -> bytes:
        return self.conn.serialize()

    def close(self) -> None:
        try:
            self.conn.close()
        finally:
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)
                self.folder = None


# --------------------------------------------------------------------------- MySQL-only syntax

_TABLE_KEYWORDS = {"FROM", "JOIN", "INTO", "UPDATE", "TABLE"}


def mysql_incompatibilities(sql: str, tables: Sequence[tuple[str, list[str]]]) -> list[str]:
    """SQLite-only syntax in `sql` that MySQL rejects or reads differently.

    A double-quoted name of a table or column (MySQL reads "x" as a string, so `WHERE "Name"
    = 'a'` silently matches nothing), a [bracketed] name (a syntax error in MySQL), and a
    table named in another letter case (MySQL's table names are case-sensitive).
    """
    from sqlglot.dialects.sqlite import SQLite
    from sqlglot.errors import SqlglotError
    from sqlglot.tokens import TokenType

    try:
        tokens = SQLite().tokenize(sql)
    except SqlglotError:
        return []
    names = {t for t, _ in tables}
    lower_tables = {t.lower() for t in names}
    lower_names = lower_tables | {c.lower() for _, cols in tables for c in cols}
    found: list[str] = []
    prev = ""
    for tok in tokens:
        if tok.token_type == TokenType.IDENTIFIER:
            opener = sql[tok.start] if tok.start < len(sql) else ""
            if opener == "[":
                found.append("bracketed_identifier")
            elif opener == '"' and tok.text.lower() in lower_names:
                found.append("double_quoted_identifier")
        if tok.token_type in (TokenType.IDENTIFIER, TokenType.VAR) and prev in _TABLE_KEYWORDS:
            if tok.text not in names and tok.text.lower() in lower_tables:
                found.append("table_name_case")
        prev = tok.text.upper()
    return sorted(set(found))


# --------------------------------------------------------------------------- environment


def load_instruction(path: str | None) -> str:
    """The instruction text: the user's template file, else the built-in wording."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(
                f"envs.dbbench.instruction_file {str(p)!r} does not exist; point it at a text file"
            )
        text = p.read_text(encoding="utf-8").strip()
        if not text:
            raise ConfigError(f"envs.dbbench.instruction_file {str(p)!r} is empty")
        return text
    return (
        resources.files("agentpref").joinpath("templates", DEFAULT_INSTRUCTION).read_text("utf-8")
    ).strip()


def normalise_sql(sql: str) -> str:
    return " ".join(sql.rstrip().rstrip(";").split()).lower()


_WARNED: set[str] = set()


def resolve_engine(engine: str | None, url: str | None) -> str:
    """The engine to play on: the one asked for, else mysql when a server is available."""
    if engine is not None:
        return engine
    from agentpref.envs.sql.mysql_server import FIX, unavailable_reason

    reason = unavailable_reason(url)
    if reason is None:
        return "mysql"
    if reason not in _WARNED:
        _WARNED.add(reason)
        log.warning(
            "dbbench plays on SQLite, not the benchmark's MySQL: %s; to fix, %s", reason, FIX
        )
    return "sqlite"


def public_name(task: Task) -> str:
    """The database name the benchmark would use: the record's table (its db_id)."""
    spec = task.spec
    return str(spec.get("db_id") or spec.get("table") or Path(str(spec["db_path"])).stem)


class DBBenchEnv(Environment):
    """One DB Bench-style episode on a private database (MySQL or SQLite)."""

    name = "dbbench"
    Options = DBBenchOptions
    domain: ClassVar[str] = "dbbench"
    score_range: ClassVar[tuple[float, float]] = (-0.95, 1.0)
    judge_template: ClassVar[str] = "judge_sql.txt"
    headline: ClassVar[str] = "success_rate"
    branching: ClassVar[Branching] = "snapshot"
    options: DBBenchOptions

    @classmethod
    def validate(cls, options: dict[str, Any] | None, where: str | None = None) -> Any:
        opts = super().validate(options, where)
        validate_model(DBBenchRewardOptions, opts.reward, f"{where or cls.where()}.reward")
        if opts.url:
            from agentpref.envs.sql.mysql_server import parse_url

            parse_url(opts.url)
        if opts.engine == "mysql":
            from agentpref.envs.sql.mysql_server import FIX, unavailable_reason

            reason = unavailable_reason(opts.url)
            if reason is not None:
                raise ConfigError(f"{where or cls.where()}.engine is mysql but {reason}; {FIX}")
        return opts

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.reward_options: DBBenchRewardOptions = validate_model(
            DBBenchRewardOptions, self.options.reward, "envs.dbbench.reward"
        )
        self.instruction = load_instruction(self.options.instruction_file)
        self.engine = resolve_engine(self.options.engine, self.options.url)
        self._db: Any = None
        self.task: Task | None = None

    @property
    def growth_bytes(self) -> int:
        return int(self.options.max_growth_mb * 1024 * 1024)

    # -- episode set-up

    def _check(self, task: Task) -> None:
        spec = task.spec
        for key in ("db_path", "question"):
            if not spec.get(key):
                raise DataError(f"task {task.id}: spec has no {key!r}; the dbbench env needs it")
        if not Path(spec["db_path"]).is_file():
            raise DataError(f"task {task.id}: database {str(spec['db_path'])!r} does not exist")
        self.kind = str(spec.get("kind") or "query").lower()
        if self.kind not in ("query", *MODIFICATION_KINDS):
            raise DataError(f"task {task.id}: spec kind {self.kind!r} is not query/insert/...")

    def _open(self, task: Task) -> Any:
        """A new episode database for `task` on the engine."""
        src = Path(task.spec["db_path"])
        if self.engine == "sqlite":
            return SQLiteEpisode.copy_of(src, self.options.timeout_s, self.growth_bytes)
        from agentpref.envs.sql.mysql_engine import MySQLEpisode, source_tables
        from agentpref.envs.sql.mysql_server import server

        return MySQLEpisode(
            server(self.options.url),
            public_name(task),
            source_tables(src),
            self.options.timeout_s,
            self.growth_bytes,
            watch_table=task.spec.get("table"),
        )

    def reset(self, task: Task) -> list[Message]:
        self.close()
        self._check(task)
        spec = task.spec
        self.task = task
        self._db = self._open(task)
        tables = self._db.tables()
        self.table: str | None = spec.get("table")
        if self.kind in MODIFICATION_KINDS:
            if not self.table or self.table not in {t for t, _ in tables}:
                self.close()
                raise DataError(f"task {task.id}: spec table {self.table!r} is not in the database")
            if not spec.get("gold_sql") and not spec.get("answer_md5"):
                self.close()
                raise DataError(f"task {task.id}: modification task without gold_sql")
        elif not spec.get("gold_sql") and spec.get("answer") is None:
            self.close()
            raise DataError(f"task {task.id}: query task without gold_sql or answer")

        self._reset_counts()
        opening = messages(
            ("user", self.instruction),
            ("assistant", self.options.acknowledgement),
        )
        turns = self._history_turns(spec, tables)
        self._reset_counts()  # the earlier turns' statements are not the policy's
        if turns is not None:
            return opening + turns
        return opening + messages(("user", self.question_text(spec, tables)))

    def _reset_counts(self) -> None:
        self.operations = 0
        self.errors = 0
        self.timeouts = 0
        self.wasted = 0
        self.writes = 0
        self.incompatible = 0
        self._seen: set[str] = set()

    def _history_turns(
        self, spec: dict[str, Any], tables: list[tuple[str, list[str]]]
    ) -> list[Message] | None:
        """A conversational task's earlier turns as DB Bench turns: each earlier question, the
        gold query run as an operation with its real observation, the answer from its rows;
        then the question asked now. None (the flat form) when a task has no history, asks
        for the flat form, or an earlier query does not run on this engine."""
        history = spec.get("history") or []
        if not history or spec.get("history_style") != "messages":
            return None
        out: list[Message] = []
        questions = [str(h.get("question", "")).strip() for h in history]
        for i, turn in enumerate(history):
            sql = str(turn.get("sql") or "").strip()
            if not sql:
                return None
            first = {**spec, "question": questions[i], "history": [], "evidence": None}
            text = self.question_text(first, tables) if i == 0 else questions[i]
            out.append(Message(role="user", content=text))
            out.append(Message(role="assistant", content=dbbench_operation(sql)))
            observed = self._operate(sql)
            if self.errors:
                return None
            out.append(Message(role="user", content=observed))
            out.append(Message(role="assistant", content=dbbench_answer(rows_to_answer(observed))))
        now = str(spec["question"]).strip()
        if spec.get("evidence"):
            now += f"\nHint: {str(spec['evidence']).strip()}"
        out.append(Message(role="user", content=now))
        return out

    @staticmethod
    def question_text(spec: dict[str, Any], tables: list[tuple[str, list[str]]]) -> str:
        """The question, earlier turns and evidence if any, then one line per table."""
        parts: list[str] = []
        history = spec.get("history") or []
        if history:
            earlier = " ".join(str(h.get("question", "")).strip() for h in history)
            parts.append(f"Earlier questions in this conversation: {earlier}")
        parts.append(str(spec["question"]).strip())
        if spec.get("evidence"):
            parts.append(f"Hint: {str(spec['evidence']).strip()}")
        if spec.get("add_description"):
            parts.append(str(spec["add_description"]).strip())
        else:
            parts.extend(table_line(name, cols) for name, cols in tables)
        return "\n".join(parts)

    # -- stepping

    def step(self, reply: str) -> StepResult:
        if self._db is None or self.task is None:
            raise RuntimeError("step() before reset()")
        parsed = parse_reply(reply)
        if parsed.action == "invalid":
            return self._finish(
                answer=None, format_ok=False, outcome="failed_format", problem=parsed.problem
            )
        if parsed.action == "answer":
            return self._finish(answer=parsed.answer, format_ok=True, outcome="done")
        if self.operations >= self.options.max_operations:
            return self._finish(answer=None, format_ok=True, outcome="max_turns")
        return StepResult(observation=self._operate(parsed.sql), done=False)

    def _operate(self, sql: str) -> str:
        db = self._db
        self.operations += 1
        key = normalise_sql(sql)
        if key in self._seen:
            self.wasted += 1
        self._seen.add(key)
        limit = self.options.observation_chars
        # A little more than the cut, since the benchmark's names can be longer than ours.
        fetch_chars = limit + 256
        if self.engine == "sqlite":
            if mysql_incompatibilities(sql, db.tables()):
                self.incompatible += 1
            run, wrote = db.run(sql, fetch_chars, self.options.max_rows)
        else:
            got = db.run(sql, fetch_chars, self.options.max_rows)
            run, wrote = Execution(got.rows, got.error, got.timed_out, got.cut), got.wrote
        if wrote:
            self.writes += 1
            self._seen.clear()  # after a write, the same read may return something new
        if run.error is not None:
            self.errors += 1
            self.timeouts += int(run.timed_out)
            return truncate(db.public(run.error), limit)
        return truncate(db.public(str(run.rows)), limit)

    def _finish(
        self, answer: str | None, format_ok: bool, outcome: str, problem: str = ""
    ) -> StepResult:
        assert self.task is not None and self._db is not None
        overlap = 0.0
        info: dict[str, Any] = {"engine": self.engine_name()}
        if self.kind in MODIFICATION_KINDS:
            # As on the benchmark, the table is judged whatever the last reply was.
            assert self.table is not None
            success = self._modification_success()
        else:
            success = False
            if answer is not None:
                gold = self.gold()
                values = parse_dbbench_answer(answer)
                success = dbbench_answer_match(values, gold)
                overlap = answer_overlap(values, gold)
        stats = EpisodeStats(
            kind=self.kind,
            success=success,
            answered=answer is not None,
            format_ok=format_ok,
            outcome=outcome,
            operations=self.operations,
            errors=self.errors,
            timeouts=self.timeouts,
            wasted=self.wasted,
            writes=self.writes,
            overlap=overlap,
            engine=self.engine,
            mysql_incompatible=self.incompatible,
        )
        reward = episode_reward(stats, self.reward_options)
        if problem:
            info["format_problem"] = problem
        self.close()
        return StepResult(observation=None, done=True, reward=reward, outcome=outcome, info=info)

    def engine_name(self) -> str:
        if self.engine == "sqlite":
            return f"sqlite {sqlite3.sqlite_version}"
        from agentpref.envs.sql.mysql_server import server

        return f"mysql ({server(self.options.url).describe()})"

    def _modification_success(self) -> bool:
        assert self.task is not None and self.table is not None
        spec = self.task.spec
        if self.engine == "sqlite":
            if not spec.get("gold_sql"):
                raise DataError(f"task {self.task.id}: SQLite needs gold_sql, not only answer_md5")
            expected = gold_table_hash(
                Path(spec["db_path"]), spec["gold_sql"], self.table, GOLD_TIMEOUT_S
            )
            return bool(self._db.table_hash(self.table) == expected)
        got = self._db.table_hash(self.table)
        return got is not None and got == self.expected_mysql_hash()

    # -- gold results on MySQL: computed once per task on a fresh episode database

    def expected_mysql_hash(self) -> str | None:
        """The record's answer_md5, else the hash after the gold statement (benchmark's way)."""
        from agentpref.envs.sql.mysql_engine import normalise_md5

        assert self.task is not None
        spec = self.task.spec
        recorded = normalise_md5(spec.get("answer_md5"))
        if recorded is not None:
            return recorded
        gold_sql = self.engine_gold_sql(self.task, spec["gold_sql"])
        run, hashed = self._gold_on_mysql(self.task, gold_sql, hash_table=self.table)
        if run.error is not None:
            raise DataError(f"task {self.task.id}: gold statement fails on MySQL: {run.error}")
        return hashed

    def engine_gold_sql(self, task: Task, sql: str) -> str:
        """The gold statement as it must be written for this env's engine: on MySQL, table
        names in their own case (Spider writes `student` for `Student`, which MySQL on Linux
        rejects). An imported benchmark record keeps its statement as the benchmark plays it."""
        if self.engine != "mysql" or task.eval_only or not sql:
            return sql
        from agentpref.envs.sql.mysql_engine import match_table_case, source_tables

        names = [name for name, _, _ in source_tables(Path(task.spec["db_path"]))]
        return match_table_case(sql, names)

    def _gold_on_mysql(
        self, task: Task, sql: str, hash_table: str | None = None
    ) -> tuple[Any, str | None]:
        """(run, table hash) of `sql` on a fresh MySQL copy of the task's tables, cached."""
        from agentpref.envs.sql.mysql_engine import cached, source_tables
        from agentpref.envs.sql.mysql_server import server

        src = Path(task.spec["db_path"])
        st = src.stat()
        srv = server(self.options.url)
        key = (
            "gold",
            srv.describe(),
            str(src.resolve()),
            st.st_mtime_ns,
            st.st_size,
            sql,
            hash_table,
        )

        def compute() -> tuple[Any, str | None]:
            from agentpref.envs.sql.mysql_engine import MySQLEpisode

            ep = MySQLEpisode(
                srv, public_name(task), source_tables(src), GOLD_TIMEOUT_S, self.growth_bytes
            )
            try:
                run = ep.run(sql, GOLD_MAX_CHARS, GOLD_MAX_ROWS)
                hashed = ep.table_hash(hash_table) if hash_table and run.error is None else None
                return run, hashed
            finally:
                ep.close()

        result: tuple[Any, str | None] = cached(key, compute)
        return result

    def gold(self) -> list[str]:
        """The gold answer list: the task's own, else the gold query's result."""
        assert self.task is not None
        spec = self.task.spec
        if spec.get("answer") is not None:
            return [str(v) for v in spec["answer"]]
        return self.gold_result(self.task, spec["gold_sql"])

    def gold_result(self, task: Task, gold_sql: str) -> list[str]:
        """The gold query's whole result as an answer list, on this env's engine (a query
        that fails on MySQL falls back to its result on the task's SQLite file)."""
        spec = task.spec
        if self.engine == "mysql":
            run, _ = self._gold_on_mysql(task, self.engine_gold_sql(task, gold_sql))
            if run.error is None:
                return gold_answer(list(run.rows))
            log.warning(
                "task %s: gold query fails on MySQL (%s); using its SQLite result",
                task.id,
                run.error[:120],
            )
        from agentpref.envs.sql.sandbox import default_verifier

        got = default_verifier(self.options.timeout_s).gold(
            str(Path(spec["db_path"])), gold_sql, max_rows=GOLD_MAX_ROWS
        )
        return gold_answer(list(got.rows))

    def close(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            finally:
                self._db = None

    # -- state branching: the episode database and the counters ------------------------------

    _COUNTERS = (
        "kind",
        "table",
        "operations",
        "errors",
        "timeouts",
        "wasted",
        "writes",
        "incompatible",
    )

    def snapshot(self) -> dict[str, Any]:
        """The episode database (SQLite bytes, or MySQL tables and rows) and the counters."""
        if self._db is None or self.task is None:
            raise RuntimeError("snapshot() before reset()")
        return {
            "task": self.task,
            "engine": self.engine,
            "db": self._db.dump(),
            "seen": sorted(self._seen),
            **{k: getattr(self, k) for k in self._COUNTERS},
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.close()
        if state["engine"] != self.engine:
            raise ConfigError(
                f"a {state['engine']} snapshot cannot be restored on the {self.engine} engine"
            )
        self.task = state["task"]
        if self.engine == "sqlite":
            self._db = SQLiteEpisode.from_bytes(
                state["db"], self.options.timeout_s, self.growth_bytes
            )
        else:
            from agentpref.envs.sql.mysql_engine import MySQLEpisode
            from agentpref.envs.sql.mysql_server import server

            self._db = MySQLEpisode.from_dump(
                server(self.options.url),
                state["db"],
                self.options.timeout_s,
                self.growth_bytes,
                watch_table=self.task.spec.get("table") if self.task else None,
            )
        for k in self._COUNTERS:
            setattr(self, k, state[k])
        self._seen = set(state["seen"])

    # -- gold path ---------------------------------------------------------------------------

    def gold_replies(self, task: Task) -> Script | None:
        """Run the gold SQL, then answer with what it returned (or the task's answer list)."""
        expert = super().gold_replies(task)
        if expert is not None:
            return expert
        gold_sql = self.engine_gold_sql(task, str(task.spec.get("gold_sql") or ""))
        answer = task.spec.get("answer")
        if not gold_sql:
            if not isinstance(answer, list):
                return None
            return [dbbench_answer(answer)]

        def turns(conversation: list[Message], turn: int) -> str | None:
            if turn == 0:
                return dbbench_operation(gold_sql)
            if turn == 1:
                if isinstance(answer, list):
                    return dbbench_answer(answer)
                observed = conversation[-1].content if conversation[-1].role == "user" else ""
                if TRUNCATED in observed:
                    return dbbench_answer(self._full_gold_answer(task, gold_sql))
                return dbbench_answer(rows_to_answer(observed))
            return None

        return turns

    def _full_gold_answer(self, task: Task, gold_sql: str) -> list[str]:
        """The gold query's whole result when the observation was cut (DB Bench's answer)."""
        try:
            return self.gold_result(task, gold_sql)
        except Exception as exc:  # a broken gold query makes a failing gold episode, not a crash
            log.debug("gold: %s: %s", task.id, exc)
            return []

    # -- synthetic negatives -----------------------------------------------------------------

    def corruptions(
        self, task: Task, replies: Sequence[str], kinds: Sequence[str], seed: str
    ) -> list[tuple[str, int, Script]]:
        from agentpref.envs.sql.corrupt import sql_corruptions

        found = sql_corruptions(task, replies, kinds, seed)
        return [(kind, turn, _answer_rebuilt(variant, turn)) for kind, turn, variant in found]

    # -- evaluation --------------------------------------------------------------------------

    @classmethod
    def task_metrics(cls, task: Task, episode: Trajectory) -> dict[str, Any]:
        b = episode.reward.breakdown
        return {
            "kind": str(task.spec.get("kind") or b.get("kind") or "query").lower(),
            "success": bool(b.get("success", False)),
            "format_failure": episode.outcome == "failed_format",
            "operations": int(b.get("operations") or 0),
            "errors": int(b.get("errors") or 0),
        }

    @classmethod
    def summarise(cls, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        kinds: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            kinds.setdefault(str(r.get("kind", "query")), []).append(r)
        by_kind = {k: rate(v, "success") for k, v in sorted(kinds.items())}
        ops = sum(int(r.get("operations", 0)) for r in rows)
        return {
            "success_rate": rate(rows, "success"),
            **interval(rows, "success"),
            "success_rate_by_kind": by_kind,
            "n_by_kind": {k: len(v) for k, v in sorted(kinds.items())},
            "mean_of_kinds": round(sum(by_kind.values()) / len(by_kind), 4) if by_kind else 0.0,
            "format_failure_rate": rate(rows, "format_failure"),
            "error_rate": round(sum(int(r.get("errors", 0)) for r in rows) / ops, 4)
            if ops
            else 0.0,
        }


# --------------------------------------------------------------------------- gold replies


def dbbench_operation(sql: str) -> str:
    return f"Action: Operation\n```sql\n{sql.strip()}\n```"


def dbbench_answer(values: Sequence[Any]) -> str:
    return "Action: Answer\nFinal Answer: " + json.dumps(
        [str(v) for v in values], ensure_ascii=False
    )


_CONSTRUCTORS: dict[str, Callable[..., Any]] = {
    "Decimal": decimal.Decimal,
    "datetime.date": datetime.date,
    "datetime.datetime": datetime.datetime,
    "datetime.time": datetime.time,
    "datetime.timedelta": datetime.timedelta,
    "bytearray": bytearray,
    "set": set,
}


def _value(node: ast.AST) -> Any:
    """A literal, or one of the values MySQL's driver prints (Decimal('1.5'),
    datetime.date(2020, 1, 2), ...), built from its printed form; nothing else is evaluated."""
    if isinstance(node, ast.Call):
        name = ast.unparse(node.func)
        make = _CONSTRUCTORS.get(name)
        if make is None:
            raise ValueError(f"unexpected call {name}")
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
        return make(*args, **kwargs)
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_value(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    return ast.literal_eval(node)


def parse_rows(text: str) -> Any:
    """The rows of an observation (SQLite's or MySQL's repr); ValueError when it is not rows."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
        return _value(tree.body)
    except (SyntaxError, TypeError, MemoryError, RecursionError, decimal.InvalidOperation) as exc:
        raise ValueError(str(exc)) from None


def rows_to_answer(observation: str) -> list[str]:
    """Flatten an observation of fetched rows (a Python repr of tuples) into answer strings."""
    text = observation.replace(TRUNCATED, "").strip()
    try:
        rows = parse_rows(text)
    except ValueError:
        return []
    values: list[str] = []
    if isinstance(rows, (list, tuple)):
        for row in rows:
            cells = row if isinstance(row, (list, tuple)) else [row]
            values.extend(str(c) for c in cells)
    return values


def _answer_rebuilt(turns: list[str], corrupted: int) -> Callable[[list[Message], int], str | None]:
    """Replies of a variant: the given turns, an answer rebuilt from what was observed after
    the corrupted turn (the original answer no longer follows from the rows)."""

    def reply(conversation: list[Message], turn: int) -> str | None:
        if turn >= len(turns):
            return None
        text = turns[turn]
        if (
            turn > corrupted
            and text.lstrip().startswith("Action: Answer")
            and conversation[-1].role == "user"
        ):
            return dbbench_answer(rows_to_answer(conversation[-1].content))
        return text

    return reply
