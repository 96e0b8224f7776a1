"""What a task says, as text: for de-duplication and the contamination guard."""

from __future__ import annotations

import re
from typing import Any

from agentpref.records import Task

_WORD = re.compile(r"[a-z0-9]+")


def normalise(text: str) -> str:
    """Lowercase words joined by single spaces; punctuation and spacing dropped."""
    return " ".join(_WORD.findall(text.lower()))


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def question_text(task: Task) -> str:
    """The text that identifies the task's question: SQL tasks' question after their earlier
    turns; env tasks' goal, else the last user message of the prompt (instructions shared by
    every task of a family would otherwise make all of them look alike)."""
    spec = task.spec
    parts: list[str] = []
    for turn in spec.get("history") or []:
        if isinstance(turn, dict):
            parts.append(str(turn.get("question", "")))
    own = next(
        (
            spec[k]
            for k in ("question", "goal", "description", "instruction")
            if isinstance(spec.get(k), str) and spec[k]
        ),
        None,
    )
    if own is None:
        own = next((m.content for m in reversed(task.prompt) if m.role == "user"), "")
    parts.append(own)
    return "\n".join(p for p in parts if p)


def full_text(task: Task) -> str:
    """Everything a training row could carry from the task: prompt, spec strings, expert turns."""
    parts: list[str] = [m.content for m in task.prompt]
    parts.extend(_strings(task.spec))
    expert = task.meta.get("expert")
    if isinstance(expert, list):
        for m in expert:
            if isinstance(m, dict):
                parts.append(str(m.get("content", m.get("value", ""))))
    return "\n".join(p for p in parts if p)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() if k != "db_path" for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def group_of(task: Task) -> str | None:
    """The unit of the held-out split: the database (or a source-given group), if any."""
    for where in (task.spec, task.meta):
        for key in ("db_id", "group"):
            value = where.get(key)
            if isinstance(value, str) and value:
                return value
    return None
