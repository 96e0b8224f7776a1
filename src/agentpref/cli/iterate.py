"""`agentpref iterate RECIPE`: N rounds of sample -> pair -> train -> evaluate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agentpref.cli.common import recipe_from_args
from agentpref.cli.main import add_common

NAME = "iterate"
HELP = "iterative DPO: each round samples from the newest policy, trains, evaluates (resumable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe_file", nargs="?", help="recipe YAML (or use --recipe)")
    parser.add_argument("--out", required=True, help="run folder (created; reused to resume)")
    parser.add_argument("--rounds", type=int, help="rounds (default: the recipe's `rounds`)")
    parser.add_argument("--no-eval", action="store_true", help="skip held-out evaluation")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    add_common(parser)


def run(args: argparse.Namespace) -> int:
    from agentpref.iterate import iterate

    recipe = recipe_from_args(args, default="quickstart")
    out = Path(args.out)
    summary = iterate(
        recipe, out, rounds=args.rounds, progress=not args.quiet, evaluate=not args.no_eval
    )
    for r in summary["rounds"]:
        train = r["train"]
        if train.get("steps"):
            before, after = train.get("loss_before"), train.get("loss_after")
            probe = (
                f", probe loss {before:.3f} -> {after:.3f}"
                if before is not None and after is not None
                else ""
            )
            loss = f"{train['rows']} rows, {train['steps']} steps{probe}"
        else:
            loss = train.get("skipped", "")
        evals = "; ".join(
            f"{e['label']}: " + ", ".join(f"{k} {v:.3f}" for k, v in e.items()
                                           if isinstance(v, float))
            for e in r["eval"]
        )
        print(f"round {r['round']}: {r['pairs_kept']} pairs kept | train {loss} | {evals}",
              file=sys.stderr)
    print(json.dumps({"run": str(out), "adapter": summary.get("adapter")}))
    return 0
