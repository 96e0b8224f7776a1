"""Drop pairs whose chosen side does not beat the rejected side by the minimum margin."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agentpref.config import validate_options
from agentpref.filters.base import FilterContext
from agentpref.records import Pair


class MarginOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_margin: float = Field(default=0.1, ge=0.0)


class MarginFilter:
    name = "margin"

    def __init__(self, **options: object) -> None:
        self.options = validate_options(MarginOptions, dict(options), "filters.margin.options")

    def check(self, pair: Pair, ctx: FilterContext) -> str | None:
        if pair.margin < self.options.min_margin - 1e-12:
            return f"margin {pair.margin:.3f} < {self.options.min_margin}"
        return None
