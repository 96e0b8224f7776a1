"""The hybrid recipe (examples/hybrid.yaml) with scripted models: the accounting adds up."""

import json

from strategy_helpers import ROOT, SPIDER, fenced, question_of

from agentpref.config import load_recipe
from agentpref.pipeline import Run
from agentpref.policies.scripted import ScriptedPolicy
from agentpref.records import stable_hash

GOLD = {r["question"].strip(): r["query"] for r in json.loads((SPIDER / "dev.json").read_text())}
MARK = "-- checked"


def category(question: str) -> int:
    """0: self-play splits (one right, one wrong); 1: all wrong; 2: all right."""
    return int(stable_hash(question), 16) % 3


def teacher_right(question: str) -> bool:
    return int(stable_hash(question, "teacher"), 16) % 2 == 0


def student(conv, i):
    q = question_of(conv)
    cat = category(q)
    if cat == 2 or (cat == 0 and i == 0):
        return fenced(GOLD[q])
    if cat == 0:
        return fenced(f"SELECT * FROM nowhere {MARK}")  # the judge will prefer this one
    return fenced(f"SELECT * FROM nowhere{i}")  # both fail alike: a tie, no self-play pair


def teacher(conv, i):
    q = question_of(conv)
    return fenced(f"{GOLD[q]} {MARK}" if teacher_right(q) else "SELECT 2")


def judge(conv, i):
    """Prefers the marked reply; no opinion (always "A") when neither or both are marked."""
    text = conv[-1].content
    a = text.split("[Reply A]", 1)[1].split("[Reply B]", 1)[0]
    b = text.split("[Reply B]", 1)[1]
    if (MARK in a) == (MARK in b):
        return "A"
    return "Verdict: A" if MARK in a else "Verdict: B"


def test_hybrid_recipe_accounting(tmp_path):
    spider = SPIDER.resolve()
    recipe = load_recipe(
        ROOT / "examples" / "hybrid.yaml",
        [
            f"tasks.sources=[{{name: spider, path: '{spider}', split: dev, count: 18}}]",
            "tasks.heldout_fraction=0.0",
            "sampling.k=2",
            "sampling.max_samples=2",
            "strategies.1.options.max_pairs=2",  # the spider teacher quota binds
        ],
    )
    with Run(
        recipe,
        tmp_path / "run",
        policy=ScriptedPolicy(model="student", fn=student),
        teacher=ScriptedPolicy(model="teacher", fn=teacher),
        judge_policy=ScriptedPolicy(model="judge", fn=judge),
        progress=False,
    ) as run:
        run.build_tasks()
        run.sample(0)
        tasks = run.train_tasks()
        assert len(tasks) == 18
        q = {t.id: t.spec["question"].strip() for t in tasks}
        cats = {tid: category(text) for tid, text in q.items()}
        assert set(cats.values()) == {0, 1, 2}  # the sample exercises every path

        made = run.make_pairs(0)
        pairs = run.store.pairs(round=0)
        by = {name: [p for p in pairs if p.strategy == name] for name in made}
        assert sum(made.values()) == len(pairs)
        assert {k: len(v) for k, v in by.items()} == made

        selfplay = {p.task_id for p in by["best-worst"]}
        assert selfplay == {t for t, c in cats.items() if c == 0}
        # The teacher played only tasks self-play left unpaired, and stopped at its quota.
        taught = {p.task_id for p in by["teacher"]}
        teacher_eps = run.store.episodes(round=0, kind="teacher")
        assert teacher_eps and not {e.task_id for e in teacher_eps} & selfplay
        wins = [t for t, c in cats.items() if c == 1 and teacher_right(q[t])]
        assert len(taught) == min(2, len(wins)) and taught <= set(wins)
        # Gold took every failing task still unpaired; all-right tasks got no pair at all.
        gold = {p.task_id for p in by["gold"]}
        assert gold == {t for t, c in cats.items() if c == 1} - taught
        assert not (selfplay & taught) and not (gold & (selfplay | taught))
        assert len(pairs) == len(selfplay | taught | gold)  # one pair per task

        run.judge(0)
        drops = run.filter(0)
        stats = run.stats()
        assert stats["pairs_made"] == len(pairs)
        assert sum(stats["pairs_by_strategy"].values()) == stats["pairs_kept"]
        assert stats["pairs_kept"] + sum(stats["drops_by_filter"].values()) == len(pairs)
        # The judge preferred the marked wrong reply on every self-play pair, in both orders.
        assert drops.get("judge") == len(selfplay)
        assert "best-worst" not in stats["pairs_by_strategy"]
        assert stats["judge"]["judged"] == len(pairs)
        assert stats["judge"]["agreement"] == round(len(taught) / (len(taught) + len(selfplay)), 4)
