"""Element-wise activations and softmax (no parameters, shape preserved)."""

from __future__ import annotations

from cnndsl.ir.registry import Attrs, OpDef, Shape, register


def _same(attrs: Attrs, ins: list[Shape]) -> Shape:
    return ins[0]


RELU = register(OpDef(name="relu", doc="rectified linear unit max(x, 0)", params=(), shape=_same))
SIGMOID = register(OpDef(name="sigmoid", doc="logistic sigmoid 1 / (1 + e^-x)", params=(), shape=_same))
TANH = register(OpDef(name="tanh", doc="hyperbolic tangent", params=(), shape=_same))
SOFTMAX = register(OpDef(name="softmax", doc="softmax over the channel (feature) axis", params=(), shape=_same))
