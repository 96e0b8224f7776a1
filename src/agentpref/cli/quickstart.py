"""`agentpref quickstart`: the main job on the embedded defaults (built-in suite, tiny model)."""

from __future__ import annotations

import argparse
from pathlib import Path

from agentpref.cli.common import print_summary, recipe_from_args
from agentpref.cli.main import add_common

NAME = "quickstart"
HELP = "self-play SQL pairs on the built-in suite with the embedded tiny model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/quickstart", help="run folder")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    add_common(parser)


def run(args: argparse.Namespace) -> int:
    from agentpref.pipeline import Run

    recipe = recipe_from_args(args, default="quickstart")
    out = Path(args.out)
    with Run(recipe, out, progress=not args.quiet) as r:
        stats = r.run()
    print_summary(stats, out)
    return 0
