"""Stages and rounds, driven by a recipe: tasks -> sample -> pairs -> judge -> filter -> export.

Every stage reads and writes the run store and skips what is already there, so a killed run
started again resumes where it stopped and adds nothing twice. Only this driver writes the
store; rollouts and verifiers return records.
"""

from __future__ import annotations

import inspect
import json
import logging
import platform
import subprocess
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from agentpref import scratch
from agentpref.config import PolicyConfig, Recipe, dump_recipe
from agentpref.errors import AgentprefError, BackendError, ConfigError, DataError
from agentpref.filters.base import FilterContext
from agentpref.pairs.base import PairContext
from agentpref.policies.base import Policy, make_policy
from agentpref.progress import Progress
from agentpref.records import Completion, Message, Pair, SamplingParams, Task, Trajectory
from agentpref.registry import lookup
from agentpref.runfolder import RunLock, fingerprint_changes, work_fingerprint, write_atomic
from agentpref.store import RunStore

log = logging.getLogger(__name__)

STORE_NAME = "store.sqlite"
SCRATCH_NAME = "tmp"
TRACKED_PACKAGES = [
    "agentpref",
    "torch",
    "transformers",
    "trl",
    "peft",
    "datasets",
    "accelerate",
    "sqlglot",
    "scienceworld",
    "pydantic",
]


class LazyPolicy:
    """Builds the real policy on first use, so a resumed run with nothing left to sample
    never loads a model."""

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config
        self._policy: Policy | None = None

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = make_policy(self.config)
        return self._policy

    @property
    def loaded(self) -> bool:
        return self._policy is not None

    @property
    def name(self) -> str:
        return self.policy.name

    def generate(
        self,
        conversations: list[list[Message]],
        sampling: SamplingParams,
        seeds: list[list[int]] | None = None,
    ) -> list[list[Completion]]:
        from agentpref.rollout import generate

        return generate(self.policy, conversations, sampling, seeds)

    def template_hash(self) -> str:
        return self.policy.template_hash()

    @property
    def reproducible(self) -> bool:
        return bool(getattr(self.policy, "reproducible", True))

    def close(self) -> None:
        """Free the model; the next use loads it again."""
        if self._policy is not None:
            self._policy.close()
            self._policy = None

    def release(self) -> None:
        """Free the model and whatever serves it (a kept-alive engine server), so that what
        comes next (training) has the memory and the GPU; the next use starts
        them again."""
        if self._policy is not None:
            getattr(self._policy, "release", self._policy.close)()
            self._policy = None


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


