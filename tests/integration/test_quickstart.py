"""The README's main job, with the real tiny model, on a few built-in questions."""

from __future__ import annotations

import json

import pytest

from agentpref.cli.main import main


@pytest.mark.slow
def test_quickstart_writes_trl_loadable_pairs_and_stats(tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "qs"
    code = main([
        "quickstart", "--out", str(out), "--quiet",
        "--set", "tasks.sources.0.count=6",
        "--set", "sampling.max_new_tokens=48",
        "--set", "sampling.max_samples=4",
    ])
    assert code == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    dpo = out / "export" / "dpo.jsonl"
    assert printed == str(dpo) and dpo.is_file()
    stats = json.loads((out / "stats.json").read_text())
    assert stats["tasks"] == 6 and stats["episodes"] == 24
    assert sum(stats["score"]["histogram"].values()) == 24
    rows = [json.loads(line) for line in dpo.read_text().splitlines()]
    assert len(rows) == stats["pairs_kept"]
    if rows:
        ds = datasets.Dataset.from_list(rows)
        assert {"prompt", "chosen", "rejected"} <= set(ds.column_names)
        assert all(r["chosen_score"] > r["rejected_score"] for r in rows)
        assert all(r["policy"] == "SmolLM2-135M-Instruct" for r in rows)
