"""The contamination guard: keep ALFWorld, TextWorld and AgentBench material out of training data.

`screen(text)` returns a Verdict. It recognises, without being given any benchmark data:
TextWorld banners; ALFWorld game paths, task-type folder names and trial ids; ALFWorld room
descriptions and household goals over ALFWorld's object and receptacle vocabulary (numbered
receptacles such as "countertop 1", goals such as "put a clean mug in coffeemachine");
ALFWorld-style commands over numbered receptacles; and AgentBench instruction wording for DB
Bench and ALFWorld. It also checks word n-gram overlap against blocklist files the user gives.
ScienceWorld tasks, SQL questions and ordinary prose stay clean: ScienceWorld's containers are
unnumbered (or are flower pots), and the DB Bench *protocol* (`Action: Operation`, the table
line) is not flagged, only the benchmark's own instruction sentences.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentpref.config import validate_options
from agentpref.errors import DataError
from agentpref.tasks.text import normalise, tokens

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """clean is False when any rule fired; reasons are rule codes, evidence the matched text."""

    clean: bool
    reasons: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)


# ALFWorld's receptacles (the things goals put objects in or on) and its movable objects.
RECEPTACLES = frozenset(
    """armchair bathtubbasin bed cabinet cart coffeemachine coffeetable countertop desk
    diningtable drawer dresser fridge garbagecan handtowelholder laundryhamper microwave
    ottoman safe shelf sidetable sinkbasin sofa stoveburner toaster toilet
    toiletpaperhanger towelholder""".split()
)
OBJECTS = frozenset(
    """alarmclock apple baseballbat basketball book bowl box bread butterknife candle cd
    cellphone cloth creditcard cup desklamp dishsponge egg floorlamp fork glassbottle handtowel
    houseplant kettle keychain knife ladle laptop lettuce mug newspaper pan papertowelroll pen
    pencil peppershaker pillow plate plunger pot potato remotecontrol saltshaker scrubbrush
    soapbar soapbottle spatula spoon spraybottle statue tennisracket tissuebox toiletpaper
    tomato towel vase watch wateringcan winebottle""".split()
)
# Words that are ALFWorld-specific on their own (run-together names English never writes).
_RUN_TOGETHER = sorted(
    w
    for w in RECEPTACLES | OBJECTS
    if w
    in {
        "bathtubbasin",
        "coffeemachine",
        "coffeetable",
        "diningtable",
        "garbagecan",
        "handtowelholder",
        "laundryhamper",
        "sidetable",
        "sinkbasin",
        "stoveburner",
        "toiletpaperhanger",
        "towelholder",
        "alarmclock",
        "baseballbat",
        "butterknife",
        "cellphone",
        "creditcard",
        "desklamp",
        "dishsponge",
        "floorlamp",
        "glassbottle",
        "handtowel",
        "houseplant",
        "keychain",
        "papertowelroll",
        "peppershaker",
        "remotecontrol",
        "saltshaker",
        "scrubbrush",
        "soapbar",
        "soapbottle",
        "spraybottle",
        "tennisracket",
        "tissuebox",
        "toiletpaper",
        "wateringcan",
        "winebottle",
    }
)

_REC = "|".join(sorted(RECEPTACLES))
_OBJ = "|".join(sorted(OBJECTS | RECEPTACLES))
_ADJ = r"(?:clean|hot|cool|cold|heated|cooled|washed)\s+"

_RULES: list[tuple[str, re.Pattern[str]]] = [
    (
        "textworld_banner",
        re.compile(
            r"welcome\s+to\s+textworld|textworld[,!]?\s+alfred|-=\s*welcome\s+to|"
            r"\$\$\\\s+\$\$\\|_{6,}\s+_{6,}\s+_{2,}\s+_{2,}",
            re.I,
        ),
    ),
    (
        "alfworld_path",
        re.compile(
            r"json_2\.1\.\d|game\.tw-pddl|traj_data\.json|"
            r"\b(?:pick_and_place_simple|pick_clean_then_place_in_recep|"
            r"pick_heat_then_place_in_recep|pick_cool_then_place_in_recep|"
            r"look_at_obj_in_light|pick_two_obj_and_place|pick_and_place_with_movable_recep)\b",
            re.I,
        ),
    ),
    ("alfworld_mention", re.compile(r"\balf_?world\b", re.I)),
    ("alfworld_trial_id", re.compile(r"\btrial_T\d{8}_\d{6}_\d+\b|\btrial_T20\d{6}", re.I)),
    (
        "alfworld_room",
        re.compile(
            r"you\s+are\s+in\s+the\s+middle\s+of\s+a\s+room\.?\s+looking\s+quickly\s+around\s+you",
            re.I,
        ),
    ),
    (
        "alfworld_goal",
        # ALFWorld goals name the receptacle bare ("in coffeemachine"), unlike English prose.
        re.compile(
            rf"\b(?:put|place)\s+(?:a|an|some|two)\s+(?:{_ADJ})?(?:{_OBJ})\s+"
            rf"(?:in|on|in/on)\s+(?:{_REC})\b"
            rf"|\b(?:clean|heat|cool)\s+(?:a|an|some|the)\s+(?:{_OBJ})\s+and\s+put\s+it\s+"
            rf"(?:in|on|in/on)\s+(?:{_REC})\b"
            rf"|\b(?:examine|look\s+at)\s+(?:(?:a|an|some|the)\s+)?(?:{_OBJ})\s+"
            rf"(?:with|under)\s+(?:a|the)\s+(?:desklamp|floorlamp)\b"
            rf"|\bfind\s+two\s+(?:{_OBJ})\s+and\s+put\s+them\s+(?:in|on|in/on)\s+"
            rf"(?:{_REC})\b",
            re.I,
        ),
    ),
    (
        "alfworld_action",
        re.compile(
            rf"\b(?:go\s+to|open|close)\s+(?:{_REC})\s+\d+\b"
            rf"|\b(?:take|put|move)\s+(?:{_OBJ})\s+\d+\s+(?:from|in|on|in/on|to)\s+(?:{_REC})\s+\d+\b"
            rf"|\b(?:heat|cool|clean)\s+(?:{_OBJ})\s+\d+\s+with\s+(?:{_REC})\s+\d+\b"
            rf"|\buse\s+(?:desklamp|floorlamp)\s+\d+\b",
            re.I,
        ),
    ),
]

# AgentBench instruction sentences, matched on normalised text (lowercase words only).
SIGNATURES: dict[str, list[str]] = {
    "agentbench_dbbench_instruction": [
        "help me operate a mysql database with sql to answer the question",
        "you have to explain the problem and your solution to me and write down your thoughts",
        "every round you can choose to operate or to answer",
        "you must put sql in markdown format without any other comments",
        "your sql should be in one line",
        "every time you can only execute one sql statement",
        "you must commit your final answer using the format like this",
    ],
    "agentbench_alfworld_instruction": [
        "interact with a household to solve a task",
        "imagine you are an intelligent agent in a household environment",
        "your target is to perform actions to complete the task goal",
        "you will be given a list of actions which you can choose one to perform in this turn",
        "you should choose from two actions thought or action",
        "the environment will give you immediate feedback based on which you plan your next",
        "that means the previous action is invalid and you should try more options",
    ],
}

_NUMBERED = re.compile(rf"\b({_REC})\s+(\d+)\b", re.I)


class GuardOptions(BaseModel):
    """Options of the guard (recipe: tasks.contamination)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Screen tasks before sampling.")
    blocklists: list[str] = Field(
        default_factory=list,
        description="Files of text to keep out: .txt (one item a line), .json or .jsonl.",
    )
    ngram: int = Field(default=8, ge=3, description="Word n-gram length for blocklist overlap.")
    min_matches: int = Field(
        default=1, ge=1, description="Shared n-grams that make an item contaminated."
    )
    min_line_words: int = Field(
        default=4, ge=1, description="Blocklist items shorter than this are ignored."
    )
    numbered_receptacles: int = Field(
        default=2, ge=1, description="Distinct numbered ALFWorld receptacles that flag a text."
    )


