"""`agentpref sql check`, single and batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentpref.cli.main import main

DATA = Path(__file__).resolve().parents[4].parent / "shared" / "data" / "spider"
PETS = str(DATA / "database" / "pets_1" / "pets_1.sqlite")


def test_check_single(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "sql",
            "check",
            "--db",
            PETS,
            "--gold",
            "SELECT count(*) FROM Student",
            "--pred",
            "select COUNT(*) from student;",
        ]
    )
    assert rc == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["equivalent"] is True and verdict["reward"] == 1.0
    assert verdict["breakdown"]["mode"] == "spider"


def test_check_single_modes(capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "sql",
        "check",
        "--db",
        PETS,
        "--gold",
        "SELECT fname, age FROM Student",
        "--pred",
        "SELECT age, fname FROM Student",
    ]
    assert main([*args, "--mode", "spider"]) == 0
    assert json.loads(capsys.readouterr().out)["equivalent"] is True
    assert main([*args, "--mode", "bird", "--scheme", "graded"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["equivalent"] is False and verdict["reward"] == pytest.approx(0.1)


def test_check_batch_in_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [
        {
            "id": "a",
            "db": PETS,
            "gold": "SELECT count(*) FROM Pets",
            "pred": "SELECT count(*) FROM pets",
        },
        {"id": "b", "db": PETS, "gold": "SELECT count(*) FROM Pets", "pred": "SELECT 0"},
        {"id": "c", "db": PETS, "gold": "SELECT count(*) FROM Pets", "pred": "DROP TABLE Pets"},
        {
            "id": "d",
            "db": PETS,
            "gold": "SELECT stuid FROM Student",
            "pred": "SELECT DISTINCT stuid FROM Student",
            "mode": "exact",
        },
        {"id": "e", "db": PETS, "gold": "SELECT 1", "pred": None},
    ]
    batch = tmp_path / "batch.jsonl"
    batch.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert main(["sql", "check", "--batch", str(batch)]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [v["id"] for v in out] == ["a", "b", "c", "d", "e"]
    assert [v["equivalent"] for v in out] == [True, False, False, True, False]
    assert [v["reward"] for v in out] == [1.0, -0.25, -0.5, 1.0, -0.5]
    assert out[3]["breakdown"]["mode"] == "exact"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"db": "x.sqlite", "gold": "SELECT 1", "pred": "SELECT 1"}\nnot json\n',
            "line 2 is not valid JSON",
        ),
        ('{"db": "x.sqlite", "pred": "SELECT 1"}\n', "line 1 lacks gold"),
        (
            '{"db": "x.sqlite", "gold": "SELECT 1", "pred": "SELECT 1", "mode": "fuzzy"}\n',
            "unknown mode",
        ),
    ],
)
def test_check_batch_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    batch = tmp_path / "bad.jsonl"
    batch.write_text(content)
    assert main(["sql", "check", "--batch", str(batch)]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_check_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "sql",
                "check",
                "--db",
                str(tmp_path / "none.sqlite"),
                "--gold",
                "SELECT 1",
                "--pred",
                "SELECT 1",
            ]
        )
        == 1
    )
    assert "does not exist" in capsys.readouterr().err
    assert main(["sql", "check", "--db", PETS]) == 1
    assert "missing --gold, --pred" in capsys.readouterr().err
    assert (
        main(
            [
                "sql",
                "check",
                "--db",
                PETS,
                "--gold",
                "SELECT nope FROM Student",
                "--pred",
                "SELECT 1",
            ]
        )
        == 1
    )
    assert "gold SQL fails" in capsys.readouterr().err
