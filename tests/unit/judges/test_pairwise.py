import re

import pytest

from agentpref.errors import ConfigError
from agentpref.filters.base import FilterContext
from agentpref.filters.judge import JudgeFilter
from agentpref.judges.base import agreement, combine
from agentpref.judges.pairwise import PairwiseJudge, parse_choice
from agentpref.policies.scripted import ScriptedPolicy
from agentpref.records import Judgement, Message, Pair, Task


def pair(i: int, source: str = "spider", strategy: str = "best-worst", env: str = "sql") -> Pair:
    return Pair(
        id=f"p{i}", task_id=f"t{i}", source=source, strategy=strategy,
        prompt=[Message(role="user", content=f"Question {i}: how many singers?")],
        chosen=[Message(role="assistant", content="```sql\nSELECT count(*) FROM singer\n```")],
        rejected=[Message(role="assistant", content="```sql\nSELECT nme FROM singer\n```")],
        chosen_score=1.0, rejected_score=-0.5, meta={"env": env},
    )


def side(conv, letter: str) -> str:
    text = conv[-1].content
    match = re.search(rf"\[(?:Reply|Continuation) {letter}\]\n(.*?)\n\n\[", text + "\n\n[", re.S)
    assert match, text
    return match.group(1)


def smart(conv, i):
    """Prefers the reply that counts: right in both orders."""
    return "Verdict: A" if "count(*)" in side(conv, "A") else "Reasoning...\nVerdict: B"


def test_both_orders_and_one_call_per_batch():
    judge_policy = ScriptedPolicy(model="judge-model", fn=smart)
    pairs = [pair(i) for i in range(5)]
    out = PairwiseJudge(judge_policy, batch_size=3).judge(pairs, {})
    assert [j.verdict for j in out] == ["chosen"] * 5
    assert [(j.first, j.second) for j in out] == [("A", "B")] * 5
    assert judge_policy.calls == [(6, 1), (4, 1)]  # both orders of a batch in one call
    assert out[0].judge == "judge-model" and len(out[0].raw) == 2

    contrarian = ScriptedPolicy(fn=lambda c, i: "B" if "count(*)" in side(c, "A") else "A")
    assert {j.verdict for j in PairwiseJudge(contrarian).judge(pairs, {})} == {"rejected"}
    biased = ScriptedPolicy(fn=lambda c, i: "A")  # position bias: never a verdict
    assert {j.verdict for j in PairwiseJudge(biased).judge(pairs, {})} == {"inconsistent"}
    mute = ScriptedPolicy(fn=lambda c, i: "I cannot decide.")
    j = PairwiseJudge(mute).judge(pairs[:1], {})[0]
    assert (j.first, j.second, j.verdict) == ("?", "?", "inconsistent")


def test_templates_by_env_and_replaceable(tmp_path):
    seen: list[str] = []
    judge_policy = ScriptedPolicy(fn=lambda c, i: seen.append(c[-1].content) or "A")
    tasks = {"t0": Task(id="t0", source="sw", env="scienceworld")}
    PairwiseJudge(judge_policy).judge([pair(0, env="scienceworld"), pair(1)], tasks)
    assert "[Continuation A]" in seen[0] and "[Reply A]" in seen[2]
    # Chosen shown first, then second.
    assert seen[2].index("count(*)") < seen[2].index("nme")
    assert seen[3].index("nme") < seen[3].index("count(*)")

    custom = tmp_path / "mine.txt"
    custom.write_text('{"json": "braces ok"} Q: {context}\n1) {response_a}\n2) {response_b}\n')
    seen.clear()
    PairwiseJudge(judge_policy, template=str(custom)).judge([pair(2)], None)
    assert seen[0].startswith('{"json": "braces ok"} Q: <user>\nQuestion 2')
    bad = tmp_path / "bad.txt"
    bad.write_text("{context} {response_a}")
    with pytest.raises(ConfigError, match="response_b"):
        PairwiseJudge(judge_policy, templates={"sql": str(bad)})
    with pytest.raises(ConfigError, match="does not exist"):
        PairwiseJudge(judge_policy, template=str(tmp_path / "none.txt"))
    with pytest.raises(ConfigError, match="unknown key"):
        PairwiseJudge(judge_policy, temprature=0)


def test_parse_choice():
    cases = {
        "A": "A", "B.": "B", "**B**": "B", "Verdict: A": "A", "verdict: **B**": "B",
        "Reply A is better than B.\nVerdict: B": "B", "[[A]]": "A", "I prefer Response B.": "B",
        "<think>Verdict: A</think>Verdict: B": "B", "Answer: a better one is B": "?",
        "Both are fine": "?", "": "?", "Response B is clearly better.": "B",
        "The answer: (A)": "A",
    }
    assert {text: parse_choice(text) for text in cases} == cases
    assert combine("A", "B") == "chosen" and combine("B", "A") == "rejected"
    assert combine("A", "A") == "inconsistent" and combine("?", "B") == "inconsistent"


def test_agreement_arithmetic_and_filter():
    pairs = [pair(0), pair(1), pair(2), pair(3, "bird", "teacher"), pair(4, "bird", "gold")]
    verdicts = ["chosen", "rejected", "inconsistent", "chosen", "chosen"]
    js = [
        Judgement(pair_id=f"p{i}", judge="j", first="A", second="B", verdict=v)
        for i, v in enumerate(verdicts)
    ]
    js.append(Judgement(pair_id="gone", judge="j", first="B", second="A", verdict="rejected"))
    stats = agreement(js, pairs)
    assert (stats["judged"], stats["consistent"], stats["agree"]) == (6, 5, 3)
    assert stats["agreement"] == 0.6 and stats["consistency"] == round(5 / 6, 4)
    assert stats["by_source"]["spider"] == {
        "judged": 3, "consistent": 2, "agree": 1, "consistency": 0.6667, "agreement": 0.5,
    }
    assert stats["by_source"]["bird"]["agreement"] == 1.0
    assert stats["by_source"]["?"]["agreement"] == 0.0
    assert stats["by_strategy"]["best-worst"]["agree"] == 1
    assert agreement([])["agreement"] is None

    ctx = FilterContext(judgements={j.pair_id: j for j in js})
    keep = JudgeFilter()
    assert [keep.check(p, ctx) is None for p in pairs] == [True, False, True, True, True]
    strict = JudgeFilter(drop_inconsistent=True, drop_unjudged=True)
    assert strict.check(pairs[2], ctx) and strict.check(pair(9), ctx) == "not judged"
