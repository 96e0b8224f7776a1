"""A recipe is checked before any work, and a fixed recipe resumes what was stored."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agentpref.config import recipe_from_dict
from agentpref.pipeline import Run
from agentpref.policies.scripted import ScriptedPolicy
from agentpref.runfolder import RunLock
from agentpref.store import RunStore

WRONG = "```sql\nSELECT nope FROM nowhere\n```"


def base_recipe(spider_dir: Path, **extra) -> dict:
    data = {
        "tasks": {"sources": [{"name": "spider", "path": str(spider_dir), "split": "dev",
                               "count": 6}]},
        "policy": {"backend": "scripted"},
        "sampling": {"k": 2, "max_samples": 2},
        "strategies": [{"name": "best-worst"}],
        "export": {"parquet": False},
    }
    data.update(extra)
    return data


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentpref", *args], capture_output=True,
                          text=True)


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in proc.stderr
    assert len([ln for ln in lines if ln.startswith("error:")]) == 1, proc.stderr
    return lines[-1]


TYPOS = {
    "strategy name": ({"strategies": [{"name": "best-wrst"}]}, "did you mean 'best-worst'"),
    "strategy option": ({"strategies": [{"name": "best-worst",
                                         "options": {"min_margn": 0.1}}]}, "min_margin"),
    "filter name": ({"filters": [{"name": "margn"}]}, "did you mean 'margin'"),
    "filter option": ({"filters": [{"name": "length", "options": {"min_char": 3}}]},
                      "min_chars"),
    "env key": ({"envs": {"sqll": {"mode": "bird"}}}, "did you mean 'sql'"),
    "env option": ({"envs": {"sql": {"mod": "bird"}}}, "did you mean 'mode'"),
    "source option": (None, "database_dir"),
    "policy option": ({"policy": {"backend": "scripted", "options": {"replys": ["x"]}}},
                      "replies"),
    "train": ({"train": {"lora_rnk": 8}}, "lora_r"),
    "evaluate": ({"evaluate": {"limt": 3}}, "did you mean 'limit'"),
    "export format": ({"export": {"formats": ["dpo", "ktoo"]}}, "did you mean 'kto'"),
}


@pytest.mark.parametrize("kind", sorted(TYPOS))
def test_every_kind_of_typo_fails_in_one_line_before_any_work(tmp_path, spider_dir, kind):
    change, hint = TYPOS[kind]
    data = base_recipe(spider_dir)
    if change is None:  # a source option
        data["tasks"]["sources"][0]["options"] = {"databse_dir": "x"}
    else:
        data.update(change)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    line = error_line(cli("run", str(recipe), "--out", str(out)))
    assert hint in line
    assert not out.exists()  # nothing was created, let alone sampled


class CountingPolicy(ScriptedPolicy):
    """Right on the first reply of a task, wrong on the rest; counts replies asked for."""

    def __init__(self) -> None:
        super().__init__(model="counting", fn=self.reply)
        self.asked = 0

    def reply(self, conv, i):
        self.asked += 1
        return "```sql\nSELECT 1\n```" if i == 0 else WRONG


def test_fix_and_resume_reuses_every_stored_episode(tmp_path, spider_dir):
    out = tmp_path / "run"
    first = CountingPolicy()
    bad = base_recipe(spider_dir, filters=[{"name": "margin", "options": {"min_margin": 5.0}}])
    with Run(recipe_from_dict(bad), out, policy=first, progress=False) as r:
        r.run()
        episodes = {e.id for e in r.store.episodes(kind=None)}
    assert first.asked == 12 and len(episodes) == 12
    # later stages change: another filter, a judge-free export format, a strategy added last
    fixed = base_recipe(spider_dir, filters=[{"name": "margin"}],
                        strategies=[{"name": "best-worst"}, {"name": "gold"}],
                        export={"formats": ["dpo", "kto", "step"], "parquet": False})
    again = CountingPolicy()
    with Run(recipe_from_dict(fixed), out, policy=again, progress=False) as r:
        stats = r.run()
        policy_episodes = {e.id for e in r.store.episodes(kind="policy")}
    assert again.asked == 0 and policy_episodes == episodes
    assert stats["pairs_by_strategy"].get("gold", 0) > 0
    # a change to what decides the stored episodes is refused, naming it
    changed = base_recipe(spider_dir, sampling={"k": 3, "max_samples": 3})
    with pytest.raises(Exception, match="sampling"):
        Run(recipe_from_dict(changed), out, policy=CountingPolicy(), progress=False)


def test_removing_a_filter_restores_the_pairs_it_dropped(tmp_path, spider_dir):
    out = tmp_path / "run"
    strict = base_recipe(spider_dir, filters=[{"name": "margin", "options": {"min_margin": 5.0}}])
    with Run(recipe_from_dict(strict), out, policy=CountingPolicy(), progress=False) as r:
        stats = r.run()
    assert stats["pairs_made"] > 0 and stats["pairs_kept"] == 0
    with Run(recipe_from_dict(base_recipe(spider_dir, filters=[])), out,
             policy=CountingPolicy(), progress=False) as r:
        stats = r.run()
        assert r.store.drops() == []
    assert stats["pairs_kept"] == stats["pairs_made"] > 0
    rows = (out / "export" / "dpo.jsonl").read_text().splitlines()
    assert len(rows) == stats["pairs_kept"]


def test_an_emptied_recipe_yaml_leaves_a_resumable_folder(tmp_path, spider_dir):
    out = tmp_path / "run"
    data = base_recipe(spider_dir)
    with Run(recipe_from_dict(data), out, policy=CountingPolicy(), progress=False) as r:
        r.run()
    (out / "recipe.yaml").write_text("")  # what a kill between open and write used to leave
    again = CountingPolicy()
    with Run(recipe_from_dict(data), out, policy=again, progress=False) as r:
        r.run()
    assert again.asked == 0
    assert yaml.safe_load((out / "recipe.yaml").read_text())["sampling"]["k"] == 2


def test_a_second_process_on_a_locked_folder_exits_in_one_line(tmp_path, spider_dir):
    out = tmp_path / "run"
    out.mkdir()
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(base_recipe(spider_dir)))
    lock = RunLock(out)
    try:
        line = error_line(cli("run", str(recipe), "--out", str(out)))
    finally:
        lock.release()
    assert "in use by process" in line and "--out" in line
    assert not (out / "store.sqlite").exists()


class JudgeDies(ScriptedPolicy):
    """Answers 'A' for two judge batches, then the process is interrupted."""

    def __init__(self) -> None:
        super().__init__(model="judge", fn=lambda conv, i: "[[A]]")
        self.batches = 0

    def generate(self, conversations, sampling, seeds=None):
        self.batches += 1
        if self.batches > 2:
            raise KeyboardInterrupt
        return super().generate(conversations, sampling)


def test_a_kill_during_judging_keeps_every_committed_judgement(tmp_path, spider_dir):
    out = tmp_path / "run"
    data = base_recipe(spider_dir, judge={"enabled": True, "options": {"batch_size": 2}})
    data["tasks"]["sources"][0]["count"] = 8
    judge = JudgeDies()
    with pytest.raises(KeyboardInterrupt):
        with Run(recipe_from_dict(data), out, policy=CountingPolicy(), judge_policy=judge,
                 progress=False) as r:
            r.run()
    with RunStore(out / "store.sqlite") as store:
        assert len(store.judgements()) == 4  # two batches of two pairs, committed
        made = len(store.pairs())
    assert made == 8
    rest = ScriptedPolicy(model="judge", fn=lambda conv, i: "[[A]]")
    with Run(recipe_from_dict(data), out, policy=CountingPolicy(), judge_policy=rest,
             progress=False) as r:
        r.run()
        assert len(r.store.judgements()) == 8
    assert rest.calls == [(4, 1), (4, 1)]  # only the 4 pairs not judged yet, 2 per batch


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "auto"])
def test_resumed_transformers_run_samples_what_an_uninterrupted_one_would(tmp_path,
                                                                         tiny_model_dir, dtype):
    import torch

    from agentpref.policies.transformers import TransformersPolicy

    data = {
        "tasks": {"sources": [{"name": "builtin", "count": 3}]},
        "policy": {"backend": "transformers", "model": str(tiny_model_dir)},
        "sampling": {"k": 3, "max_samples": 3, "max_new_tokens": 12, "temperature": 1.0,
                     "episodes_per_batch": 3},
        "filters": [],
        "export": {"parquet": False},
    }
    real = TransformersPolicy(model=str(tiny_model_dir), dtype=dtype)

    class Kept:
        """The real policy, kept open across runs (a Run closes its policy)."""

        name, calls, limit = real.name, 0, 10**9

        def generate(self, conversations, sampling, seeds=None):
            self.calls += 1
            if self.calls > self.limit:
                raise KeyboardInterrupt
            return real.generate(conversations, sampling, seeds=seeds)

        def template_hash(self):
            return real.template_hash()

        def close(self):
            return None

    policy, dies = Kept(), Kept()
    dies.limit = 1  # interrupted after its first batch

    whole = tmp_path / "whole"
    with Run(recipe_from_dict(data), whole, policy=policy, progress=False) as r:  # type: ignore[arg-type]
        r.build_tasks()
        r.sample()
        expected = {e.id: e.continuation[0].content for e in r.store.episodes()}
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        with Run(recipe_from_dict(data), cut, policy=dies, progress=False) as r:  # type: ignore[arg-type]
            r.build_tasks()
            r.sample()
    with RunStore(cut / "store.sqlite") as store:
        before = {e.id: e.continuation[0].content for e in store.episodes()}
    assert 0 < len(before) < len(expected)
    assert all(expected[i] == text for i, text in before.items())  # the same first batch
    with Run(recipe_from_dict(data), cut, policy=policy, progress=False) as r:  # type: ignore[arg-type]
        r.build_tasks()
        r.sample()
        episodes = r.store.episodes()
    resumed = {e.id: e.continuation[0].content for e in episodes}
    # nothing lost or sampled twice, whatever the precision
    assert resumed.keys() == expected.keys() and len(episodes) == len(expected)
    if real.dtype == torch.float32:
        # the same replies: a reply depends on its seed only. In bfloat16 (auto on a CPU
        # with AMX) the rounding depends on what else shares the batch, so only the records
        # that were sampled before the interruption are certain to be the same.
        assert resumed == expected
    assert len(set(expected.values())) > 1  # sampled, not greedy


def test_stats_json_is_written_after_resume(tmp_path, spider_dir):
    out = tmp_path / "run"
    with Run(recipe_from_dict(base_recipe(spider_dir)), out, policy=CountingPolicy(),
             progress=False) as r:
        r.run()
    saved = json.loads((out / "stats.json").read_text())
    assert saved["tasks"] == 6
