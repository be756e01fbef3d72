"""Internal ops made by the IR passes (`cnndsl/passes`): a `.cnn` file cannot name them.

    fused_conv    conv + bias + act + (scale·z + residual) + post_act, in one kernel
    fused_fc      the same epilogue after a fully connected layer
    highway_conv  the H and T convolutions of a highway layer as one conv with 2·C outputs,
                  and the gate y = act(H)·gate_act(T) + carry·(1 − gate_act(T)) as its epilogue
    highway_fc    the same for fully connected highway layers
    slice         channels [start, stop) of its input (what horizontal 1x1 fusion leaves)

Epilogue of `fused_conv` / `fused_fc` (inputs: port 0 the layer's input, port 1 the residual
operand r when `residual` is not "none"):

    z = conv(x) + bias                          (bias only when `bias`)
    z = act(z)                                  act ∈ ACTS, with act_a, act_s for stanh
    z = scale·z + r                             residual = "add"
    z = scale·z + zeropad(r, out, res_stride)   residual = "zeropad": r is subsampled by
                                                res_stride (r[:, :, ::sh, ::sw]), channels ≥ r's are zero
    z = z·post_scale[c] + post_shift[c]         post_norm (fuse_post_norm: a bn after the add;
                                                weights `<node>.post_scale`, `.post_shift`, buffers)
    y = post_act(z)                             post_act ∈ ACTS, with post_a, post_s

where act(z) is none → z, or an activation of the registry (its maths), with (a, s) its
scalar attributes (stanh: a·tanh(s·z)). `fused` lists the names of the IR nodes the op absorbed (for reports).

Prologue of `fused_conv` (`pre = true`, made by fuse_prologue): before the convolution (and
its zero padding), x ← pre_act(x·pre_scale[c] + pre_shift[c]) per input channel c, with the
vectors in the weights as `<node>.pre_scale`, `<node>.pre_shift` (buffers, not parameters).

Input gate of `fused_conv` (`in_gate = true`, made by fuse_gate): its last input is a C_in×1×1
gate g (a squeeze-and-excitation branch's output) and the conv reads x·g[c] per sample and
input channel, so the gated map is never written: x ← x·g[n, c] as it is loaded, before the
prologue. `pre_fused` lists the absorbed `mul` too.

Weights (torch backend keys `<node>.weight`, `<node>.bias`) have PyTorch's layouts:
fused_conv (out, in/groups, kh, kw), fused_fc (out, in) with a CxHxW input flattened in C, H, W
order; highway_conv (2·out, in, kh, kw) and highway_fc (2·out, in), rows [0, out) H's and
[out, 2·out) T's, biases likewise. Shapes are C×H×W (batch left out), as everywhere in the IR.

Parameters and MACs are those of the conv/fc (the epilogue ops count 0 in the registry);
`highway_conv`/`highway_fc` count both layers (the one weight holds H's rows, then T's).
"""

from __future__ import annotations

from typing import Any

from cnndsl.ir.opdef import (
    ArgError,
    Attrs,
    OpDef,
    ParamSpec,
    Shape,
    ShapeError,
    boolean,
    choice,
    fmt_shape,
    nonneg_int,
    number,
    padding,
    pos_int,
    pos_pair,
)
from cnndsl.ir.ops import activation
from cnndsl.ir.ops.conv import CONV, resolve_padding
from cnndsl.ir.ops.dense import FC
from cnndsl.ir.ops.merge import ZEROPAD

ACTS = ("none", *(op.name for op in vars(activation).values() if isinstance(op, OpDef) and op.maths))
"""What an epilogue, prologue or gate slot may apply: none, or any activation of the registry."""
RESIDUALS = ("none", "add", "zeropad")


def _names(v: Any, what: str) -> tuple[str, ...]:
    if isinstance(v, str):
        return (v,)
    if not isinstance(v, (tuple, list)) or not all(isinstance(n, str) for n in v):
        raise ArgError(f"{what} must be a tuple of node names")
    return tuple(v)


