from agentpref.records import Message, Pair, Reward, Task, Trajectory
from agentpref.store import RunStore


def task(i: int) -> Task:
    return Task(id=f"t:{i}", source="test", env="sql", spec={"gold_sql": "SELECT 1"})


def episode(tid: str, idx: int, score: float) -> Trajectory:
    return Trajectory(
        id=f"{tid}#r0#s{idx}", task_id=tid, sample_index=idx, policy="p",
        messages=[Message(role="user", content="q"), Message(role="assistant", content="a")],
        prompt_len=1, reward=Reward(total=score, breakdown={"valid": True}),
    )


def test_inserts_are_idempotent_and_survive_reopen(tmp_path):
    path = tmp_path / "s.sqlite"
    with RunStore(path) as s:
        assert s.add_tasks([task(1), task(2)]) == 2
        assert s.add_tasks([task(1)]) == 0
        assert s.add_episodes([episode("t:1", 0, 1.0), episode("t:1", 1, -0.5)]) == 2
        assert s.add_episodes([episode("t:1", 0, 0.3)]) == 0
    with RunStore(path) as s:
        eps = s.episodes(task_id="t:1")
        assert [e.sample_index for e in eps] == [0, 1]
        assert eps[0].score == 1.0  # the first write wins; a re-run never overwrites
        assert s.episode_counts(0) == {"t:1": 2}
        assert s.counts()["tasks"] == 2


def test_pairs_drops_and_marks(tmp_path):
    with RunStore(tmp_path / "s.sqlite") as s:
        p = Pair(id="p1", task_id="t:1", source="test", strategy="best-worst",
                 prompt=[Message(role="user", content="q")],
                 chosen=[Message(role="assistant", content="good")],
                 rejected=[Message(role="assistant", content="bad")],
                 chosen_score=1.0, rejected_score=-0.5)
        assert s.add_pairs([p, p]) == 1
        assert s.pairs()[0].margin == 1.5
        s.add_drops([("p1", 0, "length", "too short"), ("p1", 0, "length", "again")])
        assert s.drop_counts() == {"length": 1}
        assert s.dropped_ids() == {"p1"}
        assert s.marked("train", "round0") is None
        s.mark("train", "round0", {"adapter": "a"})
        assert s.marked("train", "round0") == {"adapter": "a"}
