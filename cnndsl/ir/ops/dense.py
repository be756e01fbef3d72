"""Fully connected layers (and the per-position linear layer), flattening, dropout, the ops that are the
identity at inference, channel shuffle and channel slices."""

from __future__ import annotations

import math

from cnndsl.ir.opdef import (
    Attrs,
    OpDef,
    ParamSpec,
    Shape,
    ShapeError,
    boolean,
    fmt_shape,
    nonneg_int,
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


def _channel_linear_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    return (attrs["out"], *ins[0][1:])


def _channel_linear_params(attrs: Attrs, ins: list[Shape], out: Shape) -> int:
    return ins[0][0] * out[0] + (out[0] if attrs["bias"] else 0)


CHANNEL_LINEAR = OpDef(
    name="channel_linear",
    doc_shape="OUT×H×W (OUT for a flat input)",
    doc_params="C·OUT (+ OUT with bias)",
    doc="a linear layer over the channels at each position, weights shaped [OUT, C] like nn.Linear "
    "(ConvNeXt's MLP in channels-last form, so its weights load as they are); a conv 1x1 by another "
    "layout: `channel_linear 384`",
    params=(
        ParamSpec("out", pos_int, required=True, positional=True, doc="output channels"),
        ParamSpec("bias", boolean, True),
    ),
    shape=_channel_linear_shape,
    param_count=_channel_linear_params,
    macs=lambda a, ins, out: ins[0][0] * math.prod(out),
    connections=lambda a, ins, out: ins[0][0] * math.prod(out) + (math.prod(out) if a["bias"] else 0),
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


def _channel_slice_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    (shape,) = ins
    start, stop = attrs["start"], attrs["stop"]
    if not start < stop <= shape[0]:
        raise ShapeError(
            f"channel_slice: channels {start} to {stop} are not a range inside the {shape[0]} channels of the "
            f"{fmt_shape(shape)} input (start < stop <= channels)",
            hint="halves of a block's input: `channel_slice 0 in.c // 2` and `channel_slice in.c // 2 in.c`")
    return (stop - start, *shape[1:])


CHANNEL_SLICE = OpDef(
    name="channel_slice",
    doc_shape="(STOP − START)×H×W; needs START < STOP ≤ C",
    doc="channels START … STOP − 1 of the input (x[:, start:stop]; ShuffleNetV2's split into halves is "
    "`channel_slice 0 in.c // 2` and `channel_slice in.c // 2 in.c`): `channel_slice 0 58`",
    params=(
        ParamSpec("start", nonneg_int, required=True, positional=True, doc="first channel"),
        ParamSpec("stop", pos_int, required=True, positional=True, doc="one past the last channel"),
    ),
    shape=_channel_slice_shape,
    family="view", traits=frozenset({"view"}),
)
