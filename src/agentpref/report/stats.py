"""The figures a run report shows, computed from the run store and the run folder.

Everything here is plain data (JSON-serialisable), so the HTML page and any other consumer
(a notebook, a CI check) read the same numbers. Missing inputs give empty sections, never
errors: a run that has not trained yet simply has no training or evaluation figures.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from agentpref.records import Message, Pair
from agentpref.store import RunStore

log = logging.getLogger(__name__)

STORE_NAME = "store.sqlite"


def assistant_chars(messages: list[Message]) -> int:
    """Characters the policy wrote in a continuation (assistant turns only)."""
    return sum(len(m.content) for m in messages if m.role == "assistant")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("skipped %s: %s", path, exc)
        return None


def _pair_source(pair: Pair, sources: dict[str, str]) -> str:
    return sources.get(pair.task_id, pair.source)


def collect(run_dir: str | Path) -> dict[str, Any]:
    """All report figures of a run folder as one dict (see the keys below)."""
    run = Path(run_dir)
    data: dict[str, Any] = {
        "run": run.name,
        "counts": {},
        "yield_by_source": {},
        "pairs_by_strategy": {},
        "episode_scores": {},
        "pair_scores": {"chosen": [], "rejected": []},
        "margins": [],
        "margins_by_strategy": {},
        "lengths": {"chosen": [], "rejected": [], "strategy": []},
        "drops_by_filter": {},
        "drops_by_reason": {},
        "judge": {},
        "eval": [],
        "training": [],
        "stats": {},
    }
    store_path = run / STORE_NAME
    if store_path.is_file():
        with RunStore(store_path) as store:
            _from_store(store, data)
    stats_path = run / "stats.json"
    if stats_path.is_file():
        data["stats"] = _read_json(stats_path) or {}
    data["eval"] = _evaluations(run)
    data["training"] = _trainings(run)
    return data


def _from_store(store: RunStore, data: dict[str, Any]) -> None:
    tasks = [t for t in store.tasks() if t.split != "eval" and not t.eval_only]
    sources = {t.id: t.source for t in tasks}
    episodes = store.episodes(kind=None)
    pairs = store.pairs()
    dropped = store.dropped_ids()
    kept = [p for p in pairs if p.id not in dropped]
    data["counts"] = store.counts()

    # Yield: of the tasks sampled, how many gave at least one kept pair; by source.
    kinds = _episode_kinds(store)
    sampled = {e.task_id for e in episodes if kinds.get(e.id) == "policy"}
    with_pair = {p.task_id for p in kept}
    by_source: dict[str, dict[str, Any]] = {}
    for t in tasks:
        s = by_source.setdefault(
            t.source, {"tasks": 0, "sampled": 0, "with_pair": 0, "pairs_made": 0, "pairs_kept": 0}
        )
        s["tasks"] += 1
        s["sampled"] += int(t.id in sampled)
        s["with_pair"] += int(t.id in with_pair)
    for p in pairs:
        s = by_source.setdefault(
            _pair_source(p, sources),
            {"tasks": 0, "sampled": 0, "with_pair": 0, "pairs_made": 0, "pairs_kept": 0},
        )
        s["pairs_made"] += 1
        s["pairs_kept"] += int(p.id not in dropped)
    for s in by_source.values():
        s["yield"] = round(s["with_pair"] / s["sampled"], 4) if s["sampled"] else 0.0
    data["yield_by_source"] = dict(sorted(by_source.items()))

    by_strategy: dict[str, dict[str, int]] = defaultdict(lambda: {"made": 0, "kept": 0})
    for p in pairs:
        by_strategy[p.strategy]["made"] += 1
        by_strategy[p.strategy]["kept"] += int(p.id not in dropped)
    data["pairs_by_strategy"] = dict(sorted(by_strategy.items()))

    # Rewards: every episode score by episode kind (policy / teacher / expert / eval ...).
    scores: dict[str, list[float]] = defaultdict(list)
    for e in episodes:
        scores[kinds.get(e.id, "other")].append(float(e.reward.total))
    data["episode_scores"] = dict(sorted(scores.items()))
    data["pair_scores"] = {
        "chosen": [p.chosen_score for p in kept],
        "rejected": [p.rejected_score for p in kept],
    }
    data["margins"] = [p.margin for p in kept]
    margins_by_strategy: dict[str, list[float]] = defaultdict(list)
    for p in kept:
        margins_by_strategy[p.strategy].append(p.margin)
    data["margins_by_strategy"] = dict(sorted(margins_by_strategy.items()))
    data["lengths"] = {
        "chosen": [assistant_chars(p.chosen) for p in kept],
        "rejected": [assistant_chars(p.rejected) for p in kept],
        "strategy": [p.strategy for p in kept],
    }

    data["drops_by_filter"] = store.drop_counts()
    data["drops_by_reason"] = dict(
        Counter(f"{f}: {reason.split('(')[0].strip()[:60]}" for _, _, f, reason in store.drops())
    )
    data["judge"] = _judge(store.judgements(), {p.id: p for p in pairs}, sources)


def _episode_kinds(store: RunStore) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for kind in store.counts().get("episodes_by_kind", {}):
        for e in store.episodes(kind=kind):
            kinds[e.id] = kind
    return kinds


def _judge(
    judgements: list[Any], pairs: dict[str, Pair], sources: dict[str, str]
) -> dict[str, Any]:
    if not judgements:
        return {}
    verdicts = Counter(j.verdict for j in judgements)
    by_strategy: dict[str, Counter[str]] = defaultdict(Counter)
    by_source: dict[str, Counter[str]] = defaultdict(Counter)
    for j in judgements:
        pair = pairs.get(j.pair_id)
        by_strategy[pair.strategy if pair else "?"][j.verdict] += 1
        by_source[_pair_source(pair, sources) if pair else "?"][j.verdict] += 1
    consistent = verdicts["chosen"] + verdicts["rejected"]
    return {
        "judged": len(judgements),
        "verdicts": {k: verdicts.get(k, 0) for k in ("chosen", "rejected", "inconsistent")},
        "agreement": round(verdicts["chosen"] / consistent, 4) if consistent else None,
        "consistency": round(consistent / len(judgements), 4),
        "by_strategy": {k: dict(v) for k, v in sorted(by_strategy.items())},
        "by_source": {k: dict(v) for k, v in sorted(by_source.items())},
    }


def _evaluations(run: Path) -> list[dict[str, Any]]:
    """RUN/eval/*.json (written by `agentpref evaluate` / iterate), ordered by round and label."""
    out: list[dict[str, Any]] = []
    folder = run / "eval"
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        item = _read_json(path)
        if not isinstance(item, dict) or not isinstance(item.get("metrics"), dict):
            continue
        out.append(
            {
                "file": path.name,
                "label": str(item.get("label") or path.stem),
                "round": int(item.get("round") or 0),
                "adapter": item.get("adapter"),
                "policy": item.get("policy", ""),
                "tasks": item.get("tasks", 0),
                "metrics": item["metrics"],
            }
        )
    out.sort(key=lambda e: (e["round"], e["label"] != "base", e["label"]))
    return out


def _trainings(run: Path) -> list[dict[str, Any]]:
    """Every train_result.json under the run folder (one per round)."""
    out = []
    for path in sorted(run.rglob("train_result.json")):
        item = _read_json(path)
        if not isinstance(item, dict):
            continue
        out.append(
            {
                "folder": str(path.parent.relative_to(run)),
                "round": int(item.get("round") or 0),
                "loss": item.get("loss", ""),
                "rows": item.get("rows", 0),
                "steps": item.get("steps", 0),
                "losses": [float(x) for x in item.get("losses") or []],
                "loss_before": item.get("loss_before"),
                "loss_after": item.get("loss_after"),
                "seconds": item.get("seconds"),
            }
        )
    out.sort(key=lambda t: (t["round"], t["folder"]))
    return out
