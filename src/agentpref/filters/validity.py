"""Drop pairs whose chosen side is not valid: its SQL did not execute, its format was broken."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from agentpref.config import validate_options
from agentpref.filters.base import FilterContext
from agentpref.records import Pair


class ValidityOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChosenValidFilter:
    """Reads `valid` from the chosen side's reward breakdown (every environment sets it)."""

    name = "chosen-valid"

    def __init__(self, **options: object) -> None:
        validate_options(ValidityOptions, dict(options), "filters.chosen-valid.options")

    def check(self, pair: Pair, ctx: FilterContext) -> str | None:
        breakdown = (pair.provenance.get("chosen") or {}).get("breakdown") or {}
        if "valid" not in breakdown:
            return None
        if not breakdown["valid"]:
            why = breakdown.get("error") or breakdown.get("outcome") or "invalid"
            return f"chosen not valid: {str(why)[:120]}"
        return None