class Run:
    """One output folder: the resolved recipe, versions, the run store, exports, stats."""

    def __init__(
        self,
        recipe: Recipe,
        out_dir: str | Path,
        policy: Policy | None = None,
        teacher: Policy | None = None,
        judge_policy: Policy | None = None,
        adapter: str | None = None,
        progress: bool = True,
    ) -> None:
        self.recipe = recipe
        self.out = Path(out_dir)
        self.progress = progress
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"--out {str(self.out)!r} is a file; give a folder path")
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create run folder {str(self.out)!r}: {exc.strerror}"
            ) from None
        self._lock = RunLock(self.out)
        try:
            # The folder is ours now: what a killed earlier process left in its scratch goes.
            swept = scratch.sweep(self.out / SCRATCH_NAME)
            if swept:
                log.info("removed %d temporary folders a stopped run left behind", swept)
            scratch.use_root(self.out / SCRATCH_NAME)
            self.store = RunStore(self.out / STORE_NAME)
            self.store.check()
            self._check_folder()
        except BaseException:
            scratch.use_root(None)
            self._lock.release()
            raise
        self.failed: set[str] = set()
        """Episode ids the infrastructure could not play in this process (not retried again)."""
        self._executor: Any = None
        self.notes: dict[str, Any] = {}
        """What the stages want the summary to say (e.g. tasks an env could not branch)."""
        policy_config = recipe.policy
        if adapter is not None:
            policy_config = policy_config.model_copy(update={"adapter": adapter})
        self.policy: Policy = policy if policy is not None else LazyPolicy(policy_config)  # type: ignore[assignment]
        self.teacher: Policy | None = teacher
        if self.teacher is None and recipe.teacher is not None:
            self.teacher = LazyPolicy(recipe.teacher)  # type: ignore[assignment]
        self.judge_policy = judge_policy
        if self.judge_policy is None and recipe.judge.enabled and recipe.judge.policy:
            self.judge_policy = LazyPolicy(recipe.judge.policy)  # type: ignore[assignment]
        self._write_meta()

    # -- folder bookkeeping ------------------------------------------------------------------
    def _check_folder(self) -> None:
        """Refuse a recipe that would make the stored work wrong; later stages may change.

        What determines stored work (tasks, sampling, the policy, env options and each
        strategy's sampling options) is kept in the store; filters, the judge, exports and
        strategies' other options may change freely, and are recomputed.
        """
        new = work_fingerprint(self.recipe)
        old = self.store.meta("fingerprint")
        if old is None:
            old = self._legacy_fingerprint()
        if old is not None:
            changed = fingerprint_changes(old, new)
            if not self.store.counts()["episodes"]:  # only the tasks are stored so far
                changed = [c for c in changed if c in ("seed", "tasks")]
            if changed:
                raise ConfigError(
                    f"run folder {self.out.name!r} was made with a different recipe "
                    f"({', '.join(changed)} differ, which decide the stored episodes); undo "
                    "that change, or use a new --out folder to start afresh"
                )
        self.store.set_meta("fingerprint", new)

    def _legacy_fingerprint(self) -> dict[str, Any] | None:
        """A folder from before fingerprints: its saved recipe.yaml, when it has work."""
        saved = self.out / "recipe.yaml"
        if not saved.is_file() or not self.store.counts()["tasks"]:
            return None
        import yaml

        try:
            old = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
            from agentpref.config import recipe_from_dict

            return work_fingerprint(recipe_from_dict(old, "saved recipe.yaml", check=False))
        except (AgentprefError, yaml.YAMLError, UnicodeDecodeError, ValueError, TypeError):
            raise DataError(
                f"run folder {self.out.name!r} has a damaged recipe.yaml and no record of how "
                "its episodes were made; use a new --out folder"
            ) from None

    @property
    def executor(self) -> Any:
        """Where episodes run (built on first use: a resumed run with nothing to play starts
        no Ray cluster)."""
        if self._executor is None:
            from agentpref.executors import make_executor

            self._executor = make_executor(self.recipe.executor)
            self._write_meta()
        return self._executor

    def _write_meta(self) -> None:
        write_atomic(self.out / "recipe.yaml", dump_recipe(self.recipe))
        versions: dict[str, Any] = {"packages": package_versions(), "git_commit": git_commit()}
        executor = self._executor.describe() if self._executor is not None else None
        versions["executor"] = executor or {"name": self.recipe.executor.name}
        write_atomic(self.out / "versions.json", json.dumps(versions, indent=2) + "\n")

    def close(self) -> None:
        try:
            for p in (self.policy, self.teacher, self.judge_policy):
                if p is not None:
                    p.close()
            self.store.close()
            if self._executor is not None:
                self._executor.close()
        finally:
            scratch.sweep(self.out / SCRATCH_NAME)
            scratch.use_root(None)
            self._lock.release()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- stages ------------------------------------------------------------------------------
    def build_tasks(self) -> dict[str, Any]:
        """Load, mix, split, de-duplicate and screen the recipe's tasks (once per run)."""
        done = self.store.marked("tasks", "built")
        if done:
            return self.store.meta("task_report", {})
        from agentpref.tasks.build import build_tasks

        taskset = build_tasks(self.recipe.tasks, self.recipe.seed)
        if not taskset.train and not taskset.eval:
            skipped: Counter[str] = Counter()
            for info in taskset.report.get("sources", {}).values():
                skipped.update(info.get("skipped") or {})
            why = ", ".join(f"{k} x{v}" for k, v in sorted(skipped.items())) or "nothing loaded"
            raise ConfigError(
                f"the recipe's task sources gave no tasks (skipped: {why}); "
                "check tasks.sources paths and splits"
            )
        eval_tasks = [t.model_copy(update={"split": "eval"}) for t in taskset.eval]
        self.store.add_tasks(list(taskset.train) + eval_tasks)
        report = dict(taskset.report)
        self.store.set_meta("task_report", report)
        (self.out / "tasks_report.json").write_text(json.dumps(report, indent=2, default=str))
        self.store.mark("tasks", "built", {"train": len(taskset.train), "eval": len(eval_tasks)})
        return report

    def train_tasks(self) -> list[Task]:
        return [t for t in self.store.tasks(split="train") if not t.eval_only]

    def min_margin(self) -> float:
        for spec in self.recipe.strategies:
            if spec.name == "best-worst":
                return float(lookup("strategy", spec.name).validate(spec.options).min_margin)
        return 0.1

    def sampling_params(self, round: int) -> SamplingParams:
        s = self.recipe.sampling
        return SamplingParams(
            n=1,
            temperature=s.temperature,
            top_p=s.top_p,
            max_new_tokens=s.max_new_tokens,
            seed=self.recipe.seed * 1_000_003 + s.seed + round * 7_777,
        )

    def sample(self, round: int = 0) -> int:
        """Play K episodes per train task; where all K tie, K more, up to max_samples."""
        from agentpref.pairs.best_worst import all_tied
        from agentpref.report.stats import is_ready_made
        from agentpref.rollout import Job, episode_id

        # Ready-made pairs (the `preferences` source) are never played.
        tasks = [t for t in self.train_tasks() if not is_ready_made(t)]
        k = self.recipe.sampling.k
        cap = max(self.recipe.sampling.max_samples, k)
        margin = self.min_margin()
        played = 0
        while True:
            by_task: dict[str, list[Trajectory]] = defaultdict(list)
            for e in self.store.episodes(round=round, kind="policy"):
                by_task[e.task_id].append(e)
            jobs: list[Job] = []
            for t in tasks:
                have = by_task.get(t.id, [])
                indices = {e.sample_index for e in have}
                if len(have) < k:
                    target = k
                elif all_tied(have, margin) and len(have) < cap:
                    target = min(len(have) + k, cap)
                else:
                    continue
                jobs.extend(
                    Job(t, i)
                    for i in range(target)
                    if i not in indices and episode_id(t.id, round, i) not in self.failed
                )
            if not jobs:
                break
            stage = "sample" if played == 0 else "resample (ties)"
            self.play(self.policy, jobs, round, tag="s", kind="policy", stage=stage)
            played += len(jobs)
        return played

    def play(
        self, policy: Policy, jobs: Sequence[Any], round: int, tag: str, kind: str, stage: str
    ) -> list[Trajectory]:
        """Play jobs, committing each batch; episodes the infrastructure could not play are
        recorded as not done (retried on the next run), and too many of them stop the run."""
        from agentpref.rollout import Failure, play

        bar = Progress(stage, len(jobs), "episodes", enabled=self.progress)
        failed: list[Failure] = []

        def commit(batch: list[Trajectory]) -> None:
            self.store.add_episodes(batch, kind=kind)
            self.store.clear_failures(e.id for e in batch)
            bar.update(len(batch))

        def on_failed(batch: list[Failure]) -> None:
            failed.extend(batch)
            rows = []
            for f in batch:
                self.failed.add(f.episode_id)
                rows.append((f.episode_id, f.job.task.id, round, kind, f.reason, f.attempts))
            self.store.set_failures(rows)
            bar.update(len(batch), failed=len(batch))
            self._check_failures(stage, failed, bar.done)

        return play(
            policy,
            jobs,
            self.sampling_params(round),
            self.recipe.envs,
            round=round,
            tag=tag,
            batch_size=self.recipe.sampling.episodes_per_batch,
            on_done=commit,
            on_failed=on_failed,
            retries=self.recipe.sampling.retries,
            executor=self.executor,
        )

    def _check_failures(self, stage: str, failed: Sequence[Any], attempted: int) -> None:
        share = self.recipe.sampling.max_failed_share
        if len(failed) > max(2, share * attempted):
            last = failed[-1].reason
            raise BackendError(
                f"{stage}: {len(failed)} of {attempted} episodes could not be played by the "
                f"environment (last: {last[:160]}); nothing of them was stored as data: fix "
                "the cause and run the same command again to resume"
            )

    def episodes_by_task(self, round: int) -> dict[str, list[Trajectory]]:
        by_task: dict[str, list[Trajectory]] = defaultdict(list)
        for e in self.store.episodes(round=round, kind="policy"):
            by_task[e.task_id].append(e)
        return dict(by_task)

    def make_pairs(self, round: int = 0) -> dict[str, int]:
        """Run the recipe's strategies in order; later ones see which tasks already paired.

        The round's pairs are replaced by what the strategies make now, so a changed option
        or a removed strategy leaves no stale pair behind (unchanged pairs keep their ids and
        judgements).
        """
        tasks = self.train_tasks()
        episodes = self.episodes_by_task(round)
        ctx = PairContext(
            round=round,
            sampling=self.sampling_params(round),
            env_options=self.recipe.envs,
            policy=self.policy,
            teacher=self.teacher,
            store=self.store,
            seed=self.recipe.seed,
            retries=self.recipe.sampling.retries,
            batch_size=self.recipe.sampling.episodes_per_batch,
            executor=self.executor,
        )
        made: dict[str, int] = {}
        everything: list[Pair] = []
        for spec in self.recipe.strategies:
            strategy = lookup("strategy", spec.name)(**spec.options)
            before = len(ctx.failures)
            pairs = strategy.make_pairs(tasks, episodes, ctx)
            everything.extend(pairs)
            ctx.paired.update(p.task_id for p in pairs)
            made[spec.name] = made.get(spec.name, 0) + len(pairs)
            new_failures = ctx.failures[before:]
            if new_failures:
                self.store.set_failures(
                    (f.episode_id, f.job.task.id, round, spec.name, f.reason, f.attempts)
                    for f in new_failures
                )
        self.store.replace_pairs(round, everything)
        self.notes = ctx.notes
        return made

    def judge(self, round: int = 0) -> int:
        """Ask the judge about every pair of the round it has not seen yet; each batch of
        judgements is committed as it finishes."""
        if not self.recipe.judge.enabled:
            return 0
        if self.judge_policy is None:
            raise ConfigError("judge.enabled is true but judge.policy is not set; name a model")
        from agentpref.judges.pairwise import PairwiseJudge

        judge = PairwiseJudge(self.judge_policy, **self.recipe.judge.options)
        seen = {j.pair_id for j in self.store.judgements()}
        todo = [p for p in self.store.pairs(round=round) if p.id not in seen]
        if not todo:
            return 0
        tasks = {t.id: t for t in self.store.tasks()}
        bar = Progress("judge", len(todo), "pairs", enabled=self.progress)
        added = 0

        def commit(batch: list[Any]) -> None:
            nonlocal added
            added += self.store.add_judgements(batch)
            bar.update(len(batch))

        judge.judge(todo, tasks, on_batch=commit)
        return added

    def build_filters(self) -> list[Any]:
        filters = [lookup("filter", f.name)(**f.options) for f in self.recipe.filters]
        if self.recipe.judge.enabled and self.recipe.judge.drop_rejected:
            if not any(getattr(f, "name", "") == "judge" for f in filters):
                filters.append(lookup("filter", "judge")())
        return filters

    def filter(self, round: int = 0) -> dict[str, int]:
        """Apply the filters in order; the first that objects drops the pair, with its reason.

        Recomputed from scratch each time (it is cheap and deterministic) and the round's
        drops replaced, so a changed or removed filter leaves no stale drop behind.
        Duplicates are checked against kept pairs of earlier rounds.
        """
        filters = self.build_filters()
        dropped_before = self.store.dropped_ids()
        for f in filters:
            remember = getattr(f, "remember", None)
            if remember is None:
                continue
            for r in range(round):
                for p in self.store.pairs(round=r):
                    if p.id not in dropped_before:
                        remember(p)
        ctx = FilterContext(
            tasks={t.id: t for t in self.store.tasks()},
            judgements={j.pair_id: j for j in self.store.judgements()},
        )
        drops = []
        for pair in self.store.pairs(round=round):
            for f in filters:
                reason = f.check(pair, ctx)
                if reason:
                    drops.append((pair.id, round, f.name, reason))
                    break
        self.store.replace_drops(round, drops)
        return dict(Counter(d[2] for d in drops))

    def kept_pairs(self, round: int | None = None) -> list[Pair]:
        dropped = self.store.dropped_ids()
        return [p for p in self.store.pairs(round=round) if p.id not in dropped]

    def export(self, round: int | None = None) -> dict[str, list[str]]:
        """Write the kept pairs, mixed as the recipe's `mix` asks, in every recipe format;
        `round` writes that round's own folder. The mix report (asked vs got per cell) goes
        to the folder's `mix.json` and, for the run's own export, into the statistics."""
        from agentpref.export.mix import apply_mix
        from agentpref.report.stats import MIX_KEY

        folder = self.out / "export" if round is None else self.out / "export" / f"round_{round}"
        pairs, report = apply_mix(self.kept_pairs(round), self.recipe.mix, self.recipe.seed)
        written: dict[str, list[str]] = {}
        for fmt in self.recipe.export.formats:
            exporter: Callable[..., list[Path]] = lookup("exporter", fmt)
            extra: dict[str, Any] = {}
            if "store" in inspect.signature(exporter).parameters:
                # An exporter of unpaired rows (kto-outcomes) reads the episodes itself.
                extra = {"store": self.store, "round": round}
            paths = exporter(pairs, folder, parquet=self.recipe.export.parquet, **extra)
            written[fmt] = [str(p) for p in paths]
        mix_file = folder / "mix.json"
        if report:
            folder.mkdir(parents=True, exist_ok=True)
            write_atomic(mix_file, json.dumps(report, indent=2) + "\n")
        else:
            mix_file.unlink(missing_ok=True)
        if round is None:
            self.store.set_meta(MIX_KEY, report)
        return written

    def stats(self) -> dict[str, Any]:
        """The run's statistics from the one engine (agentpref.report.stats), written to
        stats.json; the summary notes of this process's stages are kept in the store."""
        from agentpref.report.stats import summarise

        if self.notes:
            self._save_notes()
        stats = summarise(self.store, [s.name for s in self.recipe.strategies])
        write_atomic(self.out / "stats.json", json.dumps(stats, indent=2) + "\n")
        return stats

    def _save_notes(self, round: int | None = None) -> None:
        """Keep the pairing stage's notes per round, replacing that round's older ones (so a
        note about a strategy the recipe no longer has goes away when the round pairs again)."""
        from agentpref.report.stats import NOTES_KEY

        if round is not None:
            self._notes_round = round
        by_round = dict(self.store.meta(NOTES_KEY, {}) or {})
        by_round[str(getattr(self, "_notes_round", 0))] = dict(self.notes)
        self.store.set_meta(NOTES_KEY, by_round)

    def timed(self, stage: str, round: int | None = None, unit: str = "") -> Any:
        """A context that adds the wall time of one stage call to the run's timings."""
        from agentpref.timing import StageClock

        return StageClock(self.store).stage(stage, round, unit)

    def run_round(self, round: int = 0) -> dict[str, Any]:
        with self.timed("tasks"):
            self.build_tasks()
        with self.timed("sample", round, "episodes") as t:
            t.items = self.sample(round)
        with self.timed("pairs", round, "pairs") as t:
            made = self.make_pairs(round)
            t.items = sum(made.values())
        self._save_notes(round)
        with self.timed("judge", round, "pairs") as t:
            t.items = self.judge(round)
        with self.timed("filter", round):
            self.filter(round)
        with self.timed("export"):
            exports = self.export()
            if self.recipe.rounds > 1:
                self.export(round)
        self.store.mark("round", str(round), {"pairs_made": made})
        return {"pairs_made": made, "exports": exports}

    def run(self) -> dict[str, Any]:
        """All stages of round 0 (rounds with training in between are `agentpref iterate`)."""
        result = self.run_round(0)
        stats = self.stats()
        stats["exports"] = result["exports"]
        return stats

