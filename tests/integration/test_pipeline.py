"""The whole job through the pipeline on real Spider databases, with scripted policies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentpref.config import recipe_from_dict
from agentpref.pipeline import Run
from agentpref.policies.scripted import ScriptedPolicy
from agentpref.store import RunStore


def gold_lookup(spider_dir: Path) -> dict[str, str]:
    return {r["question"]: r["query"] for r in json.loads((spider_dir / "dev.json").read_text())}


def gold_for(conv, golds: dict[str, str]) -> str:
    last = conv[-1].content
    hits = [q for q in golds if q in last]
    assert hits, "the prompt must carry the question"
    return golds[max(hits, key=len)]


def recipe(spider_dir: Path, count: int = 12, **extra):
    data = {
        "name": "t",
        "tasks": {"sources": [{"name": "spider", "path": str(spider_dir), "split": "dev",
                               "count": count}]},
        "policy": {"backend": "scripted"},
        "sampling": {"k": 3, "max_samples": 6, "episodes_per_batch": 8},
        "export": {"formats": ["dpo", "kto"], "parquet": False},
    }
    data.update(extra)
    return recipe_from_dict(data)


def test_gold_replay_scores_one_everywhere(tmp_path, spider_dir):
    golds = gold_lookup(spider_dir)
    policy = ScriptedPolicy(fn=lambda conv, i: f"```sql\n{gold_for(conv, golds)}\n```")
    with Run(recipe(spider_dir, count=40), tmp_path / "run", policy=policy, progress=False) as r:
        stats = r.run()
        episodes = r.store.episodes()
    assert stats["tasks"] == 40 and len(episodes) == 40 * 6  # all tie -> resampled to the cap
    assert {e.score for e in episodes} == {1.0}
    assert all(e.reward.breakdown["match"] for e in episodes)
    assert stats["pairs_made"] == 0 and stats["yield"] == 0.0


def wrong_or_gold(golds):
    def fn(conv, i):
        if i == 0:
            return f"I think:\n```sql\n{gold_for(conv, golds)}\n```"
        return "```sql\nSELECT no_such_column FROM no_such_table\n```"
    return fn


def test_self_play_pairs_export_and_stats(tmp_path, spider_dir):
    golds = gold_lookup(spider_dir)
    out = tmp_path / "run"
    with Run(recipe(spider_dir), out, policy=ScriptedPolicy(fn=wrong_or_gold(golds)),
             progress=False) as r:
        stats = r.run()
    assert stats["pairs_kept"] == 12 and stats["yield"] == 1.0
    assert stats["pairs_by_strategy"] == {"best-worst": 12}
    rows = [json.loads(x) for x in (out / "export" / "dpo.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    assert all(r["chosen_score"] == 1.0 and r["rejected_score"] == -0.5 for r in rows)
    assert all(r["chosen"][0]["role"] == "assistant" for r in rows)
    assert all(r["prompt"][-1]["role"] == "user" for r in rows)
    kto = (out / "export" / "kto.jsonl").read_text().splitlines()
    assert len(kto) == 24
    saved = json.loads((out / "stats.json").read_text())
    assert saved["pairs_kept"] == 12 and saved["score"]["histogram"] == {"-0.50": 24, "+1.00": 12}
    assert (out / "recipe.yaml").is_file() and (out / "versions.json").is_file()


class Killed(Exception):
    pass


def test_kill_and_resume_finishes_every_task_once(tmp_path, spider_dir):
    golds = gold_lookup(spider_dir)
    out = tmp_path / "run"
    calls = {"n": 0}
    inner = wrong_or_gold(golds)

    def dying(conv, i):
        calls["n"] += 1
        if calls["n"] > 20:
            raise Killed()
        return inner(conv, i)

    rec = recipe(spider_dir, count=15)
    with pytest.raises(Killed):
        with Run(rec, out, policy=ScriptedPolicy(fn=dying), progress=False) as r:
            r.run()
    with RunStore(out / "store.sqlite") as s:
        partial = len(s.episodes())
    assert 0 < partial < 45 and partial % 3 == 0  # whole batches of whole tasks only

    with Run(rec, out, policy=ScriptedPolicy(fn=inner), progress=False) as r:
        stats = r.run()
        eps = r.store.episodes()
    ids = [e.id for e in eps]
    assert len(ids) == len(set(ids)) == 45
    assert sorted({e.sample_index for e in eps}) == [0, 1, 2]
    assert stats["pairs_kept"] == 15

    # A third start adds nothing.
    with Run(rec, out, policy=ScriptedPolicy(fn=inner), progress=False) as r:
        again = r.run()
    assert again["episodes"] == 45 and again["pairs_made"] == 15


def test_changed_recipe_in_same_folder_is_refused(tmp_path, spider_dir):
    from agentpref.errors import ConfigError

    out = tmp_path / "run"
    golds = gold_lookup(spider_dir)
    with Run(recipe(spider_dir, count=3), out, policy=ScriptedPolicy(fn=wrong_or_gold(golds)),
             progress=False) as r:
        r.run()
    with pytest.raises(ConfigError, match="different recipe"):
        Run(recipe(spider_dir, count=4), out, policy=ScriptedPolicy(), progress=False)


def test_ties_resample_until_the_cap_or_a_difference(tmp_path, spider_dir):
    golds = gold_lookup(spider_dir)

    def fn(conv, i):
        fn.calls += 1
        # every reply is wrong until the resampling round, where the first one is right
        if fn.calls > 3 * 4:
            return f"```sql\n{gold_for(conv, golds)}\n```"
        return "```sql\nSELECT 1 FROM nowhere\n```"

    fn.calls = 0
    with Run(recipe(spider_dir, count=4), tmp_path / "run", policy=ScriptedPolicy(fn=fn),
             progress=False) as r:
        stats = r.run()
        counts = r.store.episode_counts(0)
    assert set(counts.values()) == {6}  # 3, all tied, then 3 more (the cap)
    assert stats["pairs_kept"] == 4


def test_pairs_repeated_in_a_later_round_are_dropped_as_duplicates(tmp_path, spider_dir):
    golds = gold_lookup(spider_dir)
    out = tmp_path / "run"
    with Run(recipe(spider_dir, count=5), out, policy=ScriptedPolicy(fn=wrong_or_gold(golds)),
             progress=False) as r:
        r.run_round(0)
        r.run_round(1)
        assert len(r.kept_pairs(0)) == 5 and len(r.kept_pairs(1)) == 0
        assert r.store.drop_counts(round=1) == {"duplicates": 5}
        assert {e.round for e in r.store.episodes()} == {0, 1}
