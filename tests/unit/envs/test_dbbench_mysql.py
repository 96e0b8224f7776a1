"""DB Bench on a real MariaDB/MySQL server started through the project's own server manager.

The records are written for these tests in the benchmark's layout; they are not benchmark data.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dbbench_helpers import (
    MEDALS,
    REPO,
    answer,
    benchmark_md5,
    benchmark_records,
    build_library,
    engine_gold_policy,
    library_tasks,
    mysql_missing,
    op,
    requires_mysql,
    rows_after,
    scripted,
    turns_played,
)

from agentpref.cli.main import main
from agentpref.config import SourceConfig
from agentpref.envs.sql import mysql_server
from agentpref.envs.sql.dbbench import DBBenchEnv
from agentpref.records import SamplingParams, Task
from agentpref.rollout import play
from agentpref.tasks.sources.dbbench import import_dbbench

MYSQL = {"dbbench": {"engine": "mysql"}}


@pytest.fixture()
def records_file(tmp_path) -> Path:
    path = tmp_path / "dbbench_dev.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in benchmark_records()) + "\n")
    return path


@pytest.fixture()
def imported(records_file, tmp_path) -> list[Task]:
    result = import_dbbench(records_file, tmp_path / "imported", engine="mysql")
    return result.tasks


def statement_env(task: Task, **options) -> DBBenchEnv:
    env = DBBenchEnv(engine="mysql", **options)
    env.reset(task)
    return env


def obs(env: DBBenchEnv, sql: str) -> str:
    result = env.step(op(sql))
    assert not result.done
    return result.observation or ""


# --------------------------------------------------------------------------- import and gold


@requires_mysql
def test_import_keeps_every_loadable_record_and_checks_answer_md5_on_mysql(records_file, tmp_path):
    result = import_dbbench(records_file, tmp_path / "d", engine="mysql")
    kinds = [t.spec["kind"] for t in result.tasks]
    assert kinds == ["query"] * 5 + ["insert", "update", "update"]
    assert result.skipped_counts() == {"unloadable_table": 1}
    assert "empty name" in result.skipped[0][1]
    # Every INSERT/UPDATE's gold statement reproduces the record's answer_md5 on MySQL.
    assert result.check_counts() == {"ok": 3}
    assert [t.meta["record"] for t in result.tasks] == list(range(8))
    assert result.tasks[5].spec["gold_sql"].startswith("INSERT INTO `Olympic medal table`")
    assert result.tasks[3].spec["answer"] == ["Chile", "Peru"]


@requires_mysql
def test_gold_paths_succeed_on_mysql_and_sqlite(imported):
    # On SQLite, `Gold` > 2 compares a TEXT column with a number as text ('16' < '2'), so the
    # count differs from MySQL's, which compares numbers: the worlds really differ there.
    expected = {"mysql": [True] * 8, "sqlite": [False] + [True] * 7}
    for engine in ("mysql", "sqlite"):
        policy = engine_gold_policy(imported)
        jobs = [(t, 0) for t in imported]
        episodes = play(policy, jobs, SamplingParams(), {"dbbench": {"engine": engine}})
        assert [e.reward.breakdown["success"] for e in episodes] == expected[engine], engine
        assert {e.reward.breakdown["engine"] for e in episodes} == {engine}
        assert all(e.meta["engine"].startswith(engine) for e in episodes)
    # The benchmark's shapes: SUM over TEXT is a float, a table name with spaces works.
    assert episodes[0].messages[2].content.endswith(
        "The name of this table is Olympic medal table, and the headers of this table are "
        "Nation,Gold,Silver,Total."
    )


def test_table_names_take_their_own_case_outside_literals_and_quoted_names():
    from agentpref.envs.sql.mysql_engine import match_table_case

    sql = (
        "SELECT major FROM student AS T1 JOIN has_pet ON T1.stuid = has_pet.stuid "
        "WHERE name = 'student' AND x = \"has_pet\" AND `student` = 1e5 AND y = 'it''s pets'"
    )
    assert match_table_case(sql, ["Student", "Has_Pet", "Pets"]) == (
        "SELECT major FROM Student AS T1 JOIN Has_Pet ON T1.stuid = Has_Pet.stuid "
        "WHERE name = 'student' AND x = \"has_pet\" AND `student` = 1e5 AND y = 'it''s pets'"
    )
    assert match_table_case("select 1 from t", []) == "select 1 from t"


@requires_mysql
def test_spider_gold_in_another_case_is_played_in_the_tables_case_on_mysql():
    # Spider's pets_1 gold writes `student` for its `Student` table: MySQL on Linux (as the
    # benchmark runs it) rejects that, so the gold path plays the statement in the table's case.
    from agentpref.tasks.sources.spider import load_spider

    loaded = load_spider(
        SourceConfig(name="spider", path=str(REPO.parent / "shared" / "data" / "spider"),
                     split="dev", env="dbbench")
    ).tasks
    task = next(t for t in loaded if t.spec["db_id"] == "pets_1" and " student " in
                t.spec["gold_sql"] + " " and "Student" not in t.spec["gold_sql"])
    env = DBBenchEnv(engine="mysql")
    try:
        script = env.gold_replies(task)
    finally:
        env.close()
    assert callable(script)
    first = script([], 0)
    assert "FROM Student" in first and "FROM student" not in first
    assert "student" in task.spec["gold_sql"]  # the task itself is unchanged

    def fn(conv, _i):
        return script(conv, turns_played(conv))

    (episode,) = play(scripted(fn), [(task, 0)], SamplingParams(), MYSQL)
    assert episode.reward.breakdown["success"] is True
    assert "doesn't exist" not in episode.messages[3].content


@requires_mysql
def test_cli_import_and_verify_gold_print_json_lines(records_file, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["dbbench", "import", str(records_file), "--out", str(out), "--engine", "mysql"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["tasks"] == 8 and summary["engine"] == "mysql"
    assert summary["kinds"] == {"insert": 1, "query": 5, "update": 2}
    assert summary["skipped"] == {"unloadable_table": 1}
    assert summary["answer_md5"] == {"ok": 3}

    assert main(["dbbench", "verify-gold", str(out), "--engine", "mysql"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    rows, final = lines[:-1], lines[-1]
    assert [r["record"] for r in rows] == list(range(8))
    assert all(r["success"] for r in rows), rows
    assert {r["kind"] for r in rows} == {"query", "insert", "update"}
    assert final["summary"] and final["engine"] == "mysql"
    assert final["select_accuracy"] == final["insert_accuracy"] == final["update_accuracy"] == 1.0
    assert final["overall_cat_accuracy"] == 1.0


@requires_mysql
def test_verify_gold_reports_a_query_whose_rows_miss_the_label(tmp_path, capsys):
    records = benchmark_records()[:2]
    records[1]["label"] = ["34.0"]  # SUM(Gold) is 33
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    out = tmp_path / "d"
    assert main(["dbbench", "import", str(path), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["dbbench", "verify-gold", str(out), "--engine", "mysql"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["success"] for r in lines[:-1]] == [True, False]
    # Only query records: the benchmark counts the missing INSERT/UPDATE categories as 0.
    assert lines[-1]["select_accuracy"] == 0.5 and lines[-1]["overall_cat_accuracy"] == 0.1667


# --------------------------------------------------------------------------- observations


def agentbench_execute(conn, sql: str, database: str) -> str:
    """The benchmark's own execution path (its Container.execute), on the same server."""
    conn.reconnect()
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"use `{database}`;")
            cursor.fetchall()
            try:
                cursor.execute(sql, (), multi=True)
            except TypeError:  # connectors from 9.2 on dropped `multi`
                cursor.execute(sql)
            result = str(cursor.fetchall())
        conn.commit()
    except Exception as e:  # noqa: BLE001 - exactly what the benchmark catches
        result = str(e)
    if len(result) > 800:
        result = result[:800] + "[TRUNCATED]"
    return result


