"""`agentpref export RUN`: write the kept pairs again, in the formats asked."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agentpref.cli.main import add_common
from agentpref.errors import ConfigError

NAME = "export"
HELP = "export a run's kept pairs (dpo, kto, step) as JSONL and Parquet"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="run folder")
    parser.add_argument("--format", action="append", choices=["dpo", "kto", "step"],
                        help="format (repeatable; default: the recipe's)")
    parser.add_argument("--round", type=int, help="only this round's pairs")
    add_common(parser, recipe=False)


def run(args: argparse.Namespace) -> int:
    from agentpref.config import load_recipe
    from agentpref.pipeline import STORE_NAME, Run

    folder = Path(args.run_dir)
    if not (folder / STORE_NAME).is_file():
        raise ConfigError(f"{args.run_dir!r} is not a run folder (no {STORE_NAME}); check the path")
    recipe = load_recipe(folder / "recipe.yaml")
    if args.format:
        recipe = recipe.model_copy(
            update={"export": recipe.export.model_copy(update={"formats": args.format})}
        )
    with Run(recipe, folder, progress=False) as r:
        written = r.export(args.round)
    print(json.dumps(written, indent=2))
    return 0