class ContaminationGuard:
    """Screens texts; holds the blocklist n-grams loaded once."""

    def __init__(self, options: GuardOptions | dict[str, Any] | None = None) -> None:
        opts: GuardOptions = (
            options
            if isinstance(options, GuardOptions)
            else validate_options(GuardOptions, options or {}, "tasks.contamination")
        )
        self.options = opts
        self._grams: dict[int, set[tuple[str, ...]]] = {}
        for path in opts.blocklists:
            for item in _blocklist_items(Path(path).expanduser()):
                self.add_blocklisted(item)

    def add_blocklisted(self, text: str) -> None:
        words = tokens(text)
        n = self.options.ngram
        if len(words) < self.options.min_line_words:
            return
        if len(words) < n:
            self._grams.setdefault(len(words), set()).add(tuple(words))
            return
        grams = self._grams.setdefault(n, set())
        for i in range(len(words) - n + 1):
            grams.add(tuple(words[i : i + n]))

    @property
    def blocklist_size(self) -> int:
        return sum(len(g) for g in self._grams.values())

    def screen(self, text: str) -> Verdict:
        reasons: list[str] = []
        evidence: list[str] = []
        for code, pattern in _RULES:
            m = pattern.search(text)
            if m:
                reasons.append(code)
                evidence.append(_clip(m.group(0)))
        numbered = {f"{r.lower()} {n}" for r, n in _NUMBERED.findall(text)}
        if len(numbered) >= self.options.numbered_receptacles:
            reasons.append("alfworld_receptacles")
            evidence.append(", ".join(sorted(numbered)[:4]))
        elif not reasons and _RUN_TOGETHER_RE.search(text) and _NUMBERED.search(text):
            reasons.append("alfworld_receptacles")
            evidence.append(_clip(_NUMBERED.search(text).group(0)))  # type: ignore[union-attr]
        norm = normalise(text)
        for code, phrases in SIGNATURES.items():
            hit = next((p for p in phrases if p in norm), None)
            if hit:
                reasons.append(code)
                evidence.append(hit)
        if self._grams:
            hits = self._blocklist_hits(norm.split())
            if hits:
                reasons.append("blocklist_overlap")
                evidence.append(f"{len(hits)} shared n-grams, e.g. {' '.join(hits[0])!r}")
        return Verdict(clean=not reasons, reasons=reasons, evidence=evidence)

    def _blocklist_hits(self, words: list[str]) -> list[tuple[str, ...]]:
        hits: list[tuple[str, ...]] = []
        for n, grams in self._grams.items():
            for i in range(len(words) - n + 1):
                g = tuple(words[i : i + n])
                if g in grams:
                    hits.append(g)
        return hits if len(hits) >= self.options.min_matches else []


