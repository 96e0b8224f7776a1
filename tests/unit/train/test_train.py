"""Training: options, data checks, the chat-template guard, and real short DPO/KTO runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from agentpref.config import validate_options
from agentpref.errors import ConfigError, DataError
from agentpref.precision import auto_precision
from agentpref.train.dpo import (
    TrainConfig,
    check_template,
    find_data,
    load_rows,
    load_tokenizer,
    to_examples,
    train,
)
from agentpref.train.masks import chat_template_hash

QUESTIONS = [
    ("How many singers are there?", "SELECT count(*) FROM singer"),
    ("List all city names.", "SELECT name FROM city"),
    ("What is the oldest age?", "SELECT max(age) FROM people"),
]


def dpo_rows(template_hash: str = "scripted") -> list[dict]:
    rows = [
        {
            "prompt": [{"role": "user", "content": q}],
            "chosen": [{"role": "assistant", "content": sql}],
            "rejected": [{"role": "assistant", "content": "I cannot answer that."}],
            "id": f"p{i}",
            "task_id": f"t{i}",
            "source": "test",
            "round": 0,
            "strategy": "best-worst",
            "chosen_score": 1.0,
            "rejected_score": -0.5,
            "margin": 1.5,
            "policy": "scripted",
            "template_hash": template_hash,
            "sampling": "{}",
            "env": "sql",
        }
        for i, (q, sql) in enumerate(QUESTIONS)
    ]
    rows.append(
        {
            "prompt": [{"role": "user", "content": "Capital of Peru? Table: country."}],
            "chosen": [
                {
                    "role": "assistant",
                    "content": "Action: Operation\n```sql\nSELECT capital FROM country\n```",
                },
                {"role": "user", "content": "[('Lima',)]"},
                {"role": "assistant", "content": 'Action: Answer\nFinal Answer: ["Lima"]'},
            ],
            "rejected": [{"role": "assistant", "content": 'Action: Answer\nFinal Answer: ["x"]'}],
            "id": "m",
            "task_id": "m",
            "template_hash": "",
        }
    )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def kto_rows() -> list[dict]:
    out = []
    for r in dpo_rows():
        out.append(
            {
                "prompt": r["prompt"],
                "completion": r["chosen"],
                "label": True,
                "template_hash": "scripted",
            }
        )
        out.append(
            {
                "prompt": r["prompt"],
                "completion": r["rejected"],
                "label": False,
                "template_hash": "scripted",
            }
        )
    return out


# -- options and data ----------------------------------------------------------------------


def test_defaults_follow_the_survey_and_unknown_keys_fail():
    c = TrainConfig()
    assert (c.loss, c.trl_loss, c.beta, c.lora_rank, c.epochs) == ("dpo", "sigmoid", 0.1, 32, 1.0)
    assert TrainConfig(loss="IPO").trl_loss == "ipo" and TrainConfig(loss="kto").is_kto
    assert TrainConfig(loss="hinge").trl_loss == "hinge"
    with pytest.raises(ConfigError, match="unknown key 'lora_rnk'"):
        validate_options(TrainConfig, {"lora_rnk": 8}, "train")
    with pytest.raises(ConfigError, match="unknown loss 'dpp'"):
        validate_options(TrainConfig, {"loss": "dpp"}, "train")


def test_find_data_picks_the_export_for_the_loss(tmp_path):
    write_jsonl(tmp_path / "export" / "dpo.jsonl", dpo_rows())
    write_jsonl(tmp_path / "export" / "kto.jsonl", kto_rows())
    assert find_data(tmp_path, "dpo") == tmp_path / "export" / "dpo.jsonl"
    assert find_data(tmp_path, "kto") == tmp_path / "export" / "kto.jsonl"
    with pytest.raises(DataError, match="does not exist"):
        find_data(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no dpo.jsonl export"):
        find_data(tmp_path / "empty", "dpo")


def test_bad_rows_are_one_clear_line(tmp_path):
    with pytest.raises(DataError, match="use --loss kto"):
        to_examples(kto_rows(), kto=False, name="kto.jsonl")
    bad = dpo_rows()[:1]
    bad[0]["chosen"] = [{"role": "user", "content": "no assistant"}]
    with pytest.raises(DataError, match="row 1 chosen has no assistant message"):
        to_examples(bad, kto=False, name="dpo.jsonl")
    p = tmp_path / "broken.jsonl"
    p.write_text(json.dumps(dpo_rows()[0]) + "\n{not json\n")
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        load_rows(p)
    # Paired rows train KTO too: each side becomes one labelled row.
    ex = to_examples(dpo_rows(), kto=True, name="dpo.jsonl")
    assert len(ex) == 8 and [e["label"] for e in ex[:2]] == [True, False]


def test_template_check_refuses_other_templates(tiny_model_dir):
    tok_hash = chat_template_hash(load_tokenizer(tiny_model_dir))
    rows = dpo_rows(tok_hash)
    assert check_template(rows, tok_hash, "m", "dpo.jsonl") == 1  # the "" row is exempt
    rows[1]["template_hash"] = "0123456789abcdef"
    with pytest.raises(ConfigError) as err:
        check_template(rows, tok_hash, "default", "dpo.jsonl")
    msg = str(err.value)
    assert "1 of 4 rows" in msg and "0123456789abcdef" in msg and tok_hash in msg
    assert "\n" not in msg


def test_train_refuses_before_loading_weights(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "dpo.jsonl", dpo_rows("ffffffffffffffff"))
    with pytest.raises(ConfigError, match="sampled with chat template 'ffffffffffffffff'"):
        train(TrainConfig(), data, str(tiny_model_dir), tmp_path / "out")
    assert not (tmp_path / "out" / "adapter").exists()


def test_bad_trl_arguments_and_device_fail_before_training(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "dpo.jsonl", dpo_rows())
    with pytest.raises(ConfigError, match="train.trl: .*bogus_key"):
        train(TrainConfig(trl={"bogus_key": 1}), data, str(tiny_model_dir), tmp_path / "out")
    with pytest.raises(ConfigError, match="train.device 'tpu'"):
        train(TrainConfig(device="tpu"), data, str(tiny_model_dir), tmp_path / "out")
    with pytest.raises(ConfigError, match="batch_size >= 2"):
        train(TrainConfig(loss="kto", batch_size=1), data, str(tiny_model_dir), tmp_path / "o")
    assert not (tmp_path / "out" / "adapter").exists()


# -- real runs on the tiny model -----------------------------------------------------------

FAST = dict(
    max_steps=4,
    batch_size=2,
    lr=2e-3,
    max_length=80,
    lora_rank=8,
    lora_alpha=16,
    lora_dropout=0.0,
    target_modules=["q_proj", "v_proj", "o_proj"],
    loss_probe=4,
)


def lora_b_norm(adapter: Path) -> float:
    from safetensors.torch import load_file

    weights = load_file(str(adapter / "adapter_model.safetensors"))
    b = [w for k, w in weights.items() if "lora_B" in k]
    assert b, "the adapter holds no LoRA B matrices"
    return float(sum(float(w.float().norm()) for w in b))


@pytest.mark.slow
def test_dpo_run_changes_the_adapter_and_lowers_the_loss(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "run" / "export" / "dpo.jsonl", dpo_rows())
    result = train(TrainConfig(**FAST), tmp_path / "run", str(tiny_model_dir), tmp_path / "out")
    assert result.steps == 4 and len(result.losses) == 4 and result.rows == 4
    assert result.multi_turn_rows == 1 and result.masked_tokens > 0
    # A fresh adapter equals the reference: the sigmoid loss starts at log 2.
    assert result.loss_before == pytest.approx(math.log(2), abs=1e-3)
    assert result.loss_after < result.loss_before - 0.05
    adapter = Path(result.adapter_path)
    assert lora_b_norm(adapter) > 0  # LoRA B starts at zero: non-zero means it trained
    assert not (adapter / "ref").exists()
    saved = json.loads((tmp_path / "out" / "train_result.json").read_text())
    assert saved["losses"] == result.losses and saved["unchecked_rows"] == 4
    assert saved["dtype"] == auto_precision("cpu")  # "auto": bfloat16 where the CPU has AMX
    assert data.is_file()

    # The next round continues this adapter against a frozen copy of it: the loss starts at
    # log 2 again, and only the continued adapter moves.
    config = TrainConfig(**{**FAST, "max_steps": 2})
    again = train(config, data, str(tiny_model_dir), tmp_path / "next", init_adapter=adapter)
    assert again.loss_before == pytest.approx(math.log(2), abs=1e-3)
    assert again.steps == 2 and not (Path(again.adapter_path) / "ref").exists()
    assert lora_b_norm(Path(again.adapter_path)) != pytest.approx(lora_b_norm(adapter))


@pytest.mark.slow
def test_kto_run_changes_the_adapter_and_lowers_the_loss(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "kto.jsonl", kto_rows())
    config = TrainConfig(loss="kto", **FAST)
    result = train(config, data, str(tiny_model_dir), tmp_path / "out")
    assert result.loss == "kto" and result.steps == 4 and result.rows == 8
    assert result.multi_turn_rows == 1 and result.masked_tokens > 0
    assert result.loss_after < result.loss_before - 0.02
    assert lora_b_norm(Path(result.adapter_path)) > 0
