"""Drop degenerate pairs: either side (its assistant text) shorter than the minimum."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agentpref.config import validate_options
from agentpref.filters.base import FilterContext
from agentpref.records import Message, Pair


class LengthOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_chars: int = Field(default=11, ge=0, description="Both sides must be at least this long.")
    max_chars: int | None = Field(default=None, ge=1, description="Optional upper bound.")


def assistant_text(messages: list[Message]) -> str:
    return "\n".join(m.content for m in messages if m.role == "assistant")


class LengthFilter:
    name = "length"

    def __init__(self, **options: object) -> None:
        self.options = validate_options(LengthOptions, dict(options), "filters.length.options")

    def check(self, pair: Pair, ctx: FilterContext) -> str | None:
        for side, msgs in (("chosen", pair.chosen), ("rejected", pair.rejected)):
            n = len(assistant_text(msgs).strip())
            if n < self.options.min_chars:
                return f"{side} too short ({n} < {self.options.min_chars} chars)"
            if self.options.max_chars is not None and n > self.options.max_chars:
                return f"{side} too long ({n} > {self.options.max_chars} chars)"
        return None
