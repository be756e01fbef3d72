"""Fully connected layers, flattening, dropout, the ops that are the identity at inference, channel shuffle."""

from __future__ import annotations

import math

from cnndsl.ir.opdef import (
    Attrs,
    OpDef,
    ParamSpec,
    Shape,
    ShapeError,
    boolean,
    number,
    pos_int,
    probability,
    require_map,
)


def _fc_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    return (attrs["out"],)


def _fc_params(attrs: Attrs, ins: list[Shape], out: Shape) -> int:
    return math.prod(ins[0]) * out[0] + (out[0] if attrs["bias"] else 0)


def _fc_macs(attrs: Attrs, ins: list[Shape], out: Shape) -> int:
    return math.prod(ins[0]) * out[0]


FC = OpDef(
    name="fc",
    doc_shape="OUT; a C×H×W input is flattened first",
    doc_params="C·H·W·OUT (+ OUT with bias)",
    doc="fully connected layer; a CxHxW input is flattened first (as Caffe's InnerProduct): `fc 4096`",
    params=(
        ParamSpec("out", pos_int, required=True, positional=True, doc="output features"),
        ParamSpec("bias", boolean, True),
        ParamSpec("bias_init", number, None, doc="initial value of every bias (highway gates)"),
    ),
    shape=_fc_shape,
    param_count=_fc_params,
    macs=_fc_macs,
    connections=_fc_params,
    aliases=("linear",),
    family="dense", traits=frozenset({"dense"}),
)


def _flatten_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    return (math.prod(ins[0]),)


FLATTEN = OpDef(name="flatten", doc_shape="C·H·W", doc="flatten CxHxW into C·H·W features", params=(), shape=_flatten_shape, family="view", traits=frozenset({"view"}))


def _same(attrs: Attrs, ins: list[Shape]) -> Shape:
    return ins[0]


DROPOUT = OpDef(
    name="dropout",
    doc="dropout (active in training only): `dropout 0.5`",
    params=(ParamSpec("p", probability, 0.5, positional=True, doc="drop probability"),),
    shape=_same,
    family="view", traits=frozenset({"view", "elementwise"}),
)


IDENTITY = OpDef(
    name="identity",
    doc="y = x (nn.Identity): a placeholder, e.g. an optional layer switched off: `identity`",
    params=(),
    shape=_same,
    family="view", traits=frozenset({"view", "elementwise", "noop"}),
)
DROP_PATH = OpDef(
    name="drop_path",
    doc="stochastic depth (torchvision's StochasticDepth, mode=row): in training each sample's branch is "
    "zeroed with probability p and the others scaled by 1/(1 − p); the identity in eval: `drop_path 0.1`",
    params=(ParamSpec("p", probability, required=True, positional=True, doc="drop probability per sample"),),
    shape=_same,
    family="view", traits=frozenset({"view", "elementwise", "noop"}),
)


def _shuffle_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    c, _, _ = require_map("channel_shuffle", ins)
    g = attrs["groups"]
    if c % g:
        raise ShapeError(f"channel_shuffle: groups ({g}) must divide the channels ({c})",
                         hint="shuffle the output of a grouped conv with the same groups")
    return ins[0]


CHANNEL_SHUFFLE = OpDef(
    name="channel_shuffle",
    doc_shape="unchanged; needs C×H×W, groups dividing C",
    doc="ShuffleNet's channel shuffle: C = groups × C/groups channels transposed to C/groups × groups "
    "(torchvision's channel_shuffle): `channel_shuffle groups=2`",
    params=(ParamSpec("groups", pos_int, required=True, positional=True),),
    shape=_shuffle_shape,
    family="view", traits=frozenset(),
)