_CONV_PARAMS = (
    ParamSpec("kernel", pos_pair, required=True, positional=True),
    ParamSpec("out", pos_int, required=True, positional=True),
    ParamSpec("stride", pos_pair, (1, 1)),
    ParamSpec("pad", padding, (0, 0)),
    ParamSpec("dilation", pos_pair, (1, 1)),
    ParamSpec("groups", pos_int, 1),
    ParamSpec("bias", boolean, True),
)
_FC_PARAMS = (
    ParamSpec("out", pos_int, required=True, positional=True),
    ParamSpec("bias", boolean, True),
)
_ACT = (
    ParamSpec("act", choice(*ACTS), "none", doc="activation right after the bias"),
    ParamSpec("act_a", number, 1.0, doc="stanh's A"),
    ParamSpec("act_s", number, 1.0, doc="stanh's S"),
)
_RESIDUAL = (
    ParamSpec("residual", choice(*RESIDUALS), "none", doc="what port 1 adds: none, add, zeropad"),
    ParamSpec("scale", number, 1.0, doc="multiplies the activated layer output before the residual is added"),
    ParamSpec("res_stride", pos_pair, (1, 1), doc="zeropad residual: subsampling of port 1"),
    ParamSpec("post_norm", boolean, False, doc="after the residual add: z·post_scale[c] + post_shift[c] (a bn)"),
    ParamSpec("post_act", choice(*ACTS), "none", doc="activation after the residual add"),
    ParamSpec("post_a", number, 1.0),
    ParamSpec("post_s", number, 1.0),
)
_GATE = (
    ParamSpec("gate_act", choice(*ACTS), "sigmoid", doc="the gate T's activation"),
    ParamSpec("gate_a", number, 1.0),
    ParamSpec("gate_s", number, 1.0),
)
_FUSED = (ParamSpec("fused", _names, (), doc="names of the absorbed IR nodes"),)
_PROLOGUE = (
    ParamSpec("pre", boolean, False, doc="apply pre_act(x·pre_scale + pre_shift) per input channel before the conv"),
    ParamSpec("pre_act", choice(*ACTS), "none", doc="the prologue's activation"),
    ParamSpec("pre_a", number, 1.0),
    ParamSpec("pre_s", number, 1.0),
    ParamSpec("pre_fused", _names, (), doc="names of the IR nodes the prologue (and the input gate) absorbed"),
    ParamSpec("in_gate", boolean, False, doc="the last input is a C_in×1×1 gate multiplied into x as it is loaded"),
)


def _conv_attrs(attrs: Attrs) -> Attrs:
    """The attrs the plain conv rules read."""
    return {**attrs, "table": None, "bias_init": None}


def _conv_finalize(attrs: Attrs) -> Attrs:
    return resolve_padding(attrs, "fused_conv")


def _check_residual(name: str, attrs: Attrs, ins: list[Shape], out: Shape) -> None:
    residual = attrs.get("residual", "none")
    if residual == "none":
        if len(ins) != 1:
            raise ShapeError(f"{name}: without a residual it takes one input, got {len(ins)}")
        return
    if len(ins) != 2:
        raise ShapeError(f"{name}: a residual needs a second input, got {len(ins)} input(s)")
    if residual == "add":
        if tuple(ins[1]) != tuple(out):
            raise ShapeError(f"{name}: the residual {fmt_shape(ins[1])} does not match the output {fmt_shape(out)}")
        return
    if len(ins[1]) != 3:
        raise ShapeError(f"{name}: a zeropad residual needs a CxHxW operand, got {fmt_shape(ins[1])}")
    padded = ZEROPAD.shape({"out": out[0], "stride": attrs["res_stride"]}, [ins[1]])
    if tuple(padded) != tuple(out):
        raise ShapeError(f"{name}: the zero-padded residual {fmt_shape(padded)} does not match the output {fmt_shape(out)}")


def _fused_conv_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    if not ins:
        raise ShapeError("fused_conv needs an input")
    if attrs.get("in_gate"):
        if len(ins) < 2:
            raise ShapeError("fused_conv: an input gate needs its gate as the last input")
        if len(ins[0]) != 3 or tuple(ins[-1]) != (ins[0][0], 1, 1):
            raise ShapeError(f"fused_conv: the input gate {fmt_shape(ins[-1])} must be {ins[0][0]}x1x1 "
                             f"for the input {fmt_shape(ins[0])}")
        ins = ins[:-1]
    out = CONV.shape(_conv_attrs(attrs), [ins[0]])
    _check_residual("fused_conv", attrs, ins, out)
    return out