_RUN_TOGETHER_RE = re.compile(r"\b(?:" + "|".join(_RUN_TOGETHER) + r")\b", re.I)


def _clip(text: str, n: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _blocklist_items(path: Path) -> Iterable[str]:
    if not path.is_file():
        raise DataError(
            f"contamination blocklist {str(path)!r} does not exist; "
            "fix tasks.contamination.blocklists"
        )
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".jsonl":
        for no, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                yield record_text(json.loads(line))
            except json.JSONDecodeError:
                raise DataError(
                    f"blocklist {path.name} line {no} is not valid JSON; fix or remove it"
                ) from None
    elif path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"blocklist {path.name} is not valid JSON ({exc.msg})") from None
        for item in data if isinstance(data, list) else [data]:
            yield record_text(item)
    else:
        yield from (line for line in text.splitlines() if line.strip())


def record_text(record: Any) -> str:
    """The text of a record: `text`, ShareGPT `conversations`, `messages`, or its strings."""
    if isinstance(record, str):
        return record
    if not isinstance(record, dict):
        return json.dumps(record, ensure_ascii=False)
    if isinstance(record.get("text"), str):
        return str(record["text"])
    for key in ("conversations", "messages"):
        turns = record.get(key)
        if isinstance(turns, list):
            return "\n".join(
                str(t.get("value", t.get("content", ""))) if isinstance(t, dict) else str(t)
                for t in turns
            )
    strings: list[str] = []
    _collect(record, strings)
    return "\n".join(strings)


def _collect(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _collect(v, out)
    elif isinstance(value, list):
        for v in value:
            _collect(v, out)


_DEFAULT: ContaminationGuard | None = None


def screen(text: str, guard: ContaminationGuard | None = None) -> Verdict:
    """Screen one text with `guard` (default: the built-in rules, no blocklists)."""
    global _DEFAULT
    if guard is None:
        if _DEFAULT is None:
            _DEFAULT = ContaminationGuard()
        guard = _DEFAULT
    return guard.screen(text)
