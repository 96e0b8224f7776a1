"""The vllm backend on the real engine (installed by `agentpref engine install vllm`) with the
tiny model: n honoured, seeded replies reproducible, the unseeded path, LoRA adapters served
by the same server. Skipped, with the reason, when the engine is not installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentpref.policies import engine
from agentpref.policies.vllm import VLLMPolicy, installed
from agentpref.records import SamplingParams, messages

pytestmark = [
    pytest.mark.engine,
    pytest.mark.slow,
    pytest.mark.skipif(
        not installed(), reason="the vLLM engine is not installed (agentpref engine install vllm)"
    ),
]

# float32: seeded replies independent of the batch (and greedy replies as transformers')
OPTIONS: dict[str, Any] = {
    "kv_cache_gb": 1, "max_model_len": 1024, "max_lora_rank": 8, "dtype": "float32",
}
PROMPTS = [
    messages(("user", "Name a color.")),
    messages(("user", "Write one SQL query that counts the rows of table singer.")),
    messages(("user", "Say hello to a friend.")),
]


@pytest.fixture(scope="module")
def base(tiny_model_dir: Path) -> Iterator[VLLMPolicy]:
    policy = VLLMPolicy(model=str(tiny_model_dir), **OPTIONS)
    try:
        yield policy
    finally:
        policy.close()
        engine.stop_all()


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random (not zero-initialised) rank-8 LoRA adapter on the tiny model, made with peft."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                        init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.mul_(8.0)  # large enough to change greedy replies
    out = tmp_path_factory.mktemp("lora") / "adapter"
    peft_model.save_pretrained(str(out))
    return out


def test_n_is_honoured_in_one_request_per_prompt(base: VLLMPolicy) -> None:
    sent = base._client.requests_sent
    out = base.generate(PROMPTS, SamplingParams(n=4, temperature=1.0, max_new_tokens=12, seed=3))
    assert [len(g) for g in out] == [4, 4, 4]
    assert base._client.requests_sent - sent == 3
    for completion in (c for g in out for c in g):
        assert 1 <= completion.tokens <= 12 and completion.finish_reason in ("stop", "length")
        assert completion.finish_reason == "stop" or completion.tokens == 12
    assert len({c.text for c in out[0]}) > 1, "four samples at temperature 1 all alike"


def test_seeded_replies_are_reproducible_alone_and_in_a_batch(base: VLLMPolicy) -> None:
    sampling = SamplingParams(n=3, temperature=1.0, max_new_tokens=16)
    seeds = [[101, 102, 103], [201, 202, 203], [301, 302, 303]]
    batch = base.generate(PROMPTS, sampling, seeds=seeds)
    alone = base.generate(PROMPTS[1:2], sampling, seeds=seeds[1:2])
    again = base.generate(PROMPTS, sampling, seeds=seeds)
    assert [c.text for c in alone[0]] == [c.text for c in batch[1]]
    assert [[c.text for c in g] for g in again] == [[c.text for c in g] for g in batch]
    other = base.generate(PROMPTS[1:2], sampling, seeds=[[901, 902, 903]])
    assert [c.text for c in other[0]] != [c.text for c in alone[0]]
    assert base.reproducible


def test_greedy_replies_are_the_transformers_backends(
    base: VLLMPolicy, tiny_model_dir: Path
) -> None:
    """Same weights, same template: the engine's greedy reply starts as transformers' does."""
    from agentpref.policies.transformers import TransformersPolicy

    sampling = SamplingParams(n=1, temperature=0.0, max_new_tokens=8)
    ours = base.generate(PROMPTS[:1], sampling)[0][0].text
    reference = TransformersPolicy(model=str(tiny_model_dir), device="cpu", dtype="float32")
    try:
        theirs = reference.generate(PROMPTS[:1], sampling)[0][0].text
        assert base.template_hash() == reference.template_hash()
    finally:
        reference.close()
    assert ours.split()[:3] == theirs.split()[:3]


def test_a_lora_adapter_changes_replies_on_the_same_server(
    base: VLLMPolicy, adapter_dir: Path, tiny_model_dir: Path
) -> None:
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=12)
    before = base.generate(PROMPTS, greedy)
    pids = base.server.pids()
    tuned = VLLMPolicy(model=str(tiny_model_dir), adapter=str(adapter_dir), **OPTIONS)
    try:
        assert tuned.server is base.server and tuned.server.pids() == pids, "restarted"
        assert tuned.name.endswith(f"+{adapter_dir}")
        after = tuned.generate(PROMPTS, greedy)
        assert [g[0].text for g in after] != [g[0].text for g in before]
        # the base model is still served as it was, next to the adapter
        assert [g[0].text for g in base.generate(PROMPTS, greedy)] == [
            g[0].text for g in before
        ]
    finally:
        tuned.close()
    # a second policy on the same adapter reuses the loaded one
    again = VLLMPolicy(model=str(tiny_model_dir), adapter=str(adapter_dir), **OPTIONS)
    try:
        assert [g[0].text for g in again.generate(PROMPTS, greedy)] == [
            g[0].text for g in after
        ]
    finally:
        again.close()


def test_unseeded_engine_keeps_n_batching(tiny_model_dir: Path) -> None:
    """send_seed=False: chunked prefill on, no seed sent, n in one request, not reproducible."""
    policy = VLLMPolicy(model=str(tiny_model_dir), send_seed=False, lora=False,
                        keep_alive=False, **OPTIONS)
    try:
        assert "--enable-chunked-prefill" in policy.server.command
        out = policy.generate(PROMPTS, SamplingParams(n=4, temperature=1.0, max_new_tokens=8),
                              seeds=[[1, 2, 3, 4]] * 3)
        assert [len(g) for g in out] == [4, 4, 4]
        assert policy._client.requests_sent == 3
        assert policy.reproducible is False
        server = policy.server
    finally:
        policy.close()
    assert not server.alive(), "keep_alive=False stops the server at close()"


def test_release_stops_a_kept_alive_server_before_training(tiny_model_dir: Path) -> None:
    """iterate releases the sampling policy before training: close() keeps a shared server
    for the next policy, release() stops it (an idle vLLM CPU server holds 6.6 GB resident
    for the 0.5B; on a GPU it holds most of the device's memory)."""
    from agentpref.config import PolicyConfig
    from agentpref.pipeline import LazyPolicy

    config = PolicyConfig(backend="vllm", model=str(tiny_model_dir),
                          options={**OPTIONS, "lora": False, "send_seed": False})
    kept = LazyPolicy(config)
    kept.generate(PROMPTS[:1], SamplingParams(n=1, temperature=0.0, max_new_tokens=4))
    server = kept.policy.server
    kept.close()
    assert server.alive(), "close() keeps the server for the next policy (keep_alive)"

    lazy = LazyPolicy(config)  # the same settings: the same server, no new start
    out = lazy.generate(PROMPTS[:1], SamplingParams(n=1, temperature=0.0, max_new_tokens=4))
    assert lazy.policy.server is server and len(out[0]) == 1
    lazy.release()
    assert not server.alive(), "release() stops the server whatever keep_alive says"
    assert not lazy.loaded  # the next use starts it again
