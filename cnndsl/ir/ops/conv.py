"""Convolution: square or asymmetric kernels, stride, padding (same/valid), dilation, groups."""

from __future__ import annotations

from cnndsl.ir.opdef import (
    ArgError,
    Attrs,
    OpDef,
    ParamSpec,
    Shape,
    ShapeError,
    boolean,
    connection_table,
    conv_out,
    fmt_shape,
    number,
    padding,
    pos_int,
    pos_pair,
    require_map,
)


def resolve_padding(attrs: Attrs, op: str) -> Attrs:
    """Turn `same`/`valid` into numbers: `same` keeps the grid at stride 1 (odd kernels)."""
    pad = attrs["pad"]
    kh, kw = attrs["kernel"]
    dh, dw = attrs.get("dilation", (1, 1))
    if pad == "valid":
        attrs["pad"] = (0, 0)
    elif pad == "same":
        spans = (dh * (kh - 1), dw * (kw - 1))
        if any(s % 2 for s in spans):
            raise ArgError(
                f"{op}: pad=same needs an odd kernel (got {kh}x{kw}); the padding would be lopsided",
                param="pad",
                hint="use an odd kernel, or give the padding as numbers (pad=0, pad=1, pad=(0, 1) …)",
            )
        attrs["pad"] = (spans[0] // 2, spans[1] // 2)
    return attrs


def _finalize(attrs: Attrs) -> Attrs:
    return resolve_padding(attrs, "conv")


def _shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    c, h, w = require_map("conv", ins)
    groups, out = attrs["groups"], attrs["out"]
    table = attrs.get("table")
    if table is not None:
        if groups != 1:
            raise ShapeError("conv: a connection table and groups cannot be combined")
        if len(table) != out:
            raise ShapeError(f"conv: the connection table has {len(table)} rows but the layer has {out} output channels")
        bad = sorted({i for row in table for i in row if i >= c})
        if bad:
            raise ShapeError(f"conv: the connection table reads input channel(s) {bad}, but the input has {c} (0..{c - 1})")
    if c % groups:
        raise ShapeError(f"conv: groups ({groups}) must divide the input channels ({c})")
    if out % groups:
        raise ShapeError(f"conv: groups ({groups}) must divide the output channels ({out})")
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = attrs["kernel"], attrs["stride"], attrs["pad"], attrs["dilation"]
    oh, ow = conv_out(h, kh, sh, ph, ph, dh), conv_out(w, kw, sw, pw, pw, dw)
    if oh < 1 or ow < 1:
        raise ShapeError(
            f"conv {kh}x{kw} (dilation {dh}x{dw}, padding {ph}x{pw}) does not fit the {fmt_shape(ins[0])} input",
            hint="use a smaller kernel, padding (pad=same), or fewer downsampling layers before this one",
        )
    return (out, oh, ow)


def _taps(attrs: Attrs, ins: list[Shape], out: Shape) -> int:
    """Weights per output position: the kernel times the input channels each output reads."""
    kh, kw = attrs["kernel"]
    table = attrs.get("table")
    fan_in = sum(len(row) for row in table) if table else out[0] * (ins[0][0] // attrs["groups"])
    return fan_in * kh * kw


def _params(attrs: Attrs, ins: list[Shape], out: Shape) -> int:
    return _taps(attrs, ins, out) + (out[0] if attrs["bias"] else 0)


def _macs(attrs: Attrs, ins: list[Shape], out: Shape) -> int:
    return _taps(attrs, ins, out) * out[1] * out[2]


def _connections(attrs: Attrs, ins: list[Shape], out: Shape) -> int:
    return _params(attrs, ins, out) * out[1] * out[2]


CONV = OpDef(
    name="conv",
    doc_shape="OUT × (⌊(H + 2p − d·(k−1) − 1) / s⌋ + 1) × (the same for W); needs C×H×W; groups must divide C and OUT",
    doc_params="OUT·(C/groups)·k_h·k_w, or Σ rows·k_h·k_w with a table (+ OUT with bias)",
    doc="2-D convolution: `conv 3x3 64 /2 pad=same dilation=1 groups=1 bias=true`",
    params=(
        ParamSpec("kernel", pos_pair, required=True, positional=True, doc="kernel size, e.g. 3x3 or 1x7"),
        ParamSpec("out", pos_int, required=True, positional=True, doc="output channels"),
        ParamSpec("stride", pos_pair, (1, 1)),
        ParamSpec("pad", padding, (0, 0)),
        ParamSpec("dilation", pos_pair, (1, 1)),
        ParamSpec("groups", pos_int, 1),
        ParamSpec("bias", boolean, True),
        ParamSpec("bias_init", number, None, doc="initial value of every bias (highway gates)"),
        ParamSpec("table", connection_table, None, doc="LeNet's partial connections: input channels per output"),
    ),
    shape=_shape,
    param_count=_params,
    macs=_macs,
    connections=_connections,
    finalize=_finalize,
    family="conv", traits=frozenset({"conv"}),
)
