"""Element-wise activations (each with its maths for every backend) and softmax.

An activation is one `OpDef` with `maths`: the torch backend, the fused epilogues of both
backends, the passes, the drawing, fmt and the fuzzers all take it from here. Adding one
means adding an entry below (and its tests); nothing else has to change.
"""

from __future__ import annotations

from cnndsl.ir.opdef import Attrs, Maths, OpDef, ParamSpec, Shape, number

ACTIVATION = frozenset({"activation", "elementwise"})


def _same(attrs: Attrs, ins: list[Shape]) -> Shape:
    return ins[0]


RELU = OpDef(name="relu", doc="rectified linear unit max(x, 0)", params=(), shape=_same,
             family="activation", traits=ACTIVATION, maths=Maths("torch.relu(x)", "tl.maximum(x, 0.0)"))
SIGMOID = OpDef(name="sigmoid", doc="logistic sigmoid 1 / (1 + e^-x)", params=(), shape=_same,
                family="activation", traits=ACTIVATION, maths=Maths("torch.sigmoid(x)", "tl.sigmoid(x)"))
TANH = OpDef(name="tanh", doc="hyperbolic tangent", params=(), shape=_same,
             family="activation", traits=ACTIVATION, maths=Maths("torch.tanh(x)", "2.0 * tl.sigmoid(2.0 * x) - 1.0"))
SILU = OpDef(name="silu", doc="sigmoid-weighted linear unit x·σ(x) (SiLU, also called Swish): `silu`", params=(),
             shape=_same, aliases=("swish",), family="activation", traits=ACTIVATION,
             maths=Maths("F.silu(x)", "x * tl.sigmoid(x)"))
STANH = OpDef(
    name="stanh",
    doc="LeNet's scaled tanh A·tanh(S·x), A = 1.7159 and S = 2/3 by default: `stanh a=1.7159 s=0.6667`",
    params=(ParamSpec("a", number, 1.7159), ParamSpec("s", number, 2 / 3)),
    shape=_same,
    family="activation",
    traits=ACTIVATION,
    maths=Maths("a * torch.tanh(s * x)", "a * (2.0 * tl.sigmoid((2.0 * s) * x) - 1.0)", scalars=("a", "s")),
)
SOFTMAX = OpDef(name="softmax", doc_shape="unchanged (over the channel/feature axis)", doc="softmax over the channel (feature) axis", params=(), shape=_same,
                family="activation")
