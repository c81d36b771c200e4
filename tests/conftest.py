"""Shared fixtures: the outside world's data in ../shared/data, and quick regtest chains."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def load_shared(name: str) -> Any:
    """Load a JSON file of ../shared/data; a missing file fails the test (never skips it)."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.fail(f"{path} is missing: the shared data must sit beside the repository")
    return json.loads(path.read_text())