STATEMENTS = [
    f"SELECT * FROM `{MEDALS}`",
    f"SELECT COUNT(*) FROM `{MEDALS}`",
    f"SELECT SUM(`Gold`) FROM `{MEDALS}`",
    f"SELECT AVG(`Silver`) FROM `{MEDALS}`",
    "SELECT 1/3",
    f"SELECT `Silver` FROM `{MEDALS}` WHERE `Nation` = 'Peru'",
    "SELECT CAST('2021-07-23' AS DATE)",
    f"SELECT `Nation`, COUNT(*) FROM `{MEDALS}`",
    f"SELECT nope FROM `{MEDALS}`",
    "SELECT * FROM [Olympic medal table]",
    'SELECT * FROM "Olympic medal table"',
    "SELECT * FROM `olympic medal table`",
    f"SELECT `Nation` FROM `{MEDALS}` WHERE \"Nation\" = 'Kenya'",
    f"UPDATE `{MEDALS}` SET `Gold` = '99' WHERE \"Nation\" = 'Kenya'",
    f"SELECT `Gold` FROM `{MEDALS}` WHERE `Nation` = 'Kenya'",
    f"INSERT INTO `{MEDALS}` VALUES ('Fiji', '1', '0', '1')",
    f"SELECT a.`Nation`, b.`Nation`, c.`Nation` FROM `{MEDALS}` a, `{MEDALS}` b, `{MEDALS}` c",
    "SELEC 1",
]


