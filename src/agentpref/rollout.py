"""Play episodes: many tasks x K samples, advancing every live episode together.

Each turn, the next reply of every live episode comes from one batched policy call. On the
first turn the K episodes of a task share their prompt, so that prompt is sent once with
n=K (a server shares the prefix, a local model samples K rows of one prompt).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentpref.envs.base import Environment, make_env
from agentpref.policies.base import Policy
from agentpref.records import Message, Reward, SamplingParams, Task, Trajectory

log = logging.getLogger(__name__)


@dataclass
class EpisodeSlot:
    """One episode in flight."""

    task: Task
    sample_index: int
    env: Environment | None
    messages: list[Message]
    prompt_len: int
    turn_rewards: list[Reward] = field(default_factory=list)
    done: bool = False
    reward: Reward | None = None
    outcome: str = "done"
    info: dict[str, Any] = field(default_factory=dict)
    tokens: int = 0


def episode_id(task_id: str, round: int, sample_index: int, tag: str = "s") -> str:
    return f"{task_id}#r{round}#{tag}{sample_index}"


def _finish(slot: EpisodeSlot, reward: Reward | None, outcome: str) -> None:
    slot.done = True
    slot.reward = reward or Reward(total=0.0, breakdown={"outcome": outcome})
    slot.outcome = outcome
    if slot.env is not None:
        try:
            slot.env.close()
        except Exception:  # closing a broken environment must not stop the run
            log.debug("env close failed", exc_info=True)
        slot.env = None


def play(
    policy: Policy,
    jobs: Sequence[tuple[Task, int]],
    sampling: SamplingParams,
    env_options: dict[str, dict[str, Any]] | None = None,
    round: int = 0,
    tag: str = "s",
    max_turns: int = 64,
    batch_size: int = 64,
    on_done: Callable[[list[Trajectory]], None] | None = None,
) -> list[Trajectory]:
    """Play one episode per (task, sample_index) job and return the trajectories.

    `on_done` is called with each batch of finished episodes as soon as the batch ends, so
    the caller can commit them to the store (a kill loses at most the batch in flight).
    Seeds: the sample at index i of a task uses seed `sampling.seed + i` semantics through
    the policy (a policy derives per-reply seeds from sampling.seed and the batch layout).
    """
    out: list[Trajectory] = []
    for chunk in _chunks(jobs, batch_size):
        finished = _play_chunk(policy, chunk, sampling, env_options, round, tag, max_turns)
        out.extend(finished)
        if on_done is not None:
            on_done(finished)
    return out


def _chunks(
    jobs: Sequence[tuple[Task, int]], batch_size: int
) -> list[list[tuple[Task, int]]]:
    """Batches of about `batch_size` jobs that never split one task's samples, so the K
    samples of a task go out as one prompt with n=K."""
    groups: dict[str, list[tuple[Task, int]]] = {}
    for job in jobs:
        groups.setdefault(job[0].id, []).append(job)
    chunks: list[list[tuple[Task, int]]] = []
    current: list[tuple[Task, int]] = []
    for group in groups.values():
        if current and len(current) + len(group) > batch_size:
            chunks.append(current)
            current = []
        current.extend(group)
    if current:
        chunks.append(current)
    return chunks


def _play_chunk(
    policy: Policy,
    jobs: Sequence[tuple[Task, int]],
    sampling: SamplingParams,
    env_options: dict[str, dict[str, Any]] | None,
    round: int,
    tag: str,
    max_turns: int,
) -> list[Trajectory]:
    slots: list[EpisodeSlot] = []
    for task, idx in jobs:
        try:
            env = make_env(task, env_options)
            opening = env.reset(task)
        except Exception as exc:  # environment crash at reset is data, not a stop
            from agentpref.errors import ConfigError

            if isinstance(exc, ConfigError):
                raise
            log.warning("reset failed for %s: %s", task.id, exc)
            slot = EpisodeSlot(task, idx, None, list(task.prompt), len(task.prompt))
            _finish(slot, Reward(total=-0.5, breakdown={"env_error": str(exc)[:300]}), "env_error")
            slots.append(slot)
            continue
        slots.append(EpisodeSlot(task, idx, env, list(opening), len(opening)))

    for _turn in range(max_turns):
        live = [s for s in slots if not s.done]
        if not live:
            break
        # Group identical conversations (the K samples of a task on their first turn).
        groups: dict[tuple[str, ...], list[EpisodeSlot]] = {}
        for s in live:
            key = tuple(m.role + "\x00" + m.content for m in s.messages)
            groups.setdefault(key, []).append(s)
        by_n: dict[int, list[list[EpisodeSlot]]] = {}
        for members in groups.values():
            by_n.setdefault(len(members), []).append(members)
        for n, member_lists in by_n.items():
            convs = [members[0].messages for members in member_lists]
            params = sampling.model_copy(update={"n": n, "seed": sampling.seed + _turn * 7919})
            replies = policy.generate(convs, params)
            steps: list[tuple[EpisodeSlot, str]] = []
            for members, group in zip(member_lists, replies, strict=True):
                for slot, completion in zip(members, group, strict=True):
                    slot.tokens += completion.tokens
                    slot.messages.append(Message(role="assistant", content=completion.text))
                    steps.append((slot, completion.text))
            _advance_all(steps)
    for s in slots:
        if not s.done:
            _finish(s, None, "max_turns")

    trajectories = []
    for s in slots:
        assert s.reward is not None
        trajectories.append(
            Trajectory(
                id=episode_id(s.task.id, round, s.sample_index, tag),
                task_id=s.task.id,
                round=round,
                sample_index=s.sample_index,
                policy=policy.name,
                messages=s.messages,
                prompt_len=s.prompt_len,
                reward=s.reward,
                turn_rewards=s.turn_rewards,
                outcome=s.outcome,
                sampling={
                    **sampling.model_dump(exclude={"n"}),
                    "template_hash": policy.template_hash(),
                },
                meta={"tokens": s.tokens, **s.info},
            )
        )
    return trajectories


def _advance_all(steps: list[tuple[EpisodeSlot, str]]) -> None:
    """Step every episode of a turn; environments that wait on another process (a Java
    simulator) say `parallel_steps = True` and are stepped from a thread pool."""
    parallel = len(steps) > 1 and all(
        getattr(slot.env, "parallel_steps", False) for slot, _ in steps
    )
    if not parallel:
        for slot, reply in steps:
            _advance(slot, reply)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(16, len(steps))) as pool:
        list(pool.map(lambda job: _advance(*job), steps))


def _advance(slot: EpisodeSlot, reply: str) -> None:
    assert slot.env is not None
    try:
        result = slot.env.step(reply)
    except Exception as exc:  # an environment crash ends this episode only
        log.warning("env step failed for %s: %s", slot.task.id, exc)
        _finish(slot, Reward(total=-0.5, breakdown={"env_error": str(exc)[:300]}), "env_error")
        return
    if result.info:
        slot.info.update(result.info)
    if result.done:
        _finish(slot, result.reward, result.outcome)
        return
    if result.reward is not None:
        slot.turn_rewards.append(result.reward)
    if result.observation is not None:
        slot.messages.append(Message(role="user", content=result.observation))
