"""Normalisation and per-channel affine layers: batch norm, group and layer norm, LRN, channel-wise scale, layer scale."""

from __future__ import annotations

from cnndsl.ir.opdef import (
    ArgError,
    Attrs,
    OpDef,
    ParamSpec,
    Shape,
    ShapeError,
    boolean,
    number,
    pos_int,
    require_map,
)


def _same(attrs: Attrs, ins: list[Shape]) -> Shape:
    return ins[0]


def _per_channel(count: int):
    def params(attrs: Attrs, ins: list[Shape], out: Shape) -> int:
        return count * ins[0][0]

    return params


def _positive(v, what):
    x = number(v, what)
    if x <= 0:
        raise ArgError(f"{what} must be positive, got {x}")
    return x


BN = OpDef(
    name="bn",
    doc_shape="unchanged (C×H×W or flat)",
    doc_params="2·C (0 with affine=false; running statistics are not counted)",
    doc="batch normalisation over channels (scale and shift are trainable unless affine=false): "
    "`bn eps=1e-5 momentum=0.1`",
    params=(ParamSpec("eps", _positive, 1e-5), ParamSpec("momentum", number, 0.1),
            ParamSpec("affine", boolean, True, doc="learnt scale and shift (γ, β)")),
    shape=_same,
    param_count=lambda a, ins, out: 2 * ins[0][0] if a["affine"] else 0,
    aliases=("batchnorm",),
    family="normalisation", traits=frozenset({"normalisation", "elementwise"}),
)


def _lrn_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    require_map("lrn", ins)
    return ins[0]


LRN = OpDef(
    name="lrn",
    doc_shape="unchanged; needs C×H×W",
    doc="local response normalisation across channels (PyTorch/Caffe form: alpha is divided by size): "
    "`lrn 5 alpha=1e-4 beta=0.75 k=2`",
    params=(
        ParamSpec("size", pos_int, 5, positional=True, doc="neighbouring channels"),
        ParamSpec("alpha", number, 1e-4),
        ParamSpec("beta", number, 0.75),
        ParamSpec("k", number, 1.0),
    ),
    shape=_lrn_shape,
    family="normalisation", traits=frozenset(),
)


def _scale_params(attrs: Attrs, ins: list[Shape], out: Shape) -> int:
    return ins[0][0] * (2 if attrs["bias"] else 1)


SCALE = OpDef(
    name="scale",
    doc_params="C (+ C with bias)",
    doc="channel-wise scale (Caffe's Scale layer): y = x·γ_c (+ β_c); `scale bias=false`",
    params=(ParamSpec("bias", boolean, True),),
    shape=_same,
    param_count=_scale_params,
    family="normalisation", traits=frozenset({"normalisation", "elementwise"}),
)


LAYERSCALE = OpDef(
    name="layerscale",
    doc_shape="unchanged (C×H×W or flat)",
    doc_params="C",
    doc="learnable per-channel multiplier y = x·γ_c, γ starting at `init` (ConvNeXt's layer_scale, a C×1×1 "
    "parameter); folds into the conv before it: `layerscale init=1e-6`",
    params=(ParamSpec("init", number, 1e-6, doc="the initial value of every γ_c"),),
    shape=_same,
    param_count=_per_channel(1),
    family="normalisation", traits=frozenset({"normalisation", "elementwise"}),
)


def _affine_params(attrs: Attrs, ins: list[Shape], out: Shape) -> int:
    return 2 * ins[0][0] if attrs["affine"] else 0


def _groupnorm_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    c, g = ins[0][0], attrs["groups"]
    if c % g:
        raise ShapeError(f"groupnorm: groups ({g}) must divide the channels ({c})",
                         hint=f"use a divisor of {c}, e.g. groups={next(d for d in (32, 16, 8, 4, 2, 1) if c % d == 0)}")
    return ins[0]


GROUPNORM = OpDef(
    name="groupnorm",
    doc_shape="unchanged (C×H×W or flat); groups must divide C",
    doc_params="2·C (0 with affine=false)",
    doc="group normalisation (nn.GroupNorm): each sample's channels in `groups` groups, each normalised over "
    "its channels and grid: `groupnorm groups=32 eps=1e-5`",
    params=(ParamSpec("groups", pos_int, required=True, positional=True, doc="groups of channels"),
            ParamSpec("eps", _positive, 1e-5), ParamSpec("affine", boolean, True, doc="learnt scale and shift")),
    shape=_groupnorm_shape,
    param_count=_affine_params,
    family="normalisation", traits=frozenset(),
)
LAYERNORM = OpDef(
    name="layernorm",
    doc_shape="unchanged (C×H×W or flat)",
    doc_params="2·C (0 with affine=false)",
    doc="layer normalisation over the channels at each position of a C×H×W map (ConvNeXt's LayerNorm2d, "
    "which passes eps=1e-6), over the features of a flat tensor (nn.LayerNorm): `layernorm eps=1e-6`",
    params=(ParamSpec("eps", _positive, 1e-5), ParamSpec("affine", boolean, True, doc="learnt scale and shift")),
    shape=_same,
    param_count=_affine_params,
    family="normalisation", traits=frozenset(),
)