@requires_mysql
def test_observations_and_errors_are_what_the_benchmark_prints(imported):
    """Each statement on an episode reads exactly as the benchmark's own code prints it for a
    database built its way on the same server (rows, Decimal, None, dates, error texts)."""
    srv = mysql_server.server()
    admin = srv.connect(autocommit=True)
    cur = admin.cursor()
    cur.execute(f"DROP DATABASE IF EXISTS `{MEDALS}`")
    cur.execute(f"CREATE DATABASE `{MEDALS}`")
    cols = ",".join(f"`{h}` TEXT" for h in ("Nation", "Gold", "Silver", "Total"))
    cur.execute(f"CREATE TABLE `{MEDALS}`.`{MEDALS}` ({cols})")
    rows = benchmark_records()[0]["table"]["table_info"]["rows"]
    cur.execute(
        f"INSERT INTO `{MEDALS}`.`{MEDALS}` VALUES " + ",".join(["(%s,%s,%s,%s)"] * len(rows)),
        tuple(v for r in rows for v in r),
    )
    bench = srv.connect()
    env = statement_env(imported[0], max_operations=50)
    try:
        for sql in STATEMENTS:
            assert obs(env, sql) == agentbench_execute(bench, sql, MEDALS), sql
    finally:
        env.close()
        bench.close()
        cur.execute(f"DROP DATABASE `{MEDALS}`")
        admin.close()


@requires_mysql
def test_mysql_values_errors_and_quoting_in_episodes(imported):
    env = statement_env(imported[0])
    t = f"`{MEDALS}`"
    assert obs(env, f"SELECT COUNT(*) FROM {t}") == "[(5,)]"
    assert obs(env, f"SELECT SUM(`Gold`) FROM {t}") == "[(33.0,)]"
    assert obs(env, "SELECT 1/3") == "[(Decimal('0.3333'),)]"
    assert obs(env, f"SELECT `Silver` FROM {t} WHERE `Nation` = 'Peru'") == "[(None,)]"
    assert obs(env, f"SELECT `Nation` FROM {t} WHERE `Total` = '9'") == "[('Kenya',)]"
    assert obs(env, "SELECT CAST('2021-07-23' AS DATE)") == "[(datetime.date(2021, 7, 23),)]"
    assert obs(env, f"SELECT nope FROM {t}").startswith("1054 (42S22): Unknown column 'nope'")
    assert obs(env, f"SELECT * FROM [{MEDALS}]").startswith("1064 (42000): You have an error")
    # Table names are case-sensitive, and the error names the benchmark's database.
    assert obs(env, "SELECT * FROM `olympic medal table`") == (
        "1146 (42S02): Table 'Olympic medal table.olympic medal table' doesn't exist"
    )
    # "Nation" is a string literal in MySQL: the UPDATE silently changes nothing.
    assert obs(env, f"UPDATE {t} SET `Gold` = '99' WHERE \"Nation\" = 'Kenya'") == "[]"
    assert obs(env, f"SELECT `Gold` FROM {t} WHERE `Nation` = 'Kenya'") == "[('4',)]"
    long = obs(env, f"SELECT a.*, b.* FROM {t} a, {t} b")
    assert len(long) == 811 and long.endswith("[TRUNCATED]")
    final = env.step(answer(["3"]))
    assert final.reward is not None
    assert final.reward.breakdown["errors"] == 3 and final.reward.breakdown["engine"] == "mysql"


