"""Drop pairs the LLM judge prefers the other way round (both orders agreed on "rejected")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agentpref.config import validate_options
from agentpref.filters.base import FilterContext
from agentpref.records import Pair


class JudgeFilterOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    drop_inconsistent: bool = Field(
        default=False, description="Also drop pairs on which the two orders disagreed."
    )
    drop_unjudged: bool = Field(default=False, description="Also drop pairs never judged.")


class JudgeFilter:
    """Reads FilterContext.judgements (pair id -> Judgement)."""

    name = "judge"

    def __init__(self, **options: object) -> None:
        self.options: JudgeFilterOptions = validate_options(
            JudgeFilterOptions, dict(options), "filters.judge.options"
        )

    def check(self, pair: Pair, ctx: FilterContext) -> str | None:
        j = ctx.judgements.get(pair.id)
        if j is None:
            return "not judged" if self.options.drop_unjudged else None
        if j.verdict == "rejected":
            return f"judge {j.judge} prefers the rejected side in both orders"
        if j.verdict == "inconsistent" and self.options.drop_inconsistent:
            return f"judge {j.judge} inconsistent ({j.first}/{j.second})"
        return None
