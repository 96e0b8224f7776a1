"""DB Bench episodes on MySQL/MariaDB, played the way AgentBench plays them.

Each episode gets its own database on the shared server (`mysql_server.server`), created from
the task's tables with every column TEXT and the rows inserted as parameters, and its own user
with privileges on that database only (no FILE, no GRANT, no routines; LOAD DATA refused by the
server and the client). Every statement runs on a fresh connection, as the benchmark
reconnects before each one, then is committed; its observation is `str(cursor.fetchall())` of
the first result, or `str(error)`, cut at 800 characters.

Limits a hostile statement cannot lift: the server's own statement deadline
(`max_statement_time` / `MAX_EXECUTION_TIME`) and, since a statement can override that for
itself, a watchdog that kills the connection at the deadline; rows are fetched in growing
chunks and fetching stops as soon as the observation is known to be cut, so a huge result is
never held; on a private server the episode database's files are watched while a statement
runs, and a statement that grows it past the cap is killed (rolled back) and fails with
MySQL's "table is full" error.

The database and the user have random names; observations name them as the benchmark would
(the database after the task's table, the user root), so an episode reads the same however
many run at once.
"""

from __future__ import annotations

import inspect
import logging
import queue
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentpref.envs.base import EnvCrash
from agentpref.envs.sql import db
from agentpref.envs.sql.dbbench import fetch_limited
from agentpref.envs.sql.mysql_server import Server, connect_error, is_lost

log = logging.getLogger(__name__)

GRANTS = (
    "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, CREATE VIEW, SHOW VIEW, "
    "CREATE TEMPORARY TABLES, LOCK TABLES"
)
DDL_WORDS = ("create", "drop", "alter", "rename", "truncate")
_SET_STATEMENT = re.compile(r"\bSET\s+STATEMENT\b", re.IGNORECASE)
INSERT_BATCH = 500
WATCH_INTERVAL_S = 0.02
GROWTH_SLACK = 256 * 1024

Table = tuple[str, list[str], list[list[Any]]]


def quote(name: str) -> str:
    """A MySQL identifier in backticks."""
    return "`" + name.replace("`", "``") + "`"


def hash_query(table: str, columns: Sequence[str]) -> str:
    """DB Bench's own table hash query, character for character."""
    cols = ",".join(f"`{c}`" for c in columns)
    return (
        "select md5(group_concat(rowhash order by rowhash)) as hash "
        f"from( SELECT substring(MD5(CONCAT_WS(',', {cols})), 1, 5) AS rowhash FROM `{table}`) "
        "as sub;"
    )


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_NUMBER = re.compile(r"[0-9][0-9A-Za-z_.]*")


def match_table_case(sql: str, tables: Sequence[str]) -> str:
    """`sql` with every bare word that names a table in another case written in the table's
    own case, outside string literals and quoted identifiers.

    MySQL on Linux (as the benchmark runs it) matches table names case-sensitively, so Spider's
    `FROM student` fails on its `Student` table; SQLite does not care. Column names are
    case-insensitive in MySQL and an alias is renamed everywhere it occurs, so rewriting a word
    that also names a column or an alias changes nothing else.
    """
    by_lower = {t.lower(): t for t in tables}
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            j = i + 1
            while j < n:
                if sql[j] == "\\" and c != "`":
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:  # a doubled quote inside
                        j += 2
                        continue
                    break
                j += 1
            out.append(sql[i : j + 1])
            i = j + 1
            continue
        m = _WORD.match(sql, i)
        if m:
            word = m.group(0)
            out.append(by_lower.get(word.lower(), word))
            i = m.end()
            continue
        if c.isdigit():  # a number such as 1e5 or 0x1f is not a word
            num = _NUMBER.match(sql, i)
            assert num is not None
            out.append(num.group(0))
            i = num.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)


_HEX = re.compile(r"[0-9a-fA-F]{32}")


