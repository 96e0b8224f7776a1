import pytest
from strategy_helpers import GOLD, context, play_students, policy, tasks

from agentpref.errors import ConfigError
from agentpref.pairs.teacher import TeacherStudent


def wrong(question: str, i: int) -> str:
    return "SELECT 1" if i == 0 else "SELECT nme FROM singer"


def test_teacher_pairs_confirmed_by_the_verifier(tmp_path):
    ctx = context(tmp_path)
    ts = tasks()
    student_eps = play_students(ctx, policy("student", wrong), ts)
    # The teacher knows every answer but the last one.
    last = ts[3].spec["question"]
    teacher = policy("big-teacher", lambda q, i: GOLD[q] if q != last else "SELECT 2")
    ctx.teacher = teacher
    pairs = TeacherStudent(min_margin=0.5).make_pairs(ts, student_eps, ctx)

    assert sorted(p.task_id for p in pairs) == sorted(t.id for t in ts[:3])
    for p in pairs:
        assert p.strategy == "teacher"
        assert p.provenance["chosen"]["model"] == "big-teacher"
        assert p.provenance["rejected"]["model"] == "student"
        assert p.chosen_score == 1.0
        # The worst student reply is the one whose SQL errors (-0.5), not the wrong one (-0.25).
        assert p.rejected_score == -0.5 and "nme" in p.rejected[0].content
        assert p.provenance["chosen"]["episode"].endswith("#t0")
        assert p.prompt == student_eps[p.task_id][0].prompt
    stored = ctx.store.episodes(round=0, kind="teacher")
    assert len(stored) == 4 and {e.policy for e in stored} == {"big-teacher"}
    assert ctx.paired == {t.id for t in ts[:3]}

    # Resuming plays nothing again: the teacher's episodes come from the store.
    calls = len(teacher.calls)
    again = TeacherStudent(min_margin=0.5).make_pairs(ts, student_eps, ctx)
    assert [p.id for p in again] == [p.id for p in pairs]
    assert len(teacher.calls) == calls


def test_only_unpaired_sources_and_cap(tmp_path):
    ctx = context(tmp_path)
    ts = tasks()
    eps = play_students(ctx, policy("student", wrong), ts)
    ctx.teacher = policy("teacher", lambda q, i: GOLD[q])
    ctx.paired = {ts[0].id, ts[1].id}
    pairs = TeacherStudent(only_unpaired=True).make_pairs(ts, eps, ctx)
    assert sorted(p.task_id for p in pairs) == [ts[2].id, ts[3].id]
    # The teacher played only the unpaired tasks.
    assert {e.task_id for e in ctx.store.episodes(round=0, kind="teacher")} == {ts[2].id, ts[3].id}

    ctx2 = context(tmp_path / "b")
    eps2 = play_students(ctx2, policy("student", wrong), ts)
    ctx2.teacher = policy("teacher", lambda q, i: GOLD[q])
    capped = TeacherStudent(max_pairs=1, temperature=0.3).make_pairs(ts, eps2, ctx2)
    assert len(capped) == 1
    (played,) = ctx2.store.episodes(round=0, kind="teacher")
    assert played.sampling["temperature"] == 0.3 and ctx2.sampling.temperature == 0.0
    assert TeacherStudent(sources=["bird"]).make_pairs(ts, eps2, ctx2) == []


def test_margin_not_met_and_missing_teacher(tmp_path):
    ctx = context(tmp_path)
    ts = tasks()[:1]
    eps = play_students(ctx, policy("student", lambda q, i: GOLD[q]), ts)
    ctx.teacher = policy("teacher", lambda q, i: GOLD[q])
    assert TeacherStudent().make_pairs(ts, eps, ctx) == []  # both right: no margin
    ctx.teacher = None
    with pytest.raises(ConfigError, match="teacher"):
        TeacherStudent().make_pairs(ts, eps, ctx)
    with pytest.raises(ConfigError, match="unknown key"):
        TeacherStudent(sampels=2)
