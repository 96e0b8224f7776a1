"""The HTML report: figures from a real run store, plots embedded, empty sections say so."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

from agentpref.records import Judgement, Pair, Reward, Task, Trajectory, messages
from agentpref.report.html import write_report
from agentpref.report.stats import collect
from agentpref.store import RunStore

PNG = b"\x89PNG\r\n\x1a\n"


class Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.nodata = 0
        self._in_nodata = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a.get("src", ""))
        if tag == "p" and a.get("class") == "nodata":
            self.nodata += 1


def parse(path: Path) -> Images:
    p = Images()
    p.feed(path.read_text())
    return p


def pngs(srcs: list[str]) -> list[bytes]:
    prefix = "data:image/png;base64,"
    assert all(s.startswith(prefix) for s in srcs)
    return [base64.b64decode(s[len(prefix) :]) for s in srcs]


def build_run(run: Path) -> None:
    with RunStore(run / "store.sqlite") as store:
        tasks = [Task(id=f"spider:train:{i}", source="spider", env="sql") for i in range(4)]
        tasks += [Task(id=f"builtin:train:{i}", source="builtin", env="dbbench") for i in range(2)]
        tasks += [Task(id="spider:dev:9", source="spider", split="eval", env="sql")]
        store.add_tasks(tasks)
        eps = []
        for t in tasks[:5]:
            for k, score in enumerate((1.0, -0.5, 0.5)):
                eps.append(
                    Trajectory(
                        id=f"{t.id}#r0#s{k}",
                        task_id=t.id,
                        policy="m",
                        messages=messages(("user", "q"), ("assistant", "x" * (10 + 20 * k))),
                        prompt_len=1,
                        reward=Reward(total=score, breakdown={"valid": score > 0}),
                    )
                )
        store.add_episodes(eps)
        store.add_episodes([eps[0].model_copy(update={"id": "t#r0#t0"})], kind="teacher")
        pairs = []
        for i, t in enumerate(tasks[:5]):
            pairs.append(
                Pair(
                    id=f"p{i}",
                    task_id=t.id,
                    source=t.source,
                    strategy="best-worst" if i < 3 else "gold",
                    prompt=messages(("user", "q")),
                    chosen=messages(("assistant", "SELECT " + "a" * (5 + 10 * i))),
                    rejected=messages(
                        ("assistant", "SELEC b"), ("user", "error"), ("assistant", "SELECT c")
                    ),
                    chosen_score=1.0,
                    rejected_score=-0.5 + 0.25 * (i % 2),
                )
            )
        store.add_pairs(pairs)
        store.add_drops(
            [("p4", 0, "margin", "margin 0.25 < 0.5 (min)"), ("p3", 0, "length", "chosen too long")]
        )
        store.add_judgements(
            [
                Judgement(pair_id="p0", judge="j", first="A", second="B", verdict="chosen"),
                Judgement(pair_id="p1", judge="j", first="A", second="A", verdict="inconsistent"),
                Judgement(pair_id="p2", judge="j", first="B", second="A", verdict="rejected"),
            ]
        )
    (run / "stats.json").write_text(json.dumps({"yield": 0.6}))
    for label, rnd, acc in (("base", 0, 0.25), ("round_1", 1, 0.5)):
        (run / "eval").mkdir(exist_ok=True)
        (run / "eval" / f"{label}.json").write_text(
            json.dumps(
                {
                    "label": label,
                    "round": rnd,
                    "policy": "m",
                    "tasks": 4,
                    "metrics": {
                        "sql": {"n": 4, "mean_reward": 0.1, "execution_accuracy": acc},
                        "dbbench": {
                            "n": 2,
                            "mean_reward": 0.0,
                            "success_rate": acc / 2,
                            "success_rate_by_kind": {"query": acc},
                        },
                    },
                }
            )
        )
    (run / "train" / "round_1").mkdir(parents=True)
    (run / "train" / "round_1" / "train_result.json").write_text(
        json.dumps(
            {
                "round": 1,
                "loss": "dpo",
                "rows": 3,
                "steps": 3,
                "losses": [0.69, 0.5, 0.3],
                "loss_before": 0.69,
                "loss_after": 0.3,
                "seconds": 12.0,
            }
        )
    )


def test_collect_counts_from_the_store(tmp_path):
    build_run(tmp_path)
    d = collect(tmp_path)
    assert d["yield_by_source"]["spider"] == {
        "tasks": 4,
        "sampled": 4,
        "with_pair": 3,
        "pairs_made": 4,
        "pairs_kept": 3,
        "yield": 0.75,
    }
    assert d["yield_by_source"]["builtin"]["sampled"] == 1
    assert d["yield_by_source"]["builtin"]["with_pair"] == 0  # its only pair was dropped
    assert d["pairs_by_strategy"] == {
        "best-worst": {"made": 3, "kept": 3},
        "gold": {"made": 2, "kept": 0},
    }
    assert len(d["episode_scores"]["policy"]) == 15 and d["episode_scores"]["teacher"] == [1.0]
    assert d["drops_by_filter"] == {"length": 1, "margin": 1}
    # Length counts assistant characters only: the rejected side's 'error' is not the policy's.
    assert d["lengths"]["rejected"] == [len("SELEC b") + len("SELECT c")] * 3
    assert d["lengths"]["chosen"] == [12, 22, 32]
    assert d["judge"]["verdicts"] == {"chosen": 1, "rejected": 1, "inconsistent": 1}
    assert d["judge"]["agreement"] == 0.5
    assert [e["label"] for e in d["eval"]] == ["base", "round_1"]
    assert d["training"][0]["losses"] == [0.69, 0.5, 0.3]


def test_report_renders_every_plot_as_an_inline_png(tmp_path):
    build_run(tmp_path)
    path = write_report(tmp_path)
    assert path == tmp_path / "report.html"
    page = parse(path)
    images = pngs(page.srcs)
    # yield, strategies, episode rewards, pair scores, margins, length, drops, judge, eval, train
    assert len(images) == 10
    assert all(img.startswith(PNG) and len(img) > 2000 for img in images)
    assert page.nodata == 0
    text = path.read_text()
    assert "http://" not in text.replace("http://www.w3.org", "") and "<script" not in text
    assert "chosen is longer in 67% of 3 kept pairs" in text


def test_empty_run_says_no_data(tmp_path):
    path = write_report(tmp_path)
    page = parse(path)
    assert page.srcs == [] and page.nodata == 10
    # A store with tasks but nothing else still renders.
    with RunStore(tmp_path / "store.sqlite") as store:
        store.add_tasks([Task(id="a:train:1", source="a", env="sql")])
    path = write_report(tmp_path, tmp_path / "r.html")
    page = parse(path)
    assert page.srcs == [] and page.nodata == 9  # the summary table has counts
    assert "no task sampled yet" in path.read_text()