@requires_mysql
def test_table_hash_is_the_benchmarks_md5(imported):
    update = imported[6]
    env = statement_env(update)
    assert obs(env, update.spec["gold_sql"]) == "[]"
    got = env._db.table_hash(MEDALS)
    assert got == benchmark_md5(rows_after(update.spec["gold_sql"].replace("`", '"')))
    final = env.step(answer([]))
    assert final.reward is not None and final.reward.breakdown["success"] is True
    # A wrong change fails; the answer text is ignored, as on the benchmark.
    env = statement_env(update)
    obs(env, f"UPDATE `{MEDALS}` SET `Gold` = '6' WHERE `Nation` = 'Kenya'")
    final = env.step(answer(["done"]))
    assert final.reward is not None and final.reward.breakdown["success"] is False


# --------------------------------------------------------------------------- hostile statements


@requires_mysql
def test_hostile_statements_stop_by_their_deadline_and_stay_in_their_episode(imported):
    victim = statement_env(imported[0])
    attacker = statement_env(imported[1], timeout_s=1.0, max_growth_mb=4, max_operations=50)
    t = f"`{MEDALS}`"
    try:
        before = victim._db.table_hash(MEDALS)
        other_db = victim._db.db
        assert "Access denied" in obs(attacker, f"DROP DATABASE `{other_db}`")
        assert "denied" in obs(attacker, f"SELECT * FROM `{other_db}`.{t}")
        assert "denied" in obs(attacker, "GRANT ALL ON *.* TO CURRENT_USER()")
        assert "denied" in obs(attacker, "CREATE USER 'x'@'%'")
        assert "denied" in obs(attacker, "SET GLOBAL max_statement_time = 0")
        assert "denied" in obs(attacker, "SELECT 1 INTO OUTFILE '/tmp/agentpref-x'")
        load = obs(attacker, f"LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE {t}")
        assert "rejected" in load or "denied" in load or "not allowed" in load.lower()
        assert "denied" in obs(attacker, f"LOAD DATA INFILE '/etc/passwd' INTO TABLE {t}")
        cross = ", ".join(f"{t} t{i}" for i in range(14))
        # A statement may not lift the server's own limits for itself.
        assert "denied" in obs(attacker, "SET STATEMENT max_statement_time = 0 FOR SELECT 1")
        runaways = [
            "SELECT BENCHMARK(10000000000, MD5('x'))",
            f"SELECT COUNT(*) FROM {cross}",
            f"INSERT INTO {t} SELECT t0.* FROM {cross}",
        ]
        for sql in runaways:
            start = time.monotonic()
            text = obs(attacker, sql)
            wall = time.monotonic() - start
            assert wall <= 1.5, (sql, wall, text)
            assert "BENCHMARK" in sql or "interrupted" in text, text
        assert obs(attacker, f"SELECT COUNT(*) FROM {t}") == "[(5,)]"  # rolled back
        # A huge result is cut without being read: time and memory stay small.
        huge = f"SELECT REPEAT('x', 60000) FROM {cross}"
        start = time.monotonic()
        text = obs(attacker, huge)
        assert time.monotonic() - start <= 1.5
        assert text.endswith("[TRUNCATED]") and len(text) == 811
        # Growing the episode database past its cap fails as the policy's error.
        obs(attacker, "CREATE TABLE big (v LONGTEXT)")
        grow = f"INSERT INTO big SELECT REPEAT('y', 60000) FROM {cross}"
        start = time.monotonic()
        text = obs(attacker, grow)
        assert time.monotonic() - start <= 1.5
        assert text == f"1114 (HY000): The table '{MEDALS}' is full", text
        assert obs(attacker, "SELECT COUNT(*) FROM big") == "[(0,)]"
        # Nothing reached the other episode.
        assert victim._db.table_hash(MEDALS) == before
        assert obs(victim, f"SELECT COUNT(*) FROM {t}") == "[(5,)]"
    finally:
        start = time.monotonic()
        attacker.close()  # dropping its database waits for no runaway statement
        assert time.monotonic() - start <= 1.5
        victim.close()


@requires_mysql
def test_dropping_its_own_table_or_database_fails_only_that_episode(imported):
    update = imported[6]
    env = statement_env(update)
    assert obs(env, f"DROP DATABASE `{env._db.db}`") == "[]"
    # As on the benchmark, whose `use` then fails, the policy sees MySQL's error.
    assert obs(env, "SELECT 1") == f"1049 (42000): Unknown database '{MEDALS}'"
    final = env.step(answer([]))
    assert final.reward is not None and final.reward.breakdown["success"] is False


