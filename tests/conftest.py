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


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread: tiny tensors run many times faster than on a contended thread pool."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
