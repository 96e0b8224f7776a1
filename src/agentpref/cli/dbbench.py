"""`agentpref dbbench`: DB Bench-style data tools.

`dbbench import FILE.jsonl --out DIR` turns records in DB Bench's layout into evaluation-only
tasks (one SQLite database per record); `dbbench modifications PATH` prints synthesised
INSERT/UPDATE/DELETE tasks for a database file or folder, one JSON task per line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agentpref.cli.main import add_common
from agentpref.errors import ConfigError, DataError

NAME = "dbbench"
HELP = "DB Bench tools: import public items as eval-only tasks, synthesise modification tasks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dbbench_command", metavar="SUBCOMMAND")
    imp = sub.add_parser(
        "import",
        help="DB Bench-layout JSONL -> evaluation-only tasks (DIR/tasks.jsonl + DIR/dbs/)",
        description="Read records in DB Bench's data layout and write one SQLite database per "
        "record (every column TEXT) and DIR/tasks.jsonl. The tasks are evaluation-only: "
        "training never uses them. Read them back with tasks source 'dbbench' (path: DIR).",
    )
    imp.add_argument("file", metavar="FILE.jsonl", help="DB Bench records, one JSON per line")
    imp.add_argument("--out", required=True, metavar="DIR", help="folder to write")
    imp.add_argument("--split", default="dev", help="split recorded in task ids (default dev)")
    add_common(imp, recipe=False)

    mod = sub.add_parser(
        "modifications",
        help="print synthesised INSERT/UPDATE/DELETE tasks for a database (JSONL on stdout)",
        description="Synthesise data-modification tasks from a SQLite file or a folder of "
        "them (the 'modifications' task source) and print one task per line.",
    )
    mod.add_argument("path", help="a .sqlite file or a folder holding them")
    mod.add_argument("--per-db", type=int, default=6, help="tasks per database (default 6)")
    mod.add_argument(
        "--kinds", default="insert,update,delete", help="comma-separated kinds to make"
    )
    mod.add_argument("--count", type=int, help="stop after this many tasks")
    mod.add_argument("--split", default="train", help="split recorded in task ids")
    mod.add_argument("--seed", type=int, default=0, help="synthesis seed (default 0)")
    add_common(mod, recipe=False)
    parser.set_defaults(dbbench_command=None)


def run(args: argparse.Namespace) -> int:
    if args.dbbench_command == "import":
        return _import(args)
    if args.dbbench_command == "modifications":
        return _modifications(args)
    raise ConfigError(
        "missing sub-command; use: agentpref dbbench import FILE.jsonl --out DIR, "
        "or agentpref dbbench modifications PATH"
    )


def _import(args: argparse.Namespace) -> int:
    from agentpref.tasks.sources.dbbench import import_dbbench

    src = Path(args.file)
    if not src.is_file():
        raise DataError(f"DB Bench file {str(src)!r} does not exist; check the path")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file; give a folder")
    result = import_dbbench(src, out, split=args.split)
    kinds: dict[str, int] = {}
    for t in result.tasks:
        kinds[t.spec["kind"]] = kinds.get(t.spec["kind"], 0) + 1
    summary = {
        "out": str(out),
        "tasks": len(result.tasks),
        "kinds": dict(sorted(kinds.items())),
        "skipped": result.skipped_counts(),
    }
    for reason, detail in result.skipped[:20]:
        print(f"skipped ({reason}): {detail}", file=sys.stderr)
    print(json.dumps(summary))
    return 0


def _modifications(args: argparse.Namespace) -> int:
    from agentpref.config import SourceConfig
    from agentpref.envs.sql.mutate import load_modifications

    if args.per_db < 1 or (args.count is not None and args.count < 0):
        raise ConfigError("--per-db must be >= 1 and --count >= 0")
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    options = {"per_db": args.per_db, "kinds": kinds, "seed": args.seed}
    cfg = SourceConfig(
        name="modifications", path=args.path, split=args.split, count=args.count, options=options
    )
    result = load_modifications(cfg)
    for task in result.tasks:
        sys.stdout.write(task.to_json() + "\n")
    for reason, detail in result.skipped[:20]:
        print(f"skipped ({reason}): {detail}", file=sys.stderr)
    return 0
