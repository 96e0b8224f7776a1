"""`agentpref report RUN`: a self-contained HTML page of a run's figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from agentpref.cli.main import add_common
from agentpref.errors import ConfigError

NAME = "report"
HELP = "write RUN/report.html: yield, rewards, margins, length bias, drops, judge, eval"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="run folder")
    parser.add_argument("--out", help="HTML file to write (default: RUN/report.html)")
    add_common(parser, recipe=False)


def run(args: argparse.Namespace) -> int:
    from agentpref.report.html import write_report

    folder = Path(args.run_dir)
    if not folder.is_dir():
        raise ConfigError(f"{args.run_dir!r} is not a folder; give a run folder")
    print(write_report(folder, args.out))
    return 0
