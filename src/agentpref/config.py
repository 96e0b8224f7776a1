"""Recipes: what a run does, as YAML validated by pydantic.

Precedence is defaults -> YAML file -> `--set key=value` overrides. Unknown keys are errors
everywhere, plugin options included (each plugin validates its own `options`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentpref.errors import ConfigError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceConfig(Section):
    """One task source in the mix."""

    name: str = Field(description="Source registry name: builtin, spider, sparc, cosql, ...")
    path: str | None = Field(default=None, description="Dataset folder or file (local).")
    split: str = Field(default="train", description="Dataset split to read: train, dev, ...")
    count: int | None = Field(default=None, ge=0, description="Tasks to take (None: all).")
    env: str | None = Field(default=None, description="Override the environment: sql, dbbench.")
    options: dict[str, Any] = Field(default_factory=dict, description="Source-specific options.")


class TasksConfig(Section):
    sources: list[SourceConfig] = Field(default_factory=lambda: [SourceConfig(name="builtin")])
    heldout_fraction: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Share of databases held out for evaluation."
    )
    dedupe: bool = True
    contamination: dict[str, Any] = Field(
        default_factory=dict, description="Guard options: blocklists, ngram, threshold."
    )


class PolicyConfig(Section):
    """A generation backend plus a model."""

    backend: str = Field(default="transformers", description="transformers, openai, scripted.")
    model: str = Field(default="default", description="'default', a folder, hub id or .gguf.")
    adapter: str | None = Field(default=None, description="LoRA adapter folder.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Backend options: device, batch_size, base_url, ..."
    )


class SamplingConfig(Section):
    k: int = Field(default=4, ge=1, description="Episodes per task.")
    temperature: float = Field(default=0.8, ge=0.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(default=192, ge=1)
    max_samples: int = Field(
        default=8, ge=1, description="Cap on episodes per task when all K tie (resampling)."
    )
    seed: int = 0
    episodes_per_batch: int = Field(
        default=64, ge=1, description="Episodes played (and committed) together per batch."
    )


class PluginConfig(Section):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


def _default_strategies() -> list[PluginConfig]:
    return [PluginConfig(name="best-worst")]


def _default_filters() -> list[PluginConfig]:
    return [
        PluginConfig(name="margin"),
        PluginConfig(name="length"),
        PluginConfig(name="chosen-valid"),
        PluginConfig(name="duplicates"),
    ]


class JudgeConfig(Section):
    enabled: bool = False
    policy: PolicyConfig | None = None
    drop_rejected: bool = Field(
        default=False, description="Drop pairs the judge prefers the other way round."
    )
    options: dict[str, Any] = Field(default_factory=dict)


class ExportConfig(Section):
    formats: list[str] = Field(default_factory=lambda: ["dpo", "kto"])
    parquet: bool = True


class Recipe(Section):
    """A whole run: tasks, policy, sampling, pairs, filters, export, training, rounds."""

    name: str = "run"
    seed: int = 0
    tasks: TasksConfig = Field(default_factory=TasksConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    envs: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per-environment options, keyed by env name."
    )
    strategies: list[PluginConfig] = Field(default_factory=_default_strategies)
    teacher: PolicyConfig | None = None
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    filters: list[PluginConfig] = Field(default_factory=_default_filters)
    export: ExportConfig = Field(default_factory=ExportConfig)
    train: dict[str, Any] | None = Field(
        default=None, description="Training options (see `agentpref train --help`)."
    )
    evaluate: dict[str, Any] | None = Field(default=None, description="Evaluation options.")
    rounds: int = Field(default=1, ge=1)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'a.b.c=value' -> (['a','b','c'], parsed YAML value)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r} is not key=value; write e.g. --set sampling.k=8")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {text!r} has an empty key; write e.g. --set sampling.k=8")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node: Any = data
        for i, part in enumerate(path[:-1]):
            if isinstance(node, list):
                node = node[_list_index(part, path[: i + 1])]
                continue
            if part not in node or node[part] is None:
                node[part] = {}
            node = node[part]
        last = path[-1]
        if isinstance(node, list):
            node[_list_index(last, path)] = value
        else:
            node[last] = value
    return data


def _list_index(part: str, path: list[str]) -> int:
    try:
        return int(part)
    except ValueError:
        raise ConfigError(f"--set {'.'.join(path)}: {part!r} must be a list index") from None


def format_validation_error(exc: ValidationError, origin: str) -> str:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown key {loc!r}")
        else:
            problems.append(f"{loc}: {err['msg']}")
    return f"{origin}: " + "; ".join(problems)


def recipe_from_dict(data: dict[str, Any], origin: str = "recipe") -> Recipe:
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, origin)) from None


def load_recipe(path: str | Path | None, overrides: list[str] | None = None) -> Recipe:
    """Read a YAML recipe (or start from defaults when path is None) and apply overrides."""
    data: dict[str, Any] = {}
    origin = "defaults"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"recipe file {str(p)!r} does not exist; check the path")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            where = f" at line {line + 1}" if line is not None else ""
            raise ConfigError(f"recipe {p.name} is not valid YAML{where}; fix the syntax") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"recipe {p.name} must be a mapping of sections, not a list or value")
        data = loaded
        origin = p.name
    data = apply_overrides(data, overrides or [])
    return recipe_from_dict(data, origin)


def validate_options(model: type[BaseModel], options: dict[str, Any], where: str) -> Any:
    """Validate a plugin's options dict against its pydantic model; one clear line on error."""
    try:
        return model.model_validate(options or {})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where)) from None


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
