"""The registry's activations as torch functions: `FUNCTIONS[name](x, **scalars)`.

Each activation's `maths.torch` expression is turned into a function once, at import: an
expression that is a single call of a torch function on `x` (`torch.relu(x)`) is that
function, so the generated code reads `torch.relu(conv1)`; any other expression becomes a
module-level function named after the op (`stanh(x, a, s)`), importable by name, so
modules that call it still pickle. Both the plain lowering and the fused epilogues use
these functions: an activation is written once, in the registry.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
import torch.nn.functional as F

from cnndsl.ir.opdef import OpDef
from cnndsl.ir.registry import activations

Activation = Callable[..., torch.Tensor]


def _resolve(dotted: str) -> Activation | None:
    """`torch.relu` → torch.relu (names under `torch` or `F` only)."""
    root, *path = dotted.split(".")
    obj = {"torch": torch, "F": F}.get(root)
    for part in path:
        obj = getattr(obj, part, None)
    return obj if callable(obj) else None


def _build(op: OpDef) -> Activation:
    assert op.maths is not None
    expr, scalars = op.maths.torch, op.maths.scalars
    single = re.fullmatch(r"([A-Za-z_][\w.]*)\(x\)", expr)
    if single and not scalars and _resolve(single.group(1)) is not None:
        return _resolve(single.group(1))  # type: ignore[return-value]
    namespace: dict[str, object] = {"torch": torch, "F": F}
    params = "".join(f", {name}" for name in scalars)
    exec(f"def {op.name}(x{params}):\n    return {expr}\n", namespace)  # noqa: S102 - the registry's own formula
    fn = namespace[op.name]
    fn.__module__, fn.__qualname__ = __name__, op.name  # type: ignore[attr-defined]
    fn.__doc__ = f"{op.name}: {op.doc} ({expr})"
    globals()[op.name] = fn  # importable as cnndsl.backends.torch.activations.<name> (pickling)
    return fn  # type: ignore[return-value]


FUNCTIONS: dict[str, Activation] = {op.name: _build(op) for op in activations()}
"""Activation name → its torch function, called as fn(x, *scalars)."""

SCALARS: dict[str, int] = {op.name: len(op.maths.scalars) for op in activations()}  # type: ignore[union-attr]
"""Activation name → how many of the epilogue's scalar slots (a, s) it reads."""


def activate(x: torch.Tensor, kind: str, a: float = 1.0, s: float = 1.0) -> torch.Tensor:
    """Apply activation `kind` ("none" or a registry activation) with the epilogue's scalars (a, s)."""
    if kind == "none":
        return x
    try:
        fn = FUNCTIONS[kind]
    except KeyError:
        raise ValueError(f"unknown activation {kind!r}; expected none or one of {', '.join(FUNCTIONS)}") from None
    return fn(x, *(a, s)[: SCALARS[kind]])
