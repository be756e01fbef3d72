"""Convolution: square or asymmetric kernels, stride, padding (same/valid), dilation, groups."""

from __future__ import annotations

from cnndsl.ir.registry import (
    ArgError,
    Attrs,
    OpDef,
    ParamSpec,
    Shape,
    ShapeError,
    boolean,
    conv_out,
    fmt_shape,
    number,
    padding,
    pos_int,
    pos_pair,
    register,
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
                hint="give the padding explicitly, e.g. pad=(0, 1)",
            )
        attrs["pad"] = (spans[0] // 2, spans[1] // 2)
    return attrs


def _finalize(attrs: Attrs) -> Attrs:
    return resolve_padding(attrs, "conv")


def _shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    c, h, w = require_map("conv", ins)
    groups, out = attrs["groups"], attrs["out"]
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


def _params(attrs: Attrs, ins: list[Shape], out: Shape) -> int:
    kh, kw = attrs["kernel"]
    weights = out[0] * (ins[0][0] // attrs["groups"]) * kh * kw
    return weights + (out[0] if attrs["bias"] else 0)


def _macs(attrs: Attrs, ins: list[Shape], out: Shape) -> int:
    kh, kw = attrs["kernel"]
    return out[0] * out[1] * out[2] * (ins[0][0] // attrs["groups"]) * kh * kw


CONV = register(
    OpDef(
        name="conv",
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
        ),
        shape=_shape,
        param_count=_params,
        macs=_macs,
        finalize=_finalize,
    )
)