def normalise_md5(value: Any) -> str | None:
    """The hex digest in a record's answer_md5 (bare, or as the benchmark prints it)."""
    if value is None:
        return None
    text = str(value)
    if text.strip() in ("[(None,)]", "None"):
        return "None"
    m = _HEX.search(text)
    return m.group(0).lower() if m else None


@dataclass
class Run:
    """One statement's outcome."""

    rows: list[tuple[Any, ...]]
    error: str | None = None
    timed_out: bool = False
    cut: bool = False
    """Fetching stopped early: the rendered rows are cut."""
    wrote: bool = False
    full: bool = False
    """The growth cap stopped it."""


# --------------------------------------------------------------------------- source tables


_SOURCE_CACHE: OrderedDict[tuple[str, int, int], list[Table]] = OrderedDict()
_SOURCE_LOCK = threading.Lock()


def source_tables(db_path: Path) -> list[Table]:
    """Every user table of a SQLite file: (name, columns, rows), cached per file version."""
    st = db_path.stat()
    key = (str(db_path.resolve()), st.st_mtime_ns, st.st_size)
    with _SOURCE_LOCK:
        hit = _SOURCE_CACHE.get(key)
        if hit is not None:
            _SOURCE_CACHE.move_to_end(key)
            return hit
    conn = db.connect_readonly(db_path)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
                "ORDER BY rowid"
            )
        ]
        out: list[Table] = []
        for name in names:
            q = '"' + name.replace('"', '""') + '"'
            cols = [c[1] for c in conn.execute(f"PRAGMA table_info({q})")]
            rows = [[_cell(v) for v in r] for r in conn.execute(f"SELECT * FROM {q}")]
            out.append((name, cols, rows))
    finally:
        conn.close()
    with _SOURCE_LOCK:
        _SOURCE_CACHE[key] = out
        while len(_SOURCE_CACHE) > 64:
            _SOURCE_CACHE.popitem(last=False)
    return out


