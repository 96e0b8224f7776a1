"""The policy contract: turn a batch of conversations into n completions each."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from agentpref.records import Completion, Message, SamplingParams


@runtime_checkable
class Policy(Protocol):
    """A generation backend plus a model (and optional LoRA adapter)."""

    name: str
    """Model id (plus adapter) recorded as provenance on every episode."""

    def generate(
        self, conversations: list[list[Message]], sampling: SamplingParams
    ) -> list[list[Completion]]:
        """`sampling.n` completions for each conversation, in order."""
        ...

    def template_hash(self) -> str:
        """Hash of the chat template used to render prompts ('' when not applicable)."""
        ...

    def close(self) -> None: ...


def make_policy(config: Any) -> Policy:
    """Build a policy from a PolicyConfig (backend, model, adapter, options)."""
    from agentpref.config import PolicyConfig
    from agentpref.registry import lookup

    if not isinstance(config, PolicyConfig):
        config = PolicyConfig.model_validate(config)
    cls = lookup("policy", config.backend)
    policy: Policy = cls(model=config.model, adapter=config.adapter, **config.options)
    return policy
