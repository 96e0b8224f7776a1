"""`agentpref status RUN`: counts from a run's store."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agentpref.cli.main import add_common
from agentpref.errors import ConfigError

NAME = "status"
HELP = "show a run folder's counts: tasks, episodes, pairs, drops, rounds"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="run folder")
    add_common(parser, recipe=False)


def run(args: argparse.Namespace) -> int:
    from agentpref.pipeline import STORE_NAME
    from agentpref.store import RunStore

    path = Path(args.run_dir) / STORE_NAME
    if not path.is_file():
        raise ConfigError(f"{args.run_dir!r} is not a run folder (no {STORE_NAME}); check the path")
    with RunStore(path) as store:
        counts = store.counts()
        counts["drops_by_filter"] = store.drop_counts()
        counts["pairs_kept"] = counts["pairs"] - counts["pairs_dropped"]
    print(json.dumps(counts, indent=2))
    return 0
