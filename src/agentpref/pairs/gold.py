"""Gold as chosen (SPIN): the dataset's gold answer against a failed policy episode.

The gold episode is built by playing the gold reply through the task's own environment with a
scripted policy named "gold", so it is scored by the same verifier and stored like any
episode: for env "sql" the reply is the gold SQL in a ```sql block; for env "dbbench" the gold
path (run the gold SQL, then answer from the rows it returned); for a task whose
`meta["expert"]` holds an expert trajectory, those replies in order. A gold episode that
does not itself pass the verifier (a broken gold query) makes no pair.
"""

from __future__ import annotations

import ast
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import Field

from agentpref.config import validate_options
from agentpref.pairs.base import PairContext, make_pair
from agentpref.pairs.common import CommonOptions, TurnScript, finish, is_valid, replay, select_tasks
from agentpref.records import Message, Pair, Task, Trajectory

log = logging.getLogger(__name__)

GOLD_MODEL = "gold"


class GoldOptions(CommonOptions):
    per_task: int = Field(
        default=1, ge=1, description="Failed episodes paired with the gold one (worst first)."
    )


def sql_reply(sql: str) -> str:
    """A single-turn SQL reply in the form the sql environment parses."""
    return f"```sql\n{sql.strip()}\n```"


def dbbench_operation(sql: str) -> str:
    return f"Action: Operation\n```sql\n{sql.strip()}\n```"


def dbbench_answer(values: Sequence[Any]) -> str:
    return "Action: Answer\nFinal Answer: " + json.dumps(
        [str(v) for v in values], ensure_ascii=False
    )


def rows_to_answer(observation: str) -> list[str]:
    """Flatten an observation of fetched rows (a Python repr of tuples) into answer strings."""
    text = observation.replace("[TRUNCATED]", "").strip()
    try:
        rows = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return []
    values: list[str] = []
    if isinstance(rows, (list, tuple)):
        for row in rows:
            cells = row if isinstance(row, (list, tuple)) else [row]
            values.extend(str(c) for c in cells)
    return values


def _dbbench_turns(task: Task) -> Callable[[list[Message], int], str | None]:
    """Run the gold SQL, then answer with what it returned (or the task's answer list)."""
    gold_sql = str(task.spec.get("gold_sql") or "")
    answer = task.spec.get("answer")
    if not gold_sql:
        return lambda conversation, turn: dbbench_answer(answer or []) if turn == 0 else None

    def turns(conversation: list[Message], turn: int) -> str | None:
        if turn == 0:
            return dbbench_operation(gold_sql)
        if turn == 1:
            if isinstance(answer, list):
                return dbbench_answer(answer)
            observed = conversation[-1].content if conversation[-1].role == "user" else ""
            if "[TRUNCATED]" in observed:
                return dbbench_answer(_full_gold_answer(task, gold_sql))
            return dbbench_answer(rows_to_answer(observed))
        return None

    return turns


def _full_gold_answer(task: Task, gold_sql: str) -> list[str]:
    """The gold query's whole result when the observation was cut (DB Bench's answer list)."""
    from agentpref.envs.sql.dbbench import gold_answer
    from agentpref.envs.sql.sandbox import default_verifier

    try:
        run = default_verifier().gold(str(task.spec["db_path"]), gold_sql)
        return gold_answer(list(run.rows))
    except Exception as exc:  # a broken gold query makes a failing gold episode, not a crash
        log.debug("gold: %s: %s", task.id, exc)
        return []


def expert_replies(task: Task) -> list[str] | None:
    """The replies of `meta["expert"]`: strings, or messages/dicts with content or action.

    A whole conversation (ShareGPT-style, prompt included) skips its first
    `meta["prompt_len"]` messages, which are the task's prompt.
    """
    expert = task.meta.get("expert")
    if not isinstance(expert, list) or not expert:
        return None
    skip = task.meta.get("prompt_len")
    if isinstance(skip, int) and 0 < skip < len(expert) and isinstance(expert[0], dict):
        expert = expert[skip:]
    out: list[str] = []
    for item in expert:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            if item.get("role", "assistant") != "assistant":
                continue
            text = item.get("content", item.get("action"))
            if text is None:
                return None
            out.append(str(text))
        else:
            return None
    return out or None


