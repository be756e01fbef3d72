"""The layers of LeNet-5 (LeCun et al., 1998) that later networks dropped: trainable
subsampling and the Euclidean RBF output layer (its scaled tanh is an activation)."""

from __future__ import annotations

from cnndsl.ir.opdef import (
    Attrs,
    OpDef,
    ParamSpec,
    Shape,
    ShapeError,
    conv_out,
    fmt_shape,
    pos_int,
    pos_pair,
    require_map,
)


def _subsample_finalize(attrs: Attrs) -> Attrs:
    if attrs["stride"] is None:
        attrs["stride"] = attrs["kernel"]
    return attrs


def _subsample_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    c, h, w = require_map("subsample", ins)
    (kh, kw), (sh, sw) = attrs["kernel"], attrs["stride"]
    oh, ow = conv_out(h, kh, sh, 0, 0), conv_out(w, kw, sw, 0, 0)
    if oh < 1 or ow < 1:
        raise ShapeError(f"subsample {kh}x{kw} does not fit the {fmt_shape(ins[0])} input")
    return (c, oh, ow)


def _subsample_connections(attrs: Attrs, ins: list[Shape], out: Shape) -> int:
    kh, kw = attrs["kernel"]
    return (kh * kw + 1) * out[0] * out[1] * out[2]


SUBSAMPLE = OpDef(
    name="subsample",
    doc_shape="C × (⌊(H − k) / s⌋ + 1) × (W alike); needs C×H×W",
    doc_params="2·C",
    doc="LeNet's trainable subsampling: each window's sum times a per-channel coefficient, plus a "
    "per-channel bias (2 parameters a channel): `subsample 2x2`",
    params=(
        ParamSpec("kernel", pos_pair, (2, 2), positional=True, doc="window"),
        ParamSpec("stride", pos_pair, None, doc="defaults to the window"),
    ),
    shape=_subsample_shape,
    param_count=lambda attrs, ins, out: 2 * ins[0][0],
    connections=_subsample_connections,
    finalize=_subsample_finalize,
    family="lenet", traits=frozenset(),
)

def _rbf_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    if len(ins[0]) != 1:
        raise ShapeError(f"rbf needs flat features, got {fmt_shape(ins[0])}", hint="put `flatten` or an fc layer before it")
    return (attrs["out"],)


RBF = OpDef(
    name="rbf",
    doc_shape="OUT; needs flat features",
    doc_params="N·OUT fixed, not trained (N input features)",
    doc="Euclidean RBF output units y_i = Σ_j (x_j − w_ij)² with fixed ±1 codes (not trained): `rbf 10`",
    params=(ParamSpec("out", pos_int, required=True, positional=True, doc="output units (classes)"),),
    shape=_rbf_shape,
    fixed_params=lambda attrs, ins, out: ins[0][0] * out[0],
    connections=lambda attrs, ins, out: ins[0][0] * out[0],
    family="lenet", traits=frozenset(),
)
