"""A whole run on ScienceWorld with the real tiny model: sample, expert and step pairs, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentpref.config import recipe_from_dict
from agentpref.pipeline import Run

pytestmark = pytest.mark.slow

TYPE = "lifespan-longest-lived"


def test_tiny_model_run_exports_pairs(tmp_path: Path, tiny_model_dir: Path) -> None:
    recipe = recipe_from_dict({
        "name": "sw-tiny",
        "tasks": {"sources": [{
            "name": "scienceworld",
            "options": {"task_types": [TYPE], "variations_per_type": 1,
                        "step_limits": {TYPE: 3}},
        }]},
        "policy": {"backend": "transformers", "model": str(tiny_model_dir)},
        "sampling": {"k": 1, "max_samples": 1, "max_new_tokens": 40, "temperature": 1.0},
        "envs": {"scienceworld": {"heuristic_weight": 0.2}},
        "strategies": [
            {"name": "expert"},
            {"name": "steps", "options": {"alternatives": 2, "rollouts": 1,
                                          "branch_points": 1, "min_margin": 0.0}},
        ],
        "export": {"formats": ["dpo"], "parquet": False},
    })
    out = tmp_path / "run"
    with Run(recipe, out, progress=False) as run:
        stats = run.run()
        episodes = run.store.episodes(kind="policy")
    assert len(episodes) == 1
    for e in episodes:
        b = e.reward.breakdown
        assert {"score", "env_score", "heuristic", "format", "validity", "reasoning",
                "valid"} <= set(b)
        assert e.outcome in {"done", "failed_format", "repeated", "max_steps", "failed_task"}
        assert b["turns"] <= 3
    rows = [json.loads(x) for x in (out / "export" / "dpo.jsonl").read_text().splitlines()]
    assert stats["pairs_kept"] == len(rows) >= 1
    expert = [r for r in rows if r["strategy"] == "expert"]
    assert expert, "the tiny model fails the task, so the gold path makes an expert pair"
    assert all(r["chosen"][0]["role"] == "assistant" for r in rows)
    assert all(r["prompt"][-1]["role"] == "user" for r in rows)
