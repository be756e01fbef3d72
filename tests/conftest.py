"""Shared fixtures: the repository's paths, and a small helper to compile inline programs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "zoo"

# Triton's interpreter must be chosen before any kernel is defined (the Triton backend's tests).
os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def zoo() -> Path:
    return ZOO
