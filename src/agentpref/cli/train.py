"""`agentpref train RUN_OR_FILE`: DPO/IPO/KTO with a LoRA adapter on an exported run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agentpref.cli.main import add_common
from agentpref.errors import ConfigError

NAME = "train"
HELP = "train a LoRA adapter with DPO, IPO, KTO or another TRL loss on a run's export"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="RUN_OR_FILE", help="run folder or dpo/kto .jsonl file")
    parser.add_argument("--loss", help="dpo (default), ipo, kto, or any TRL DPO loss_type")
    parser.add_argument("--model", help="base model: 'default', a folder, .gguf or hub id")
    parser.add_argument("--out", help="output folder (default: RUN/train/round_<N>)")
    parser.add_argument("--round", type=int, default=0, help="round number recorded (default 0)")
    parser.add_argument("--init-adapter", help="continue training this LoRA adapter")
    add_common(parser)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = options_help()


def options_help() -> str:
    """The train.* keys, their defaults and meaning (from TrainConfig)."""
    from agentpref.train.dpo import TrainConfig

    lines = ["training options (recipe section `train`, or --set train.KEY=VALUE):"]
    for name, field in TrainConfig.model_fields.items():
        default = field.default if field.default_factory is None else field.default_factory()  # type: ignore[call-arg]
        desc = f"  {field.description}" if field.description else ""
        lines.append(f"  {name} = {default!r}{desc}")
    return "\n".join(lines)


def train_options(args: argparse.Namespace, recipe_train: dict[str, Any] | None) -> Any:
    """Defaults -> the recipe's `train` section -> --set train.x=y -> --loss / --seed."""
    from agentpref.config import apply_overrides, validate_options
    from agentpref.train.dpo import TrainConfig

    overrides = list(getattr(args, "overrides", []) or [])
    foreign = [o for o in overrides if not o.strip().startswith("train.")]
    if foreign:
        raise ConfigError(
            f"--set {foreign[0]!r}: this command takes train.* keys only, e.g. --set train.beta=0.2"
        )
    data = apply_overrides({"train": dict(recipe_train or {})}, overrides)["train"]
    if args.loss:
        data["loss"] = args.loss
    if getattr(args, "seed", None) is not None:
        data["seed"] = args.seed
    return validate_options(TrainConfig, data, "train")


def run(args: argparse.Namespace) -> int:
    from agentpref.config import load_recipe
    from agentpref.train.dpo import train

    data = Path(args.data)
    run_dir = data if data.is_dir() else None
    recipe_path = args.recipe or (
        run_dir / "recipe.yaml" if run_dir and (run_dir / "recipe.yaml").is_file() else None
    )
    recipe = load_recipe(recipe_path) if recipe_path else None
    config = train_options(args, recipe.train if recipe else None)
    model = args.model or (recipe.policy.model if recipe else "default")
    if args.out:
        out = Path(args.out)
    elif run_dir is not None:
        out = run_dir / "train" / f"round_{args.round}"
    else:
        out = data.parent / "train"
    result = train(config, data, model, out, round=args.round, init_adapter=args.init_adapter)
    err = sys.stderr
    print(
        f"trained {result.loss} on {result.rows} rows ({result.multi_turn_rows} multi-turn, "
        f"{result.masked_tokens} observation tokens masked) for {result.steps} steps "
        f"in {result.seconds:.0f}s on {result.device}",
        file=err,
    )
    if result.loss_before is not None:
        print(f"probe loss: {result.loss_before:.4f} -> {result.loss_after:.4f}", file=err)
    print(f"result: {out / 'train_result.json'}", file=err)
    print(result.adapter_path)
    return 0
