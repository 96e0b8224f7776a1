"""Helpers the command modules share: recipe loading and the end-of-run summary."""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from agentpref.config import Recipe, load_recipe


def builtin_recipe_path(name: str) -> Path:
    return Path(str(resources.files("agentpref") / "recipes" / f"{name}.yaml"))


def recipe_from_args(args: argparse.Namespace, default: str | None = None) -> Recipe:
    path = (
        getattr(args, "recipe", None)
        or getattr(args, "recipe_file", None)
        or (builtin_recipe_path(default) if default else None)
    )
    overrides = list(getattr(args, "overrides", []) or [])
    if getattr(args, "seed", None) is not None:
        overrides.append(f"seed={args.seed}")
    return load_recipe(path, overrides)


def print_summary(stats: dict[str, Any], out: Path) -> None:
    """Human summary on stderr; the exported DPO path on stdout (the result)."""
    err = sys.stderr
    print("", file=err)
    print(f"run folder: {out}", file=err)
    print(
        f"tasks: {stats['tasks']} train ({stats['tasks_sampled']} sampled), "
        f"{stats['tasks_eval']} eval | episodes: {stats['episodes']}",
        file=err,
    )
    print(
        f"yield: {stats['yield']:.1%} of sampled tasks gave a kept pair | pairs: "
        f"{stats['pairs_made']} made, {stats['pairs_kept']} kept",
        file=err,
    )
    if stats["drops_by_reason"]:
        print("drops: " + ", ".join(f"{k} x{v}" for k, v in stats["drops_by_reason"].items()),
              file=err)
    score = stats["score"]
    if score["mean"] is not None:
        hist = " ".join(f"{k}:{v}" for k, v in score["histogram"].items())
        print(f"episode scores: mean {score['mean']:+.3f} | {hist}", file=err)
    if stats.get("judge"):
        print(f"judge: {json.dumps(stats['judge'])}", file=err)
    print(f"stats: {out / 'stats.json'}", file=err)
    dpo = (stats.get("exports") or {}).get("dpo") or []
    if dpo:
        print(dpo[0])