def gold_script(task: Task, env_options: dict[str, Any] | None = None) -> TurnScript | None:
    """How the gold side of a task is played, or None when the task has no gold."""
    expert = expert_replies(task)
    if expert is not None:
        return TurnScript(expert)
    if task.env == "scienceworld":
        return _science_script(task, env_options)
    gold_sql = task.spec.get("gold_sql")
    if task.env == "sql" and gold_sql:
        return TurnScript([sql_reply(str(gold_sql))])
    if task.env == "dbbench" and (gold_sql or isinstance(task.spec.get("answer"), list)):
        return TurnScript(_dbbench_turns(task))
    return None


def _science_script(task: Task, env_options: dict[str, Any] | None) -> TurnScript | None:
    """The simulator's gold path as ETO-style replies (a thought before each action)."""
    from agentpref.envs.science import expert_replies as science_replies
    from agentpref.envs.science import gold_actions

    try:
        actions = gold_actions(task, (env_options or {}).get("scienceworld"))
    except Exception as exc:  # no gold path for this variation: no gold pair, not a crash
        log.warning("gold: %s has no gold path: %s", task.id, exc)
        return None
    return TurnScript(science_replies(actions))


def play_gold(ctx: PairContext, tasks: Sequence[Task]) -> dict[str, Trajectory]:
    """Gold episodes (round's tag 'g', kind 'expert') for the tasks that have a gold answer."""
    have = {e.task_id for e in _stored_gold(ctx, tasks)}
    scripts = []
    for t in tasks:
        # A stored gold episode is reused by id; skip working out its script (a JVM start).
        script = TurnScript([]) if t.id in have else gold_script(t, ctx.env_options)
        if script is not None:
            scripts.append((t, 0, script))
    return {e.task_id: e for e in replay(ctx, scripts, GOLD_MODEL, tag="g", kind="expert")}


def _stored_gold(ctx: PairContext, tasks: Sequence[Task]) -> list[Trajectory]:
    if ctx.store is None:
        return []
    ids = {f"{t.id}#r{ctx.round}#g0" for t in tasks}
    out = []
    for t in tasks:
        out += [
            e for e in ctx.store.episodes(task_id=t.id, round=ctx.round, kind="expert")
            if e.id in ids
        ]
    return out


class GoldChosen:
    """Chosen: the gold episode; rejected: the policy's failed episodes, worst first."""

    name = "gold"

    def __init__(self, **options: object) -> None:
        self.options: GoldOptions = validate_options(
            GoldOptions, dict(options), "strategies.gold.options"
        )

    def make_pairs(
        self, tasks: Sequence[Task], episodes: dict[str, list[Trajectory]], ctx: PairContext
    ) -> list[Pair]:
        todo = [t for t in select_tasks(tasks, self.options, ctx) if episodes.get(t.id)]
        gold = play_gold(ctx, todo)
        pairs: list[Pair] = []
        broken = 0
        for task in todo:
            g = gold.get(task.id)
            if g is None:
                continue
            if not is_valid(g) or g.outcome == "env_error":
                broken += 1
                log.debug("gold: %s gold episode failed its verifier (%s)", task.id, g.outcome)
                continue
            failed = [
                e
                for e in episodes[task.id]
                if g.score - e.score >= self.options.min_margin - 1e-12 and e.prompt == g.prompt
            ]
            failed.sort(key=lambda e: (e.score, e.sample_index))
            seen: set[str] = set()
            for e in failed:
                text = "\x00".join(m.content for m in e.continuation)
                if text in seen:
                    continue
                seen.add(text)
                pairs.append(make_pair(task, g, e, self.name, ctx.round))
                if len(seen) >= self.options.per_task:
                    break
        if broken:
            log.warning("gold: %d of %d gold episodes failed their own verifier", broken, len(gold))
        log.info("gold: %d pairs from %d tasks", len(pairs), len(todo))
        return finish(pairs, self.options, ctx)
