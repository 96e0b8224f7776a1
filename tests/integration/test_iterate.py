"""Iterative rounds: bookkeeping, the newest policy samples each round, real training, resume."""

from __future__ import annotations

import json

import pytest

from agentpref.config import recipe_from_dict
from agentpref.iterate import iterate
from agentpref.policies.scripted import ScriptedPolicy
from agentpref.store import RunStore

from .test_pipeline import gold_lookup, wrong_or_gold


@pytest.mark.slow
def test_two_rounds_train_evaluate_and_resume(tmp_path, spider_dir):
    golds = gold_lookup(spider_dir)
    recipe = recipe_from_dict({
        "tasks": {"sources": [{"name": "spider", "path": str(spider_dir), "split": "dev",
                               "count": 16}],
                  "heldout_fraction": 0.2},
        "policy": {"backend": "scripted"},
        "sampling": {"k": 2, "max_samples": 2},
        "rounds": 2,
        "train": {"max_steps": 2, "batch_size": 2, "max_length": 384, "lora_rank": 4,
                  "loss_probe": 0},
        "evaluate": {"max_new_tokens": 32},
        "export": {"parquet": False},
    })
    made = []

    def factory(adapter):
        inner = wrong_or_gold(golds)

        def fn(conv, i):  # the trained policy errs differently, so its pairs are new
            text = inner(conv, i)
            return text.replace("no_such_column", "other_column") if adapter else text

        p = ScriptedPolicy(model="scripted", adapter=adapter, fn=fn)
        made.append(adapter)
        return p

    out = tmp_path / "run"
    summary = iterate(recipe, out, policy_factory=factory, progress=False)
    rounds = summary["rounds"]
    assert [r["round"] for r in rounds] == [0, 1]
    adapter0 = rounds[0]["train"]["adapter"]
    adapter1 = rounds[1]["train"]["adapter"]
    assert adapter0 and adapter1 and adapter0 != adapter1
    # round 1 sampled from base + round-0 adapter
    with RunStore(out / "store.sqlite") as s:
        r1 = s.episodes(round=1)
        assert r1 and all(e.policy == f"scripted+{adapter0}" for e in r1)
        assert {e.round for e in s.episodes()} == {0, 1}
        eval_ids = {t.id for t in s.tasks(split="eval")}
        assert eval_ids and not eval_ids & {e.task_id for e in s.episodes()}
    assert rounds[0]["pairs_kept"] > 0 and rounds[1]["pairs_kept"] > 0
    # rows whose prompt alone passes train.max_length are dropped by TRL, never added
    assert 0 < rounds[1]["train"]["rows"] <= rounds[1]["pairs_kept"]
    labels = sorted(p.stem for p in (out / "eval").glob("*.json"))
    assert labels == ["base", "round_0", "round_1"]
    assert json.loads((out / "eval" / "base.json").read_text())["tasks"] == len(eval_ids)
    # resume: nothing is trained, evaluated or sampled again
    made.clear()
    again = iterate(recipe, out, policy_factory=factory, progress=False)
    assert [r["train"]["adapter"] for r in again["rounds"]] == [adapter0, adapter1]
    assert made == [None, adapter0], made  # policies built, but no new episodes
    with RunStore(out / "store.sqlite") as s:
        assert len(s.episodes()) == len({e.id for e in s.episodes()})


def two_scripted_rounds(spider_dir, count: int):
    """Two rounds of k=2 on `count` Spider dev questions, for a scripted policy factory."""
    return recipe_from_dict({
        "tasks": {"sources": [{"name": "spider", "path": str(spider_dir), "split": "dev",
                               "count": count}]},
        "policy": {"backend": "scripted"},
        "sampling": {"k": 2, "max_samples": 2},
        "rounds": 2,
        "export": {"parquet": False},
    })


def test_the_sampling_model_is_freed_before_training(tmp_path, spider_dir, monkeypatch):
    # Training loads its own copy of the model; keeping the sampling one as well ran the
    # pair-quality benchmark (a 0.5B, float32) out of memory on a 24 GiB machine.
    import agentpref.iterate as iterate_mod

    golds = gold_lookup(spider_dir)
    recipe = two_scripted_rounds(spider_dir, count=6)

    class Closable(ScriptedPolicy):
        closed = False

        def close(self) -> None:
            self.closed = True

    made: list[Closable] = []

    def factory(adapter):
        made.append(Closable(model="scripted", adapter=adapter, fn=wrong_or_gold(golds)))
        return made[-1]

    at_train: list[bool] = []

    def fake_train(run, round, adapter):
        at_train.append(made[-1].closed)
        return {}

    monkeypatch.setattr(iterate_mod, "_train", fake_train)
    iterate(recipe, tmp_path / "run", policy_factory=factory, progress=False, evaluate=False)
    assert at_train == [True, True]


def test_a_served_policy_is_released_not_only_closed_before_training(
    tmp_path, spider_dir, monkeypatch
):
    # An engine policy's close() keeps its server for the next policy; before training iterate
    # calls release(), which stops it (the real server: test_vllm_engine.py).
    import agentpref.iterate as iterate_mod

    golds = gold_lookup(spider_dir)
    recipe = two_scripted_rounds(spider_dir, count=4)

    class Served(ScriptedPolicy):
        state = "serving"

        def close(self) -> None:
            self.state = "closed, server kept"

        def release(self) -> None:
            self.state = "released"

    made: list[Served] = []

    def factory(adapter):
        made.append(Served(model="scripted", adapter=adapter, fn=wrong_or_gold(golds)))
        return made[-1]

    at_train: list[str] = []
    monkeypatch.setattr(
        iterate_mod, "_train", lambda run, round, adapter: at_train.append(made[-1].state) or {}
    )
    iterate(recipe, tmp_path / "run", policy_factory=factory, progress=False, evaluate=False)
    assert at_train == ["released", "released"]