# --------------------------------------------------------------------------- infrastructure


CHILD = """
import json, os, sys, time
sys.path.insert(0, {src!r})
os.environ["AGENTPREF_CACHE"] = {cache!r}
from agentpref.envs.sql import mysql_server
srv = mysql_server.server()
print(json.dumps({{"pid": srv.pid, "folder": str(srv.folder), "socket": str(srv.socket_dir)}}))
sys.stdout.flush()
if {hang!r}:
    time.sleep(600)
"""


def child(tmp_path: Path, hang: bool) -> tuple[subprocess.Popen, dict]:
    code = CHILD.format(src=str(REPO / "src"), cache=str(tmp_path / "cache"), hang=hang)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    return proc, info


def gone(pid: int, timeout_s: float = 30.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return True
        time.sleep(0.1)
    return False


@requires_mysql
def test_the_server_is_gone_after_the_run_and_after_a_kill_9(tmp_path):
    proc, info = child(tmp_path, hang=False)
    assert proc.wait(60) == 0
    assert gone(info["pid"])
    assert not Path(info["folder"]).exists() and not Path(info["socket"]).exists()

    proc, info = child(tmp_path, hang=True)
    assert Path(info["folder"]).is_dir()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert gone(info["pid"])  # the server follows its owner
    assert Path(info["folder"]).exists()  # the folder waits for the next start
    assert mysql_server.sweep_stale(tmp_path / "cache" / "mysql") == 1
    assert not Path(info["folder"]).exists() and not Path(info["socket"]).exists()


@requires_mysql
def test_a_lost_server_is_infrastructure_the_run_replays_and_stores_nothing_wrong(imported):
    tasks = imported
    undisturbed = play(engine_gold_policy(tasks), [(t, i) for t in tasks for i in range(2)],
                       SamplingParams(), MYSQL)
    killed = []
    gold = engine_gold_policy(tasks)

    def fn(conv, i):
        if turns_played(conv) == 1 and not killed:
            srv = mysql_server.server()
            killed.append(srv.pid)
            os.kill(srv.pid, signal.SIGKILL)
            srv.process.wait(10)
        return gold._fn(conv, i)

    disturbed = play(scripted(fn), [(t, i) for t in tasks for i in range(2)],
                     SamplingParams(), MYSQL)
    assert killed and mysql_server.server().pid != killed[0]
    assert len(disturbed) == len(undisturbed) == 16
    assert all(e.outcome != "env_error" for e in disturbed)
    strip = lambda e: (e.id, [m.content for m in e.messages], e.reward.total)  # noqa: E731
    assert [strip(e) for e in disturbed] == [strip(e) for e in undisturbed]


@requires_mysql
def test_explicit_mysql_without_a_server_is_one_config_error(monkeypatch, tmp_path):
    from agentpref.errors import ConfigError

    monkeypatch.setattr(mysql_server, "find_binary", lambda names: None)
    with pytest.raises(ConfigError) as err:
        DBBenchEnv.validate({"engine": "mysql"}, "envs.dbbench")
    text = str(err.value)
    assert "\n" not in text and "apt-get install mariadb-server" in text
    assert DBBenchEnv().engine == "sqlite"  # the default falls back, with a warning
    with pytest.raises(ConfigError, match="mysql://"):
        DBBenchEnv.validate({"url": "postgres://x"}, "envs.dbbench")
    # At recipe load, before any work.
    from agentpref.config import check_recipe, load_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: t\ntasks: {sources: [{name: builtin, env: dbbench}]}\n"
        "policy: {backend: scripted}\nenvs: {dbbench: {engine: mysql}}\n"
    )
    with pytest.raises(ConfigError) as err:
        check_recipe(load_recipe(recipe))
    assert "envs.dbbench.engine is mysql" in str(err.value) and "\n" not in str(err.value)


