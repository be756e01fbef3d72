"""Element-wise activations (each with its maths for every backend), PReLU and softmax.

An activation is one `OpDef` with `maths`: the torch backend, the fused epilogues of both
backends, the passes, the drawing, fmt and the fuzzers all take it from here. Adding one
means adding an entry below (and its tests); nothing else has to change.
"""

from __future__ import annotations

from cnndsl.ir.opdef import Attrs, Maths, OpDef, ParamSpec, Shape, boolean, choice, number

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
RELU6 = OpDef(name="relu6", doc="ReLU clipped at 6, min(max(x, 0), 6) (MobileNetV2): `relu6`", params=(), shape=_same,
              family="activation", traits=ACTIVATION, maths=Maths("F.relu6(x)", "tl.minimum(tl.maximum(x, 0.0), 6.0)"))
HARDSIGMOID = OpDef(name="hardsigmoid", doc="relu6(x + 3) / 6, a piecewise-linear sigmoid (MobileNetV3): `hardsigmoid`",
                    params=(), shape=_same, family="activation", traits=ACTIVATION,
                    maths=Maths("F.hardsigmoid(x)", "tl.minimum(tl.maximum(x + 3.0, 0.0), 6.0) / 6.0"))
HARDSWISH = OpDef(name="hardswish", doc="x·relu6(x + 3) / 6 (MobileNetV3): `hardswish`", params=(), shape=_same,
                  family="activation", traits=ACTIVATION,
                  maths=Maths("F.hardswish(x)", "x * (tl.minimum(tl.maximum(x + 3.0, 0.0), 6.0) / 6.0)"))
GELU = OpDef(
    name="gelu",
    doc="Gaussian error linear unit x·Φ(x) (ConvNeXt); `approximate=tanh` uses the tanh approximation: `gelu`",
    params=(ParamSpec("approximate", choice("none", "tanh"), "none", doc="none: exact (erf); tanh: the approximation"),),
    shape=_same,
    family="activation",
    traits=ACTIVATION,
    maths=Maths('F.gelu(x, approximate="tanh" if approximate else "none")',
                "tl.where(approximate > 0.5, 0.5 * x * (2.0 * tl.sigmoid(1.5957691216057308 * (x + 0.044715 * x * x * x)))"
                ", 0.5 * x * (1.0 + tl.erf(x * 0.7071067811865476)))",
                scalars=("approximate",), codes={"approximate": {"none": 0.0, "tanh": 1.0}}),
)
LEAKY_RELU = OpDef(
    name="leaky_relu",
    doc="max(x, 0) + slope·min(x, 0): `leaky_relu slope=0.1`",
    params=(ParamSpec("slope", number, 0.01, doc="the slope for x < 0"),),
    shape=_same,
    family="activation",
    traits=ACTIVATION,
    maths=Maths("F.leaky_relu(x, slope)", "tl.where(x >= 0.0, x, slope * x)", scalars=("slope",)),
)
ELU = OpDef(
    name="elu",
    doc="x for x > 0, alpha·(eˣ − 1) otherwise: `elu alpha=1.0`",
    params=(ParamSpec("alpha", number, 1.0),),
    shape=_same,
    family="activation",
    traits=ACTIVATION,
    maths=Maths("F.elu(x, alpha)", "tl.where(x > 0.0, x, alpha * (tl.exp(tl.minimum(x, 0.0)) - 1.0))",
                scalars=("alpha",)),
)
SOFTPLUS = OpDef(
    name="softplus",
    doc="log(1 + e^(beta·x)) / beta, x itself where beta·x > threshold (as PyTorch): `softplus beta=1 threshold=20`",
    params=(ParamSpec("beta", number, 1.0), ParamSpec("threshold", number, 20.0)),
    shape=_same,
    family="activation",
    traits=ACTIVATION,
    maths=Maths("F.softplus(x, beta, threshold)",
                "tl.where(beta * x > threshold, x, tl.log(1.0 + tl.exp(tl.minimum(beta * x, threshold))) / beta)",
                scalars=("beta", "threshold")),
)
MISH = OpDef(name="mish", doc="x·tanh(softplus(x)): `mish`", params=(), shape=_same, family="activation", traits=ACTIVATION,
             maths=Maths("F.mish(x)",
                         "x * (2.0 * tl.sigmoid(2.0 * tl.where(x > 20.0, x, tl.log(1.0 + tl.exp(tl.minimum(x, 20.0)))))"
                         " - 1.0)"))
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


def _prelu_params(attrs: Attrs, ins: list[Shape], out: Shape) -> int:
    return ins[0][0] if attrs["channels"] else 1


PRELU = OpDef(
    name="prelu",
    doc_params="1, or C with channels=true",
    doc="parametric ReLU max(x, 0) + a·min(x, 0) with a learnt slope a (nn.PReLU), one for all channels or one "
    "per channel; not fused (its slope is a weight): `prelu channels=true init=0.25`",
    params=(ParamSpec("channels", boolean, False, doc="one slope per channel"),
            ParamSpec("init", number, 0.25, doc="the initial slope")),
    shape=_same,
    param_count=_prelu_params,
    family="activation", traits=frozenset({"elementwise"}),
)
