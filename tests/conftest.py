"""Shared fixtures: where the project's ``shared/`` folder (Polyaxon reference material) lives."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def shared_dir() -> Path:
    """``../shared`` next to the repository; tests that need it skip when it is absent."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"the shared reference folder is absent ({SHARED_DIR})")
    return SHARED_DIR
