"""OpenAIPolicy against a real `transformers serve` on the tiny model (started by a fixture).

`transformers serve` ignores `n` (one choice per request) and samples greedily unless the
request carries a generation_config, which the policy sends with server="transformers".
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from agentpref.errors import BackendError
from agentpref.policies.openai import OpenAIPolicy
from agentpref.records import Completion, SamplingParams, messages

pytestmark = pytest.mark.slow

CONVS = [messages(("user", "Name a color.")), messages(("user", "Say hello."))]
SAMPLING = SamplingParams(n=2, temperature=1.0, max_new_tokens=4, seed=5)


def make(server: Any, **options: Any) -> OpenAIPolicy:
    # A busy CPU answers slowly, and a timed-out request keeps the server busy: wait long.
    options.setdefault("timeout_s", 900)
    return OpenAIPolicy(model=server.model, base_url=server.base_url, server="transformers",
                        **options)


def test_batching_and_n_handling(tiny_server: Any) -> None:
    policy = make(tiny_server, concurrency=4)
    out = policy.generate(CONVS, SAMPLING)
    assert [len(g) for g in out] == [2, 2]
    for completion in (c for g in out for c in g):
        assert completion.text and 1 <= completion.tokens <= 4
        assert completion.finish_reason in ("stop", "length")
    # One request asked for n=2 per prompt, got one choice, and the other reply came separately.
    assert policy.requests_sent == 2 + 2
    assert policy._ignores_n[tiny_server.base_url] is True
    sent = policy.requests_sent
    again = policy.generate(CONVS[:1], SAMPLING)
    assert len(again[0]) == 2 and policy.requests_sent - sent == 2


def test_a_refused_request_is_not_retried(tiny_server: Any) -> None:
    policy = OpenAIPolicy(model="not-the-served-model", base_url=tiny_server.base_url,
                          server="transformers", timeout_s=900)
    with pytest.raises(BackendError, match="HTTP 400") as info:
        policy.generate(CONVS[:1], SamplingParams(n=1, max_new_tokens=2))
    assert info.value.retryable is False and policy.requests_sent == 1


def test_retry_after_the_server_is_stopped_and_restarted(tiny_server: Any) -> None:
    tiny_server.stop()
    policy = make(tiny_server, max_retries=10_000, backoff_s=0.2, max_backoff_s=2.0)
    result: list[list[Completion]] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            result.extend(policy.generate(CONVS[:1], SamplingParams(n=1, max_new_tokens=3)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    try:
        while policy.requests_sent < 3:  # it is failing and retrying while the server is down
            time.sleep(0.1)
            assert worker.is_alive() and not errors
    finally:
        tiny_server.start()
    worker.join()
    assert not errors, errors
    assert len(result) == 1 and result[0][0].text
    assert policy.requests_sent >= 4
