"""TransformersPolicy on the real tiny model (slow) and its batching arithmetic (fast)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from agentpref.errors import ConfigError
from agentpref.policies.base import Policy
from agentpref.policies.transformers import TransformersPolicy
from agentpref.records import SamplingParams, messages

CONVS = [
    messages(("user", "Write a SQL query that counts the rows of table singer.")),
    messages(("system", "Answer briefly."), ("user", "Name a color.")),
    messages(("user", "Hi")),
]


def test_chunks_respect_batch_size_and_token_budget() -> None:
    prompts = [[0] * 10, [0] * 30, [0] * 20]
    rows = sorted(((i, j) for i in range(3) for j in range(4)), key=lambda r: len(prompts[r[0]]))
    fake = SimpleNamespace(batch_size=5, token_budget=200)
    chunks = TransformersPolicy._chunks(fake, rows, prompts, 10)  # type: ignore[arg-type]
    assert [r for c in chunks for r in c] == rows
    for chunk in chunks:
        width = max(len(prompts[i]) for i, _ in chunk) + 10
        assert len(chunk) <= 5 and len(chunk) * width <= 200
    # A single row larger than the budget still gets its own chunk.
    huge = TransformersPolicy._chunks(  # type: ignore[arg-type]
        SimpleNamespace(batch_size=8, token_budget=5), rows[:2], prompts, 10
    )
    assert huge == [[rows[0]], [rows[1]]]


def _nucleus(logits, top_p: float) -> list[set[int]]:
    """The tokens full-vocabulary nucleus sampling may draw: sorted, the first past p kept."""
    import torch

    ordered, order = torch.sort(logits.softmax(dim=-1), descending=True, dim=-1)
    keep = ordered.cumsum(dim=-1) - ordered <= top_p
    return [set(order[r][keep[r]].tolist()) for r in range(logits.shape[0])]


def test_row_sampler_draws_only_from_the_full_nucleus() -> None:
    import torch

    from agentpref.policies.transformers import _RowSampler

    torch.manual_seed(0)
    # Peaked rows (nucleus inside the candidates) and flat ones (it reaches past them).
    logits = torch.randn(4, 3000) * torch.tensor([[0.3], [2.0], [6.0], [12.0]])
    sampler = _RowSampler([1, 2, 3, 4], temperature=1.0, top_p=0.9, top_k=0, device="cpu")
    sampler.candidates = 32
    allowed = _nucleus(logits, 0.9)
    drawn: list[set[int]] = [set() for _ in range(4)]
    for _ in range(200):
        out = sampler(None, logits)
        assert ((out == 0).sum(dim=-1) == 1).all() and torch.isinf(out).sum() == 4 * 2999
        for r in range(4):
            drawn[r] |= set((out[r] == 0).nonzero().flatten().tolist())
    for r in range(4):
        assert drawn[r] <= allowed[r]
    assert len(drawn[0]) > 32  # the flat row drew beyond the 32 candidates (its full sort)
    assert len(allowed[3]) < 32 and len(drawn[3]) >= 1


def test_row_sampler_rows_do_not_depend_on_their_batch() -> None:
    import torch

    from agentpref.policies.transformers import _RowSampler

    torch.manual_seed(1)
    logits = torch.randn(3, 500) * 3
    together = _RowSampler([7, 8, 9], 0.8, 0.95, 0, "cpu")
    alone = _RowSampler([8], 0.8, 0.95, 0, "cpu")
    for _ in range(20):
        a = together(None, logits)[1]
        b = alone(None, logits[1:2])[0]
        assert torch.equal(a, b)


def test_row_sampler_top_k_renormalises_before_top_p() -> None:
    import torch

    from agentpref.policies.transformers import _RowSampler

    # Probabilities 0.4, 0.3, 0.2, 0.1: top-k 2 leaves 4/7 and 3/7, and top-p 0.5 then
    # keeps only the first; over the whole vocabulary top-p 0.5 would keep two.
    logits = torch.tensor([[0.4, 0.3, 0.2, 0.1]]).log()
    both = _RowSampler([0], 1.0, 0.5, 2, "cpu")
    assert {int(both(None, logits)[0].argmax()) for _ in range(50)} == {0}
    only_p = _RowSampler([0], 1.0, 0.5, 0, "cpu")
    assert {int(only_p(None, logits)[0].argmax()) for _ in range(200)} == {0, 1}
    only_k = _RowSampler([0], 1.0, 1.0, 3, "cpu")
    assert {int(only_k(None, logits)[0].argmax()) for _ in range(300)} == {0, 1, 2}


def test_bad_arguments_fail_before_loading(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        TransformersPolicy(model=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="LoRA adapter .* does not exist"):
        TransformersPolicy(model="default", adapter=str(tmp_path / "no-adapter"))
    with pytest.raises(ConfigError, match="unknown transformers policy option"):
        TransformersPolicy(model="default", batchsize=4)
    with pytest.raises(ConfigError, match="dtype"):
        TransformersPolicy(model="default", dtype="int3")


@pytest.fixture(scope="module")
def policy(tiny_model_dir: Path) -> TransformersPolicy:
    # float32: a reply depends on its seed only. In bfloat16 (what "auto" picks on a CPU with
    # AMX) the rounding depends on what else shares the batch, as on any GPU engine.
    return TransformersPolicy(model="default", device="cpu", dtype="float32")


@pytest.mark.slow
def test_shapes_finish_reasons_and_seeded_determinism(policy: TransformersPolicy) -> None:
    assert isinstance(policy, Policy)
    assert policy.name == "SmolLM2-135M-Instruct"
    assert re.fullmatch(r"[0-9a-f]{16}", policy.template_hash())
    sampling = SamplingParams(n=2, temperature=1.0, max_new_tokens=6, seed=11)
    out = policy.generate(CONVS, sampling)
    assert [len(g) for g in out] == [2, 2, 2]
    for completion in (c for g in out for c in g):
        assert 1 <= completion.tokens <= 6
        assert completion.finish_reason in ("stop", "length")
        if completion.finish_reason == "length":
            assert completion.tokens == 6
        assert "<|im_end|>" not in completion.text
    assert policy.generate(CONVS, sampling) == out
    policy.share_prefix = False  # each row runs its own prompt: same draws, same replies
    try:
        assert policy.generate(CONVS, sampling) == out
    finally:
        policy.share_prefix = True
    other = policy.generate(CONVS, sampling.model_copy(update={"seed": 12}))
    assert other != out
    greedy = policy.generate(CONVS[:1], SamplingParams(n=3, temperature=0.0, max_new_tokens=6))
    assert len({c.text for c in greedy[0]}) == 1 and greedy[0][0].text
    assert policy.generate([], sampling) == []


def test_a_reply_depends_on_its_seed_not_on_the_rest_of_the_batch(
    policy: TransformersPolicy,
) -> None:
    sampling = SamplingParams(n=2, temperature=1.0, max_new_tokens=8)
    seeds = [[101, 102], [201, 202], [301, 302]]
    together = policy.generate(CONVS, sampling, seeds=seeds)
    # the second conversation alone, and its second reply alone, give the same text
    alone = policy.generate(CONVS[1:2], sampling, seeds=[[201, 202]])
    assert [c.text for c in alone[0]] == [c.text for c in together[1]]
    single = policy.generate(CONVS[1:2], sampling.model_copy(update={"n": 1}), seeds=[[202]])
    assert single[0][0].text == together[1][1].text
    reseeded = policy.generate(CONVS[1:2], sampling, seeds=[[999, 998]])
    assert [c.text for c in reseeded[0]] != [c.text for c in together[1]]


@pytest.mark.slow
def test_auto_precision_samples_repeatably(tiny_model_dir: Path) -> None:
    import torch

    from agentpref.precision import auto_precision

    fast = TransformersPolicy(model="default", device="cpu")
    assert fast.dtype == getattr(torch, auto_precision("cpu"))
    assert next(fast.model.parameters()).dtype == fast.dtype
    sampling = SamplingParams(n=2, temperature=1.0, max_new_tokens=6, seed=11)
    out = fast.generate(CONVS, sampling)
    assert fast.generate(CONVS, sampling) == out  # the same call, the same replies
    assert fast.generate(CONVS, sampling.model_copy(update={"seed": 12})) != out
    fast.close()


@pytest.mark.slow
def test_lora_adapter_is_loaded_and_changes_replies(
    policy: TransformersPolicy, tiny_model_dir: Path, tmp_path: Path
) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    config = LoraConfig(
        r=4,
        lora_alpha=64,
        target_modules=["q_proj", "v_proj"],
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    get_peft_model(base, config).save_pretrained(tmp_path / "adapter")

    adapted = TransformersPolicy(
        model="default", adapter=str(tmp_path / "adapter"), device="cpu", dtype="float32"
    )
    assert adapted.name == f"SmolLM2-135M-Instruct+{tmp_path / 'adapter'}"
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=5)
    mine = adapted.generate(CONVS[:1], greedy)[0][0]
    theirs = policy.generate(CONVS[:1], greedy)[0][0]
    assert mine.text != theirs.text
    adapted.close()
