"""What the kernel tests share: NHWC/NCHW permutes, seeded inputs, dtype rounding and the
tolerance check against an fp32 reference."""

import inspect
import os
from collections.abc import Iterable
from typing import Any

import pytest
import torch

from cnndsl.backends.triton import _common
from cnndsl.backends.triton.conv import _conv_igemm_kernel

TOL = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 6e-2}
DTYPES = [torch.float32, torch.float16]


def nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous()


def nchw(t):
    return t.permute(0, 3, 1, 2)


def close(got, ref, dtype):
    """Compare a kernel result (any dtype) with an fp32 reference, relative to the reference's scale."""
    tol = TOL[dtype]
    got = got.float()
    assert got.shape == ref.shape, (got.shape, ref.shape)
    err = (got - ref).abs().max().item() if ref.numel() else 0.0
    scale = max(1.0, ref.abs().max().item())
    assert err <= tol * scale, f"max error {err:.3g} > {tol:g}·{scale:.3g}"


def rel(got, want) -> float:
    """max |got − want| / max |want|: how far a network's output is from its reference."""
    got, want = got.float().cpu(), want.float().cpu()
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-6)).item()


def rnd(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


def q(t, dtype):
    """t rounded to dtype and back: the exact values the kernel sees, for an fp32 reference."""
    return t.to(dtype).float()


@pytest.fixture
def interpreted():
    """The kernel tests run on CPU tensors under TRITON_INTERPRET=1 (conftest.py sets it)."""
    if not _common.is_interpreted(_conv_igemm_kernel):
        pytest.skip("these tests run the kernels under TRITON_INTERPRET=1 (set by conftest.py)")


def interpret_env() -> bool:
    """Whether ``TRITON_INTERPRET`` is set in the environment now."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def missing_constexprs(kernel: Any, constexprs: Iterable[str]) -> list[str]:
    """Names of `kernel`'s constexpr parameters that `constexprs` leaves out (for the spec tests)."""
    params = inspect.signature(getattr(kernel, "fn", kernel)).parameters
    wanted = [n for n, p in params.items() if "constexpr" in str(p.annotation)]
    return [n for n in wanted if n not in set(constexprs)]
