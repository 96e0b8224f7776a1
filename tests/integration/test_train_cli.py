"""`agentpref train`, `evaluate` and `report` run end to end through the CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from agentpref.cli.main import main
from agentpref.records import Task
from agentpref.store import RunStore

RIGHT = "```sql\nSELECT count(*) FROM city\n```"


def make_run(tmp_path: Path, replies: list[str]) -> Path:
    """A run folder: a recipe with a scripted policy, two eval SQL tasks, a DPO export."""
    db = tmp_path / "cities.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript("CREATE TABLE city(name TEXT); INSERT INTO city VALUES ('Lima'), ('Oslo');")
    conn.commit()
    conn.close()
    run = tmp_path / "run"
    run.mkdir()
    recipe = {
        "policy": {"backend": "scripted", "options": {"replies": replies}},
        "evaluate": {"max_new_tokens": 16},
    }
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    with RunStore(run / "store.sqlite") as store:
        store.add_tasks(
            [
                Task(
                    id=f"c:eval:{i}",
                    source="c",
                    split="eval",
                    env="sql",
                    spec={"db_path": str(db), "gold_sql": gold, "question": q, "db_id": "c"},
                )
                for i, (q, gold) in enumerate(
                    [
                        ("How many cities?", "SELECT count(*) FROM city"),
                        ("Name the cities.", "SELECT name FROM city"),
                    ]
                )
            ]
        )
        store.add_tasks([Task(id="c:train:0", source="c", env="sql")])
    rows = [
        {
            "prompt": [{"role": "user", "content": "How many cities?"}],
            "chosen": [{"role": "assistant", "content": RIGHT}],
            "rejected": [{"role": "assistant", "content": "No idea."}],
            "template_hash": "scripted",
        },
        {
            "prompt": [{"role": "user", "content": "Name the cities."}],
            "chosen": [{"role": "assistant", "content": "SELECT name FROM city"}],
            "rejected": [{"role": "assistant", "content": "SELECT nme FROM city"}],
            "template_hash": "scripted",
        },
    ]
    (run / "export").mkdir()
    (run / "export" / "dpo.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_evaluate_base_and_adapter_then_report(tmp_path, capsys):
    run = make_run(tmp_path, [RIGHT])  # right on task 0, wrong on task 1
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    assert (
        main(
            ["evaluate", str(run), "--adapter", str(adapter), "--round", "1", "--label", "round_1"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "sql/execution_accuracy" in out and "base" in out and "round_1" in out
    base = json.loads((run / "eval" / "base.json").read_text())
    r1 = json.loads((run / "eval" / "round_1.json").read_text())
    assert base["metrics"]["sql"]["execution_accuracy"] == 0.5 and base["tasks"] == 2
    assert r1["round"] == 1 and r1["adapter"] == str(adapter) and r1["policy"].endswith("adapter")

    # The stored base result is reused; --limit changes the task set, so base is played again.
    assert main(["evaluate", str(run), "--limit", "1"]) == 0
    assert json.loads((run / "eval" / "base.json").read_text())["tasks"] == 1

    assert main(["report", str(run)]) == 0
    report = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert report == run / "report.html"
    assert report.read_text().count('<img src="data:image/png;base64,') == 1  # eval only


def test_user_errors_are_one_line(tmp_path, capsys):
    run = make_run(tmp_path, [RIGHT])
    assert main(["train", str(run), "--set", "sampling.k=2"]) == 1
    assert main(["train", str(run), "--set", "train.lora_rnk=2"]) == 1
    assert main(["train", str(run), "--loss", "dpp"]) == 1
    assert main(["train", str(tmp_path / "missing.jsonl")]) == 1
    assert main(["evaluate", str(tmp_path)]) == 1
    assert main(["evaluate", str(run), "--no-base"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 6 and all(line.startswith("error: ") for line in err)
    assert "train.* keys only" in err[0] and "lora_rnk" in err[1] and "unknown loss" in err[2]


def test_train_refuses_rows_of_another_template(tmp_path, capsys, tiny_model_dir):
    run = make_run(tmp_path, [RIGHT])
    lines = (run / "export" / "dpo.jsonl").read_text().splitlines()
    rows = [json.loads(x) for x in lines]
    rows[0]["template_hash"] = "0000000000000000"
    (run / "export" / "dpo.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["train", str(run), "--model", str(tiny_model_dir)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "chat template '0000000000000000'" in err[0]
    assert not (run / "train").exists()


@pytest.mark.slow
def test_train_cli_writes_an_adapter_into_the_run(tmp_path, capsys, tiny_model_dir):
    run = make_run(tmp_path, [RIGHT])
    rc = main(
        [
            "train",
            str(run),
            "--model",
            str(tiny_model_dir),
            "--round",
            "1",
            "--set",
            "train.max_steps=1",
            "--set",
            "train.batch_size=2",
            "--set",
            "train.max_length=64",
            "--set",
            "train.lora_rank=4",
            "--set",
            "train.loss_probe=0",
            "--set",
            "train.target_modules=[q_proj]",
        ]
    )
    assert rc == 0
    adapter = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert adapter == run / "train" / "round_1" / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file()
    result = json.loads((run / "train" / "round_1" / "train_result.json").read_text())
    assert result["round"] == 1 and result["steps"] == 1 and result["config"]["lora_rank"] == 4
