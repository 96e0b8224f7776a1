"""Shared fixtures: keep this file small."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The embedded default model (SmolLM2-135M-Instruct), converted once into the cache."""
    from agentpref.policies.models import resolve_model

    path = resolve_model("default")
    assert isinstance(path, Path)
    return path