@requires_mysql
def test_driver_fidelity_mysql_connector_prints_errors_as_the_benchmark(imported):
    """The benchmark prints str(error) of mysql-connector-python ("1054 (42S22): ...");
    PyMySQL prints a tuple, so it would change every error observation."""
    env = statement_env(imported[0])
    text = obs(env, "SELECT nope FROM `Olympic medal table`")
    env.close()
    assert text.startswith("1054 (42S22): ")
    pymysql = pytest.importorskip("pymysql")
    srv = mysql_server.server()
    conn = pymysql.connect(unix_socket=srv.params["unix_socket"], user="root", password="")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT nope")
    except pymysql.MySQLError as exc:
        assert str(exc).startswith("(1054, ") and not str(exc).startswith("1054 (42S22)")
    finally:
        conn.close()


# --------------------------------------------------------------------------- branching


@requires_mysql
def test_snapshot_restores_the_episode_database_any_number_of_times(imported):
    env = statement_env(imported[5])
    obs(env, f"DELETE FROM `{MEDALS}` WHERE `Nation` = 'Chile'")
    obs(env, "CREATE TABLE notes (n TEXT)")
    obs(env, "INSERT INTO notes VALUES ('a'), (NULL)")
    state = env.snapshot()
    env.close()
    for _ in range(2):
        copy = DBBenchEnv(engine="mysql")
        copy.restore(state)
        assert obs(copy, f"SELECT COUNT(*) FROM `{MEDALS}`") == "[(4,)]"
        assert obs(copy, "SELECT * FROM notes") == "[('a',), (None,)]"
        obs(copy, "DROP TABLE notes")
        copy.close()
    assert state["operations"] == 3


@pytest.mark.parametrize("engine", ["mysql", "sqlite"])
def test_step_pairs_on_dbbench_tasks_from_database_snapshots(tmp_path, engine):
    if engine == "mysql" and mysql_missing() is not None:
        pytest.skip(f"MySQL tests need a server: {mysql_missing()}")
    from agentpref.pairs.base import PairContext
    from agentpref.pairs.steps import StepBranching

    library = build_library(tmp_path / "library.sqlite")
    task = library_tasks(library)[0]  # how many books by TP: 3
    good = op("SELECT count(*) FROM books WHERE author = 'TP'")
    bad = op("SELECT count(*) FROM books")

    def fn(conv, i):
        n = turns_played(conv)
        if n == 0:
            return op("SELECT * FROM authors")
        if n == 1:
            return good if i % 2 == 0 else bad
        return answer(rows_answer_last(conv))

    policy = scripted(fn)
    sampling = SamplingParams(n=1, seed=0)
    options = {"dbbench": {"engine": engine}}
    ctx = PairContext(round=0, sampling=sampling, policy=policy, env_options=options)
    source = play(scripted(lambda c, i: fn(c, 1)), [(task, 0)], sampling, options)
    assert source[0].reward.breakdown["success"] is False
    strategy = StepBranching(alternatives=2, rollouts=1, at_turns=[1], include_original=True)
    pairs = strategy.make_pairs([task], {task.id: source}, ctx)
    assert len(pairs) == 1
    (pair,) = pairs
    assert pair.chosen[0].content == good and pair.rejected[0].content == bad
    assert pair.chosen_score == 1.0
    assert pair.rejected_score == pytest.approx(DBBenchEnv.value(source[0]))
    assert pair.meta["turn"] == 1
    assert pair.provenance["chosen"]["breakdown"]["value"] == 1.0


def rows_answer_last(conv) -> list[str]:
    from dbbench_helpers import rows_answer

    return rows_answer(conv[-1].content)


# --------------------------------------------------------------------------- synthesised tasks


@requires_mysql
def test_synthesised_dbbench_tasks_solve_on_both_engines(tmp_path, monkeypatch):
    from dbbench_helpers import SPIDER

    from agentpref.tasks.sources.dbbench_synth import load_dbbench_synth

    monkeypatch.setenv("AGENTPREF_CACHE", str(tmp_path / "cache"))
    tasks = load_dbbench_synth(
        SourceConfig(
            name="dbbench-synth",
            path=str(SPIDER / "database" / "concert_singer"),
            options={"per_db": 11},
        )
    ).tasks
    assert len(tasks) == 11
    for engine in ("mysql", "sqlite"):
        episodes = play(engine_gold_policy(tasks), [(t, 0) for t in tasks], SamplingParams(),
                        {"dbbench": {"engine": engine}})
        failed = [e.task_id for e in episodes if not e.reward.breakdown["success"]]
        assert failed == [], engine