FUSED_CONV = OpDef(
    name="fused_conv",
    doc="a convolution with its epilogue (bias, activation, scaled residual add, activation); "
    "port 1: the residual operand; the last port: the input gate (in_gate)",
    params=_CONV_PARAMS + _PROLOGUE + _ACT + _RESIDUAL + _FUSED,
    shape=_fused_conv_shape,
    arity=None,  # 1, 2 with a residual, one more with an input gate (never elaborated: user=False)
    param_count=lambda a, ins, out: CONV.param_count(_conv_attrs(a), ins[:1], out),
    macs=lambda a, ins, out: CONV.macs(_conv_attrs(a), ins[:1], out),
    finalize=_conv_finalize,
    user=False,
    family="fused", traits=frozenset({"conv", "fused"}),
)


def _fused_fc_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    if not ins:
        raise ShapeError("fused_fc needs an input")
    if attrs.get("residual", "none") == "zeropad":
        raise ShapeError("fused_fc: a zeropad residual needs a feature map")
    out = FC.shape(attrs, [ins[0]])
    _check_residual("fused_fc", attrs, ins, out)
    return out


FUSED_FC = OpDef(
    name="fused_fc",
    doc="a fully connected layer (a CxHxW input is flattened) with the epilogue of fused_conv",
    params=_FC_PARAMS + _ACT + _RESIDUAL + _FUSED,
    shape=_fused_fc_shape,
    arity=None,
    param_count=lambda a, ins, out: FC.param_count(a, ins[:1], out),
    macs=lambda a, ins, out: FC.macs(a, ins[:1], out),
    user=False,
    family="fused", traits=frozenset({"dense", "fused"}),
)


def _doubled(attrs: Attrs) -> Attrs:
    return {**attrs, "out": 2 * attrs["out"]}


def _check_carry(name: str, ins: list[Shape], out: Shape) -> None:
    if len(ins) != 2:
        raise ShapeError(f"{name} takes the layer input and the carried input, got {len(ins)} input(s)")
    if tuple(ins[1]) != tuple(out):
        raise ShapeError(f"{name}: the carried input {fmt_shape(ins[1])} does not match H(x) and T(x), {fmt_shape(out)}")


def _highway_conv_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    if attrs["groups"] != 1:
        raise ShapeError("highway_conv: grouped convolutions cannot be stacked along the output channels")
    out = CONV.shape(_conv_attrs(attrs), ins[:1])
    _check_carry("highway_conv", ins, out)
    return out


HIGHWAY_CONV = OpDef(
    name="highway_conv",
    doc="a convolutional highway layer: H and T convolutions stacked as one conv of 2·out channels "
    "(H's first), y = act(H)·gate_act(T) + carry·(1 − gate_act(T)); port 1: the carried x",
    params=_CONV_PARAMS + _ACT + _GATE + _FUSED,
    shape=_highway_conv_shape,
    arity=2,
    param_count=lambda a, ins, out: CONV.param_count(_conv_attrs(_doubled(a)), ins[:1], (2 * out[0], *out[1:])),
    macs=lambda a, ins, out: CONV.macs(_conv_attrs(_doubled(a)), ins[:1], (2 * out[0], *out[1:])),
    finalize=_conv_finalize,
    user=False,
    family="fused", traits=frozenset({"conv", "fused"}),
)


def _highway_fc_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    out = FC.shape(attrs, ins[:1])
    _check_carry("highway_fc", ins, out)
    return out


HIGHWAY_FC = OpDef(
    name="highway_fc",
    doc="a fully connected highway layer: H and T stacked as one fc of 2·out features, "
    "y = act(H)·gate_act(T) + carry·(1 − gate_act(T)); port 1: the carried x",
    params=_FC_PARAMS + _ACT + _GATE + _FUSED,
    shape=_highway_fc_shape,
    arity=2,
    param_count=lambda a, ins, out: FC.param_count(_doubled(a), ins[:1], (2 * out[0],)),
    macs=lambda a, ins, out: FC.macs(_doubled(a), ins[:1], (2 * out[0],)),
    user=False,
    family="fused", traits=frozenset({"dense", "fused"}),
)


def _slice_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    (shape,) = ins
    start, stop = attrs["start"], attrs["stop"]
    if not 0 <= start < stop <= shape[0]:
        raise ShapeError(f"slice: channels [{start}, {stop}) are not inside the {fmt_shape(shape)} input")
    return (stop - start, *shape[1:])


SLICE = OpDef(
    name="slice",
    doc="channels (features) [start, stop) of the input",
    params=(ParamSpec("start", nonneg_int, 0), ParamSpec("stop", pos_int, required=True)),
    shape=_slice_shape,
    user=False,
    family="fused",
    traits=frozenset({"fused"}),
)
