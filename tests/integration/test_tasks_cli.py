"""`agentpref tasks build|show|screen` end to end through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentpref.cli.main import main

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPREF_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_tasks_build_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not (SHARED / "spider" / "dev.json").is_file():
        pytest.skip("the shared Spider data is not beside the project")
    recipe = tmp_path / "mix.yaml"
    recipe.write_text(
        "name: mix\n"
        "seed: 5\n"
        "tasks:\n"
        "  heldout_fraction: 0.3\n"
        "  sources:\n"
        f"    - {{name: spider, path: {SHARED / 'spider'}, split: dev, count: 40}}\n"
        f"    - {{name: bird, path: {SHARED / 'bird' / 'dev_sample.json'}, split: dev}}\n"
        "    - {name: builtin, count: 20}\n"
    )
    out = tmp_path / "set"
    assert main(["tasks", "build", str(recipe), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "spider:dev" in printed and "missing_database 60" in printed
    train = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    evals = [json.loads(x) for x in (out / "eval.jsonl").read_text().splitlines()]
    assert len(train) + len(evals) == 60
    assert not {t["meta"]["db_id"] for t in train} & {t["meta"]["db_id"] for t in evals}
    report = json.loads((out / "tasks_report.json").read_text())
    assert report["sources"]["bird:dev"]["skipped"] == {"missing_database": 60}

    assert main(["tasks", "build", "--recipe", str(recipe), "--out", str(tmp_path / "again")]) == 0
    capsys.readouterr()
    assert (tmp_path / "again" / "train.jsonl").read_text() == (out / "train.jsonl").read_text()

    assert main(["tasks", "show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "builtin" in shown and "spider" in shown and "library" in shown
    assert f"train {len(train)}" in shown and f"eval {len(evals)}" in shown


def test_tasks_screen_prints_one_verdict_per_line_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        {"id": "a", "text": "How many singers do we have?"},
        {
            "id": "b",
            "conversations": [
                {"from": "human", "value": "Your task is to: put a clean mug in coffeemachine."},
                {"from": "gpt", "value": "THOUGHT: find a mug.\n ACTION: go to countertop 1"},
            ],
        },
        {
            "id": "c",
            "messages": [
                {
                    "role": "user",
                    "content": "Your task is to boil water. First, focus on the substance.",
                }
            ],
        },
        {"text": "-= Welcome to TextWorld, ALFRED! =-"},
    ]
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert main(["tasks", "screen", str(path)]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [o["id"] for o in out] == ["a", "b", "c", 4]
    assert [o["clean"] for o in out] == [True, False, True, False]
    assert "alfworld_goal" in out[1]["reasons"] and out[3]["reasons"] == ["textworld_banner"]
    assert out[0]["reasons"] == []


def test_tasks_bad_input_is_one_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{broken\n')
    assert main(["tasks", "screen", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: bad.jsonl line 2 is not valid JSON")
    assert main(["tasks", "screen", str(tmp_path / "nope.jsonl")]) == 1
    assert "does not exist" in capsys.readouterr().err
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"tasks:\n  sources:\n    - {{name: spider, path: {tmp_path / 'x'}}}\n")
    assert main(["tasks", "build", str(recipe), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    assert main(["tasks", "show", str(tmp_path)]) == 1
    assert "holds no task set" in capsys.readouterr().err
