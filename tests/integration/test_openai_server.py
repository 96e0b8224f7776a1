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


def test_judge_through_the_real_server_asks_both_orders(tiny_server: Any) -> None:
    """The pairwise judge on a real model: two requests per pair, in swapped order; the
    verdict is 'chosen' or 'rejected' only when both orders agree, and the agreement
    arithmetic matches the verdicts."""
    from agentpref.judges.base import agreement
    from agentpref.judges.pairwise import PairwiseJudge
    from agentpref.records import Pair

    def pair(i: int) -> Pair:
        return Pair(
            id=f"p{i}", task_id=f"t{i}", source="builtin" if i % 2 else "spider",
            strategy="best-worst",
            prompt=messages(("user", f"How many singers are there? (table singer, run {i})")),
            chosen=messages(("assistant", "```sql\nSELECT count(*) FROM singer\n```")),
            rejected=messages(("assistant", "```sql\nSELECT name FROM nowhere\n```")),
            chosen_score=1.0, rejected_score=-0.5, meta={"env": "sql"},
        )

    pairs = [pair(i) for i in range(3)]
    policy = make(tiny_server, concurrency=4)
    judge = PairwiseJudge(policy, max_new_tokens=8, temperature=0.0)
    judgements = judge.judge(pairs, {})
    assert policy.requests_sent == 2 * len(pairs)
    assert [j.pair_id for j in judgements] == ["p0", "p1", "p2"]
    for j in judgements:
        assert len(j.raw) == 2 and all(isinstance(r, str) for r in j.raw)
        consistent = {("A", "B"): "chosen", ("B", "A"): "rejected"}
        assert j.verdict == consistent.get((j.first, j.second), "inconsistent")
    stats = agreement(judgements, pairs)
    n_consistent = sum(j.verdict != "inconsistent" for j in judgements)
    assert stats["consistency"] == pytest.approx(n_consistent / 3, abs=1e-4)
    if n_consistent:
        agree = sum(j.verdict == "chosen" for j in judgements)
        assert stats["agreement"] == pytest.approx(agree / n_consistent, abs=1e-4)
