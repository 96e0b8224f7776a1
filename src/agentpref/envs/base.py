"""The environment contract: play one episode of a task.

`reset(task)` returns the opening messages (what the policy sees before its first reply);
`step(reply)` takes the policy's reply text and returns the observation (None when the
episode ended), done, and -- once done -- the episode's final Reward with its breakdown.
A single-turn SQL task is an environment whose first step is its last.

Failed executions are data: a SQL error, a timeout or an unparseable reply ends or continues
the episode with a recorded outcome; `step` raises only for bugs, never for model output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agentpref.records import Message, Reward, Task


@dataclass
class StepResult:
    observation: str | None
    done: bool
    reward: Reward | None = None
    """Final episode reward when done; an optional per-turn reward otherwise."""
    outcome: str = "done"
    """How the episode ended: done, failed_format, max_turns, env_error, ..."""
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Environment(Protocol):
    def reset(self, task: Task) -> list[Message]: ...

    def step(self, reply: str) -> StepResult: ...

    def close(self) -> None: ...


def make_env(task: Task, options: dict[str, dict[str, Any]] | None = None) -> Environment:
    """Build the environment a task names, with that environment's recipe options."""
    from agentpref.registry import lookup

    cls = lookup("environment", task.env)
    env: Environment = cls(**((options or {}).get(task.env) or {}))
    return env
