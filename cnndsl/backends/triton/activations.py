"""The registry's activations as one Triton device function: `activation(x, ACT, alpha, beta)`.

Its source is generated from each activation's `maths.triton` expression (the op's scalar
attributes become the `alpha`, `beta` slots every epilogue passes), one constexpr branch per
activation, so a new activation in the registry is fused into every conv and fc epilogue
and prologue with no edit here. The source is registered with `linecache` under a
pseudo-file name, which is where Triton (and `inspect`) read a jit function's source from.
"""

from __future__ import annotations

import linecache
import re

import triton
import triton.language as tl

from cnndsl.ir.registry import activations

ACTIVATIONS: dict[str, int] = {"none": 0, **{op.name: code for code, op in enumerate(activations(), start=1)}}
"""Activation names → the constexpr codes of `activation` (0: none; then the registry's order)."""

SOURCE_FILE = "<cnndsl.backends.triton.activations: generated>"


def act_code(name: str) -> int:
    """The constexpr code of activation `name` (ValueError for one the registry lacks)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}") from None


def _expression(expr: str, scalars: tuple[str, ...]) -> str:
    """`expr` with the op's scalar attributes renamed to the slots, in one substitution."""
    slots = dict(zip(scalars, ("alpha", "beta")))
    if not slots:
        return expr
    names = "|".join(re.escape(n) for n in slots)
    return re.sub(rf"(?<![\w.])({names})(?!\w)", lambda m: slots[m.group(1)], expr)


def source() -> str:
    """The generated Python source of `activation`."""
    lines = [
        "def activation(x, ACT: tl.constexpr, alpha, beta):",
        '    """Apply activation code ACT (see ACTIVATIONS) to an fp32 block; alpha, beta: its scalars."""',
    ]
    for op in activations():
        assert op.maths is not None
        keyword = "if" if ACTIVATIONS[op.name] == 1 else "elif"
        lines.append(f"    {keyword} ACT == {ACTIVATIONS[op.name]}:  # {op.name}")
        lines.append(f"        x = {_expression(op.maths.triton, op.maths.scalars)}")
    lines.append("    return x")
    return "\n".join(lines) + "\n"


def _define() -> object:
    text = source()
    linecache.cache[SOURCE_FILE] = (len(text), None, text.splitlines(keepends=True), SOURCE_FILE)
    namespace: dict[str, object] = {"tl": tl, "triton": triton, "__name__": __name__}
    exec(compile(text, SOURCE_FILE, "exec"), namespace)  # noqa: S102 - the registry's own formulas
    return triton.jit(namespace["activation"])


activation = _define()
