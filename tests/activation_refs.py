"""Independent references for the registry's activations, and the cases the tests draw from.

Each activation in `cnndsl/ir/ops/activation.py` needs an entry in REFERENCES (a test fails
without one): PyTorch's own implementation where it has one, so both backends' lowerings of
the registry's maths are checked against something written elsewhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnndsl.ir.registry import REGISTRY, activations

REFERENCES = {
    "relu": lambda x: F.relu(x),
    "sigmoid": lambda x: torch.sigmoid(x),
    "tanh": lambda x: torch.tanh(x),
    "stanh": lambda x, a, s: a * torch.tanh(s * x),
    "silu": lambda x: torch.nn.functional.silu(x),
}
"""Activation name → reference f(x, *scalars)."""

SCALAR_VALUES = {"stanh": [(1.7159, 2 / 3), (0.5, 3.0)]}
"""Scalar values (in `maths.scalars` order) each test tries, besides the op's defaults."""


def cases() -> list[tuple[str, tuple[float, ...]]]:
    """(activation, scalar values): the defaults, then SCALAR_VALUES."""
    out = []
    for op in activations():
        defaults = tuple(op.param(name).default for name in op.maths.scalars)  # type: ignore[union-attr]
        for values in dict.fromkeys([defaults, *SCALAR_VALUES.get(op.name, [])]):
            out.append((op.name, values))
    return out


def reference(name: str, values: tuple[float, ...]):
    """The reference of activation `name` with its scalars bound: f(x)."""
    fn = REFERENCES[name]
    return lambda x: fn(x, *values)


def slots(values: tuple[float, ...]) -> dict[str, float]:
    """Scalar values as the fused epilogue's slots {"a": …, "s": …}."""
    return dict(zip(("a", "s"), values))


def statements() -> list[str]:
    """Every case as a `.cnn` statement: `relu`, `stanh a=0.5 s=3.0` …"""
    out = []
    for name, values in cases():
        scalars = REGISTRY[name].maths.scalars  # type: ignore[union-attr]
        out.append(" ".join([name, *(f"{k}={v}" for k, v in zip(scalars, values))]))
    return out
