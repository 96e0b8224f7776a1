"""Assistant-only loss masks, checked token by token against an independent oracle.

The oracle works on characters: the conversation is rendered to text, every assistant
message's content (plus its end-of-turn marker) is located in that text, and a token belongs
to the assistant exactly when its character span lies inside one of those spans.
"""

from __future__ import annotations

import pytest

from agentpref.train.dpo import TrainConfig, build_trainer, load_tokenizer
from agentpref.train.masks import (
    AssistantMaskCollator,
    assistant_token_mask,
    chat_template_hash,
)

END = "<|im_end|>\n"  # SmolLM2's ChatML end of turn, trained on as in TRL's completions

OPENING = [
    {"role": "user", "content": "You operate a SQL database. Answer with Action: ..."},
    {"role": "assistant", "content": "OK."},
    {"role": "user", "content": "What is the capital of Peru?\nThe table is country."},
]
CHOSEN = [
    {"role": "assistant", "content": "Action: Operation\n```sql\nSELECT capital FROM country\n```"},
    {"role": "user", "content": "[('Lima',)] OBSERVATION-TEXT"},
    {"role": "assistant", "content": 'Action: Answer\nFinal Answer: ["Lima"]'},
]
REJECTED = [{"role": "assistant", "content": 'Action: Answer\nFinal Answer: ["Paris"]'}]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_tokenizer(tiny_model_dir)


def oracle(tokenizer, messages, first):
    """Per-token 0/1 from character spans of the rendered text."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans, pos = [], 0
    for i, m in enumerate(messages):
        at = text.index(m["content"], pos)
        pos = at + len(m["content"])
        if m["role"] == "assistant" and i >= first:
            assert text[pos : pos + len(END)] == END
            spans.append((at, pos + len(END)))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = [int(any(a <= s and e <= b for a, b in spans)) for s, e in enc["offset_mapping"]]
    return enc["input_ids"], labels


def test_mask_matches_character_oracle_token_by_token(tokenizer):
    messages = OPENING + CHOSEN
    ids, mask = assistant_token_mask(tokenizer, messages, first=len(OPENING))
    want_ids, want = oracle(tokenizer, messages, len(OPENING))
    assert ids == want_ids
    for i, (got, exp) in enumerate(zip(mask, want, strict=True)):
        assert got == exp, f"token {i} {tokenizer.decode([ids[i]])!r}: mask {got}, oracle {exp}"
    picked = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    assert picked == CHOSEN[0]["content"] + END + CHOSEN[2]["content"] + END
    assert "OBSERVATION" not in picked and "OK." not in picked  # env text and prompt stay out


def test_collator_masks_observations_in_a_real_trl_batch(tiny_model_dir, tokenizer, tmp_path):
    config = TrainConfig(max_length=512, lora_rank=4, loss_probe=0, batch_size=2)
    single = {
        "prompt": [{"role": "user", "content": "How many singers?"}],
        "chosen": [{"role": "assistant", "content": "SELECT count(*) FROM singer"}],
        "rejected": [{"role": "assistant", "content": "I do not know."}],
    }
    examples = [{"prompt": OPENING, "chosen": CHOSEN, "rejected": REJECTED}, single]
    trainer = build_trainer(config, examples, tiny_model_dir, tokenizer, tmp_path)
    assert isinstance(trainer.data_collator, AssistantMaskCollator)
    rows = [trainer.train_dataset[i] for i in range(2)]
    batch = trainer.data_collator(rows)
    ids, cmask = batch["input_ids"], batch["completion_mask"]
    assert ids.shape[0] == 4  # [chosen x2, rejected x2]

    # Multi-turn chosen: exactly the oracle's assistant tokens after the prompt.
    full = OPENING + CHOSEN
    want_ids, want = oracle(tokenizer, full, len(OPENING))
    n = len(want_ids)
    assert ids[0, :n].tolist() == want_ids
    assert cmask[0, :n].tolist() == want
    assert cmask[0, n:].sum() == 0
    # TRL alone would have trained on the observation: the plain completion is longer.
    plain = len(rows[0]["chosen_ids"])
    assert int(cmask[0].sum()) < plain
    assert rows[0]["chosen_assistant_mask"].count(0) > 0

    # Single-turn rows: the mask is TRL's own (every completion token).
    for r, side in ((1, "chosen"), (3, "rejected")):
        length = len(rows[1]["prompt_ids"]) + len(rows[1][f"{side}_ids"])
        assert cmask[r, : len(rows[1]["prompt_ids"])].sum() == 0
        assert int(cmask[r].sum()) == len(rows[1][f"{side}_ids"])
        assert cmask[r, :length][-1] == 1


def test_truncation_keeps_mask_aligned():
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    example = {
        "prompt_ids": [1, 2, 3],
        "chosen_ids": [4, 5, 6, 7, 8],
        "chosen_assistant_mask": [1, 1, 0, 0, 1],
        "rejected_ids": [9, 10],
        "rejected_assistant_mask": [1, 1],
    }
    for mode, want_chosen in (("keep_start", [0, 0, 0, 1, 1, 0]), ("keep_end", [1, 1, 0, 0, 1])):
        inner = DataCollatorForPreference(
            pad_token_id=0, max_length=6 if mode == "keep_start" else 5, truncation_mode=mode
        )
        out = AssistantMaskCollator(inner, inner.max_length, mode)([example])
        assert out["completion_mask"][0].tolist()[: len(want_chosen)] == want_chosen
        assert out["input_ids"].shape == out["completion_mask"].shape


def test_kto_collator_masks_completion_and_kl():
    from trl.trainer.kto_trainer import DataCollatorForUnpairedPreference

    examples = [
        {
            "prompt_ids": [1, 2],
            "completion_ids": [3, 4, 5],
            "completion_assistant_mask": [1, 0, 1],
            "KL_completion_ids": [6],
            "KL_completion_assistant_mask": [1],
            "label": True,
        },
        {
            "prompt_ids": [7],
            "completion_ids": [6],
            "completion_assistant_mask": [1],
            "KL_completion_ids": [3, 4, 5],
            "KL_completion_assistant_mask": [1, 0, 1],
            "label": False,
        },
    ]
    out = AssistantMaskCollator(DataCollatorForUnpairedPreference(pad_token_id=0), None)(examples)
    assert out["completion_mask"].tolist() == [[0, 0, 1, 0, 1], [0, 1, 0, 0, 0]]
    assert out["KL_completion_mask"].tolist() == [[0, 0, 1, 0], [0, 1, 0, 1]]


def test_template_hash_is_sha256_prefix_of_the_template(tokenizer):
    import hashlib

    want = hashlib.sha256(tokenizer.chat_template.encode()).hexdigest()[:16]
    assert chat_template_hash(tokenizer) == want and len(want) == 16
