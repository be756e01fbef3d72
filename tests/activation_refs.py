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
    "silu": lambda x: x * torch.sigmoid(x),
    "relu6": lambda x: torch.clamp(x, 0, 6),
    "hardsigmoid": lambda x: torch.clamp(x + 3, 0, 6) / 6,
    "hardswish": lambda x: x * torch.clamp(x + 3, 0, 6) / 6,
    "gelu": lambda x, approximate: F.gelu(x, approximate="tanh" if approximate else "none"),
    "leaky_relu": lambda x, slope: torch.where(x >= 0, x, slope * x),
    "elu": lambda x, alpha: torch.where(x > 0, x, alpha * torch.expm1(x)),
    "softplus": lambda x, beta, threshold: torch.where(beta * x > threshold, x, torch.log1p(torch.exp(beta * x)) / beta),
    "mish": lambda x: x * torch.tanh(F.softplus(x)),
}
"""Activation name → reference f(x, *scalars)."""

SCALAR_VALUES = {"stanh": [(1.7159, 2 / 3), (0.5, 3.0)], "gelu": [("tanh",)], "leaky_relu": [(0.2,)], "elu": [(0.5,)],
                 "softplus": [(2.0, 1.0)]}
"""Scalar values (in `maths.scalars` order) each test tries, besides the op's defaults."""


def cases() -> list[tuple[str, tuple[float, ...]]]:
    """(activation, scalar values): the defaults, then SCALAR_VALUES."""
    out = []
    for op in activations():
        defaults = tuple(op.param(name).default for name in op.maths.scalars)  # type: ignore[union-attr]
        for values in dict.fromkeys([defaults, *SCALAR_VALUES.get(op.name, [])]):
            out.append((op.name, values))
    return out


def encoded(name: str, values: tuple) -> tuple[float, ...]:
    """Scalar values as numbers (a word such as gelu's `tanh` through the maths' codes)."""
    maths = REGISTRY[name].maths
    return tuple(maths.scalars_of(dict(zip(maths.scalars, values))).values())  # type: ignore[union-attr]


def reference(name: str, values: tuple):
    """The reference of activation `name` with its scalars bound: f(x)."""
    fn, numbers = REFERENCES[name], encoded(name, values)
    return lambda x: fn(x, *numbers)


def slots(name: str, values: tuple) -> dict[str, float]:
    """Scalar values as the fused epilogue's slots {"a": …, "s": …}."""
    return dict(zip(("a", "s"), encoded(name, values)))


def statements() -> list[str]:
    """Every case as a `.cnn` statement: `relu`, `stanh a=0.5 s=3.0` …"""
    out = []
    for name, values in cases():
        scalars = REGISTRY[name].maths.scalars  # type: ignore[union-attr]
        out.append(" ".join([name, *(f"{k}={v}" for k, v in zip(scalars, values))]))
    return out
