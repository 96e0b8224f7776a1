"""One slow test: the strategies and the judge driven by the real tiny model on CPU."""

import pytest
from strategy_helpers import context, play_students, policy, tasks

from agentpref.judges.pairwise import PairwiseJudge
from agentpref.pairs.correction import SelfCorrection
from agentpref.pairs.teacher import TeacherStudent
from agentpref.records import SamplingParams


@pytest.mark.slow
def test_tiny_model_as_teacher_fixer_and_judge(tmp_path, tiny_model_dir):
    from agentpref.policies.transformers import TransformersPolicy

    tiny = TransformersPolicy(model=str(tiny_model_dir), device="cpu")
    ctx = context(tmp_path, policy=tiny, teacher=tiny)
    ctx.sampling = SamplingParams(temperature=0.0, max_new_tokens=40)
    ts = tasks()[:1]
    eps = play_students(ctx, policy("student", lambda q, i: "SELECT nme FROM singer"), ts, k=1)

    teacher_pairs = TeacherStudent(min_margin=0.1).make_pairs(ts, eps, ctx)
    (played,) = ctx.store.episodes(round=0, kind="teacher")
    assert played.policy == tiny.name and played.continuation[0].content
    assert "valid" in played.reward.breakdown
    # Kept exactly when the verifier confirms the margin over the erroring student (-0.5).
    assert len(teacher_pairs) == int(played.score >= -0.4)

    fixer = SelfCorrection(min_margin=0.1, use_existing=False, use_gold=True)
    (fix,) = fixer.make_pairs(ts, eps, ctx)  # the model's fix if it worked, else the gold SQL
    (asked,) = ctx.store.episodes(round=0, kind="correction")
    assert asked.policy == tiny.name and asked.sampling["template_hash"] == tiny.template_hash()
    assert fix.chosen_score - fix.rejected_score >= 0.1
    assert fix.provenance["chosen"]["model"] == (tiny.name if asked.score >= -0.4 else "gold")

    pairs = [fix, *teacher_pairs]
    judgements = PairwiseJudge(tiny, max_new_tokens=4).judge(pairs, {t.id: t for t in ts})
    assert [j.pair_id for j in judgements] == [p.id for p in pairs]
    for j in judgements:
        assert j.judge == tiny.name and len(j.raw) == 2
        assert j.first in "AB?" and j.second in "AB?"
        assert j.verdict in ("chosen", "rejected", "inconsistent")
    tiny.close()