def _cell(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


# --------------------------------------------------------------------------- episodes


def _takes_multi() -> bool:
    try:
        from mysql.connector.cursor_cext import CMySQLCursor

        return "multi" in inspect.signature(CMySQLCursor.execute).parameters
    except Exception:
        return False


class MySQLEpisode:
    """One episode's database, user and statement runner on a server."""

    engine = "mysql"

    def __init__(
        self,
        srv: Server,
        public_name: str,
        tables: Sequence[Table],
        timeout_s: float,
        max_growth_bytes: int,
        watch_table: str | None = None,
    ) -> None:
        self.srv = srv
        self.public_name = public_name
        self.timeout_s = timeout_s
        self.max_growth_bytes = max_growth_bytes
        token = secrets.token_hex(6)
        self.db = f"agentpref_ep_{token}"
        self.user = f"apu_{token}"
        self.password = secrets.token_hex(16)
        self.watch_table = watch_table or (tables[0][0] if tables else public_name)
        self._columns = {name: list(cols) for name, cols, _ in tables}
        self._order = [name for name, _, _ in tables]
        self._base_size = 0
        self._closed = False
        self._admin_call(self._create, tables)
        self._base_size = self._db_size()

    # -- set-up and tear-down

    def _admin_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        import mysql.connector

        try:
            conn = self.srv.connect(autocommit=True)
        except mysql.connector.Error as exc:
            raise connect_error(exc) from exc
        try:
            return fn(conn.cursor(), *args)
        except mysql.connector.Error as exc:
            if is_lost(exc):
                raise connect_error(exc) from exc
            raise
        finally:
            try:
                conn.close()
            except Exception:
                pass

    def _create(self, cur: Any, tables: Sequence[Table]) -> None:
        host = self.srv.episode_host
        cur.execute(f"CREATE DATABASE {quote(self.db)} CHARACTER SET utf8mb4")
        cur.execute(f"CREATE USER '{self.user}'@'{host}' IDENTIFIED BY '{self.password}'")
        cur.execute(f"GRANT {GRANTS} ON {quote(self.db)}.* TO '{self.user}'@'{host}'")
        cur.execute(f"USE {quote(self.db)}")
        for name, cols, rows in tables:
            self._load(cur, name, [f"{quote(c)} TEXT" for c in cols], cols, rows)

    @staticmethod
    def _load(cur: Any, name: str, defs: list[str], cols: list[str], rows: list[list[Any]]) -> None:
        cur.execute(f"CREATE TABLE {quote(name)} ({','.join(defs)})")
        if not rows:
            return
        col_list = ",".join(quote(c) for c in cols)
        marks = "(" + ",".join(["%s"] * len(cols)) + ")"
        for i in range(0, len(rows), INSERT_BATCH):
            batch = rows[i : i + INSERT_BATCH]
            params = tuple(v for row in batch for v in row)
            cur.execute(
                f"INSERT INTO {quote(name)} ({col_list}) VALUES {','.join([marks] * len(batch))}",
                params,
            )

    def close(self) -> None:
        """Drop the episode's database and user, off the episode's path (a background thread;
        `flush_drops` waits for them; a dead server has nothing left to drop)."""
        if self._closed:
            return
        self._closed = True
        _DROPS.put(self._drop)
        _start_dropper()

    def _drop(self) -> None:
        def drop(cur: Any) -> None:
            cur.execute(f"DROP DATABASE IF EXISTS {quote(self.db)}")
            cur.execute(f"DROP USER IF EXISTS '{self.user}'@'{self.srv.episode_host}'")

        try:
            self._admin_call(drop)
        except Exception as exc:
            log.debug("dropping episode database %s failed: %s", self.db, exc)

    # -- what the policy sees

    def tables(self) -> list[tuple[str, list[str]]]:
        return [(n, self._columns[n]) for n in self._order]

    def public(self, text: str) -> str:
        """Text as the benchmark would show it: its database and user names, not ours."""
        return text.replace(self.db, self.public_name).replace(self.user, "root")

    # -- statements

    def _connect(self) -> Any:
        import mysql.connector

        params = self.srv.episode_params(self.user, self.password, self.db)
        params.pop("database", None)  # selected with USE, so a dropped one is the policy's error
        try:
            conn = mysql.connector.connect(**params, allow_local_infile=False)
        except mysql.connector.Error as exc:
            if is_lost(exc) or exc.errno in (1045, 1040):
                # Our own user vanished, or the server is gone: infrastructure.
                raise connect_error(exc) from exc
            raise
        cur = conn.cursor()
        ms = int(self.timeout_s * 1000)
        if self.srv.flavour == "mariadb":
            cur.execute(f"SET SESSION max_statement_time = {self.timeout_s:.3f}")
        else:
            cur.execute(f"SET SESSION max_execution_time = {ms}")
        cur.close()
        return conn

    def _kill(self, connection_id: int) -> None:
        def kill(cur: Any) -> None:
            try:
                cur.execute(f"KILL CONNECTION {int(connection_id)}")
            except Exception as exc:  # it may have ended already
                log.debug("kill %s: %s", connection_id, exc)

        try:
            self._admin_call(kill)
        except EnvCrash:
            pass

    def _db_size(self) -> int:
        """Bytes of the episode database's files, plus the server's temporary files."""
        datadir = self.srv.local_datadir
        if datadir is None:
            return 0
        total = 0
        for folder in (datadir / self.db, datadir.parent / "tmp"):
            try:
                total += sum(p.stat().st_size for p in folder.iterdir())
            except OSError:
                pass
        try:
            total += (datadir / "ibtmp1").stat().st_size
        except OSError:
            pass
        return total

    def deadline_text(self) -> str:
        if self.srv.flavour == "mariadb":
            return "1969 (70100): Query execution was interrupted (max_statement_time exceeded)"
        return (
            "3024 (HY000): Query execution was interrupted, maximum statement execution time "
            "exceeded"
        )

    def full_text(self) -> str:
        return f"1114 (HY000): The table '{self.watch_table}' is full"

    def run(self, sql: str, limit: int, max_rows: int) -> Run:
        """Run one statement as the benchmark does; errors come back as text."""
        import mysql.connector

        if self.srv.flavour == "mariadb" and _SET_STATEMENT.search(sql):
            # It would lift the server's limits (deadline, join buffers) for one statement.
            return Run([], "1227 (42000): Access denied; SET STATEMENT is not allowed here")

        conn = self._connect()
        cid = conn.connection_id
        start_size = self._db_size()
        stop = threading.Event()
        why: dict[str, bool] = {}
        watcher = threading.Thread(
            target=self._watch, args=(cid, start_size, stop, why), daemon=True
        )
        watcher.start()
        killed_by_us = False
        result: Run
        try:
            cur = conn.cursor()
            cur.execute(f"USE {quote(self.db)}")
            if _MULTI:
                cur.execute(sql, (), multi=True)
            else:
                cur.execute(sql)
            if cur.description:
                rows, cut = fetch_limited(cur.fetchmany, limit, max_rows)
                result = Run(rows, cut=cut)
            else:
                result = Run([])
            if not cur.description:
                result.wrote = (cur.rowcount or 0) > 0 or _is_ddl(sql)
            if result.cut:
                # Rows are still streaming: end the connection instead of reading them.
                killed_by_us = True
                stop.set()
                self._kill(cid)
            else:
                if result.wrote and self._grown_past_cap(start_size):
                    conn.rollback()
                    why["full"] = True
                else:
                    conn.commit()
        except mysql.connector.Error as exc:
            if why.get("full"):
                result = Run([], self.full_text(), full=True)
            elif why.get("deadline"):
                result = Run([], self.deadline_text(), timed_out=True)
            elif is_lost(exc) and not killed_by_us:
                raise connect_error(exc) from exc
            else:
                text = str(exc)
                timed_out = exc.errno in (1969, 3024)
                result = Run([], text, timed_out=timed_out)
        finally:
            stop.set()
            watcher.join()
            if killed_by_us or why:
                _abandon(conn)
            else:
                try:
                    conn.close()
                except Exception:
                    _abandon(conn)
        if why.get("full") and result.error is None:
            result = Run([], self.full_text(), full=True)
        return result

    def _grown_past_cap(self, start_size: int) -> bool:
        if self.srv.local_datadir is None:
            return False
        size = self._db_size()
        # The files also move a little on their own (purge, flushing after a killed
        # statement), so only a statement that itself grew them is stopped.
        return size - start_size > GROWTH_SLACK and size - self._base_size > self.max_growth_bytes

    def _watch(
        self, cid: int, start_size: int, stop: threading.Event, why: dict[str, bool]
    ) -> None:
        """Kill the statement's connection at the deadline, or when it grows the database past
        the cap. The server's own deadline usually fires first; a statement can lift that one
        for itself (SET STATEMENT ... FOR, optimizer hints), this one it cannot."""
        deadline = time.monotonic() + self.timeout_s * 1.1 + 0.05
        while not stop.wait(WATCH_INTERVAL_S):
            if time.monotonic() > deadline:
                why["deadline"] = True
                self._kill(cid)
                return
            if self.srv.local_datadir is not None and self._grown_past_cap(start_size):
                why["full"] = True
                self._kill(cid)
                return

    # -- judging

    def table_hash(self, table: str, columns: Sequence[str] | None = None) -> str | None:
        """The benchmark's hash of `table` (its first cell as text), under the deadline."""
        cols = list(columns) if columns is not None else self._columns.get(table, [])
        run = self.run(hash_query(table, cols), 10_000, 10)
        if run.error is not None or not run.rows:
            return None
        value = run.rows[0][0]
        return "None" if value is None else str(value)

    # -- branching

    def dump(self) -> dict[str, Any]:
        """The episode database as DDL and rows (a snapshot that outlives the server)."""

        def read(cur: Any) -> dict[str, Any]:
            cur.execute(f"USE {quote(self.db)}")
            cur.execute("SHOW FULL TABLES")
            listed = [(str(r[0]), str(r[1])) for r in cur.fetchall()]
            tables: list[tuple[str, str, list[tuple[Any, ...]]]] = []
            views: list[tuple[str, str]] = []
            for name, kind in listed:
                if kind == "VIEW":
                    cur.execute(f"SHOW CREATE VIEW {quote(name)}")
                    views.append((name, str(cur.fetchone()[1])))
                    continue
                cur.execute(f"SHOW CREATE TABLE {quote(name)}")
                ddl = str(cur.fetchone()[1])
                cur.execute(f"SELECT * FROM {quote(name)}")
                tables.append((name, ddl, [tuple(r) for r in cur.fetchall()]))
            return {"db": self.db, "tables": tables, "views": views}

        data: dict[str, Any] = self._admin_call(read)
        data.update(columns=self._columns, order=self._order, public_name=self.public_name)
        return data

    @classmethod
    def from_dump(
        cls,
        srv: Server,
        data: dict[str, Any],
        timeout_s: float,
        max_growth_bytes: int,
        watch_table: str | None = None,
    ) -> MySQLEpisode:
        ep = cls(srv, data["public_name"], [], timeout_s, max_growth_bytes, watch_table)
        ep._columns = {k: list(v) for k, v in data["columns"].items()}
        ep._order = list(data["order"])

        def write(cur: Any) -> None:
            cur.execute(f"USE {quote(ep.db)}")
            cur.execute("SET SESSION foreign_key_checks = 0")
            for name, ddl, rows in data["tables"]:
                cur.execute(ddl)
                if rows:
                    width = len(rows[0])
                    marks = "(" + ",".join(["%s"] * width) + ")"
                    for i in range(0, len(rows), INSERT_BATCH):
                        batch = rows[i : i + INSERT_BATCH]
                        cur.execute(
                            f"INSERT INTO {quote(name)} VALUES {','.join([marks] * len(batch))}",
                            tuple(v for row in batch for v in row),
                        )
            for _name, ddl in data["views"]:
                ddl = re.sub(r"DEFINER=\S+\s+", "", ddl).replace("SQL SECURITY DEFINER", "")
                cur.execute(ddl.replace(quote(data["db"]) + ".", quote(ep.db) + "."))

        ep._admin_call(write)
        ep._base_size = ep._db_size()
        return ep


_DROPS: queue.Queue[Callable[[], None]] = queue.Queue()
_DROPPER: list[threading.Thread] = []
_DROPPER_LOCK = threading.Lock()


def _drain() -> None:
    while True:
        job = _DROPS.get()
        try:
            job()
        finally:
            _DROPS.task_done()


def _start_dropper() -> None:
    with _DROPPER_LOCK:
        if not _DROPPER:
            thread = threading.Thread(target=_drain, name="agentpref-mysql-drops", daemon=True)
            thread.start()
            _DROPPER.append(thread)


def flush_drops() -> None:
    """Wait until every closed episode's database is dropped."""
    if _DROPPER:
        _DROPS.join()


def _is_ddl(sql: str) -> bool:
    words = sql.lstrip().split(None, 1)
    return bool(words) and words[0].lower() in DDL_WORDS


def _abandon(conn: Any) -> None:
    """Drop a connection whose server side was killed, without reading what is left."""
    try:
        conn.close()
    except Exception:
        pass


_MULTI = _takes_multi()


# --------------------------------------------------------------------------- gold results


_GOLD_CACHE: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_GOLD_LOCK = threading.Lock()


def cached(key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
    with _GOLD_LOCK:
        if key in _GOLD_CACHE:
            _GOLD_CACHE.move_to_end(key)
            return _GOLD_CACHE[key]
    value = compute()
    with _GOLD_LOCK:
        _GOLD_CACHE[key] = value
        while len(_GOLD_CACHE) > 4096:
            _GOLD_CACHE.popitem(last=False)
    return value
