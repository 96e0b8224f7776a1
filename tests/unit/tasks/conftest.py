"""Fixtures for the task tests: the shared reference data and a private cache folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SHARED_DATA = REPO.parent / "shared" / "data"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"the shared reference data ({path.name}) is not beside the project")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _need(SHARED_DATA)


@pytest.fixture(scope="session")
def spider_dir() -> Path:
    return _need(SHARED_DATA / "spider")


@pytest.fixture(autouse=True)
def private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Built-in and gretel databases go to a per-session temp cache, not the user's home."""
    root = tmp_path_factory.getbasetemp() / "agentpref-cache"
    monkeypatch.setenv("AGENTPREF_CACHE", str(root))
    yield root
