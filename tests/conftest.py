"""Shared fixtures: the repository's paths, and a small helper to compile inline programs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "zoo"

# Triton's interpreter must be chosen before any kernel is defined (the Triton backend's tests).
os.environ.setdefault("TRITON_INTERPRET", "1")
# The IR verifier runs after every optimisation pass in every test (cnndsl.passes.pipeline).
os.environ.setdefault("CNNDSL_VERIFY", "1")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--full", action="store_true",
                     help="tests/test_triton_zoo.py: every zoo network at its real input size and class count "
                          "(for a GPU machine, with TRITON_INTERPRET=0; hours under the interpreter)")
    parser.addoption("--variants", action="store_true",
                     help="tests/test_triton_zoo.py: run every modern zoo file under Triton, not one per family "
                          "(about an hour under the interpreter on 2 cores)")


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


@pytest.fixture
def run(capsys):
    """`cnndsl ARGS…` in-process → (exit status, stdout, stderr)."""
    from cnndsl import cli

    def call(*args: str) -> tuple[int, str, str]:
        status = cli.main([str(a) for a in args])
        out, err = capsys.readouterr()
        return status, out, err

    return call


def torch_reference(graph, seed: int = 0):
    """The graph's torch module in eval mode, with non-trivial norm statistics and scales, so
    that a transformation that mishandles them shows in the outputs."""
    import torch
    from torch import nn

    from cnndsl.backends.torch.lower import to_torch

    torch.manual_seed(seed)
    module = to_torch(graph)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.2)
            elif type(m).__name__ == "ChannelScale":
                m.weight.uniform_(0.5, 1.5)
                if m.bias is not None:
                    m.bias.normal_(0, 0.2)
    return module.eval()
