from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def spider_dir() -> Path:
    path = SHARED_DATA / "spider"
    if not (path / "dev.json").is_file():
        pytest.skip("the shared Spider data is not beside the project")
    return path
