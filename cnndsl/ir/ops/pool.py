"""Max and average pooling (overlapping windows, ceil mode, padding, global) and upsampling."""

from __future__ import annotations

from cnndsl.ir.opdef import (
    ArgError,
    Attrs,
    OpDef,
    ParamSpec,
    Shape,
    ShapeError,
    boolean,
    choice,
    conv_out,
    fmt_shape,
    padding,
    pos_pair,
    require_map,
)
from cnndsl.ir.ops.conv import resolve_padding


def _window(v, what):
    if v == "global":
        return "global"
    if isinstance(v, str):
        raise ArgError(f"{what} must be a size like 3x3 or `global`, got `{v}`")
    return pos_pair(v, what)


_window.symbols = ("global",)  # type: ignore[attr-defined]


def _make(name: str, doc: str, doc_shape: str, extra: tuple[ParamSpec, ...] = ()) -> OpDef:
    def finalize(attrs: Attrs) -> Attrs:
        if attrs["adaptive"] and attrs["kernel"] != "global":
            if attrs["stride"] is not None or attrs["pad"] != (0, 0) or attrs["ceil"]:
                raise ArgError(f"{name}: an adaptive pooling takes its output size only (no stride, pad or ceil)",
                               param="adaptive")
            attrs["stride"] = attrs["kernel"]
            return attrs
        if attrs["kernel"] == "global":
            ignored = [p for p, unset in (("stride", attrs["stride"] is None), ("pad", attrs["pad"] == (0, 0)),
                                          ("ceil", not attrs["ceil"])) if not unset]
            if ignored:
                raise ArgError(f"{name} global takes no {ignored[0]}: it pools the whole map to 1x1",
                               param=ignored[0], hint=f"write `{name} global`, or give a window: `{name} 3x3 /2`")
            attrs["stride"], attrs["pad"] = (1, 1), (0, 0)
            return attrs
        if attrs["stride"] is None:
            attrs["stride"] = attrs["kernel"]
        attrs = resolve_padding(attrs, name)
        kh, kw = attrs["kernel"]
        ph, pw = attrs["pad"]
        if ph * 2 > kh or pw * 2 > kw:
            raise ArgError(f"{name}: padding ({ph}x{pw}) must be at most half the window ({kh}x{kw})", param="pad")
        return attrs

    def shape(attrs: Attrs, ins: list[Shape]) -> Shape:
        c, h, w = require_map(name, ins)
        if attrs["kernel"] == "global":
            return (c, 1, 1)
        if attrs["adaptive"]:
            return (c, *attrs["kernel"])
        (kh, kw), (sh, sw), (ph, pw) = attrs["kernel"], attrs["stride"], attrs["pad"]
        ceil = attrs["ceil"]
        oh, ow = conv_out(h, kh, sh, ph, ph, 1, ceil), conv_out(w, kw, sw, pw, pw, 1, ceil)
        if oh < 1 or ow < 1:
            raise ShapeError(
                f"{name} {kh}x{kw} does not fit the {fmt_shape(ins[0])} input",
                hint="use a smaller window or `global`, or downsample less before this layer",
            )
        return (c, oh, ow)

    return OpDef(
        name=name,
        doc=doc,
        params=(
            ParamSpec("kernel", _window, required=True, positional=True, doc="window, e.g. 3x3, or global"),
            ParamSpec("stride", pos_pair, None, doc="defaults to the window size"),
            ParamSpec("pad", padding, (0, 0)),
            ParamSpec("ceil", boolean, False, doc="round the output size up (Caffe)"),
            ParamSpec("adaptive", boolean, False, doc="the size is the output grid (PyTorch's adaptive pooling)"),
            *extra,
        ),
        shape=shape,
        finalize=finalize,
        doc_shape=doc_shape,
        forms=(f"{name} global",),
        family="pool",
        traits=frozenset({"pool"}),
    )


MAXPOOL = _make("maxpool", "max pooling: `maxpool 3x3 /2 pad=1 ceil=true`, `maxpool global`, "
                "`maxpool 4x4 adaptive=true` (a 4x4 output whatever the input)",
                "C × (⌊(H + 2p − k) / s⌋ + 1) × (W alike); `global`: C×1×1; `adaptive=true`: C×KERNEL; needs C×H×W")
AVGPOOL = _make(
    "avgpool",
    "average pooling: `avgpool 5x5 /3`, `avgpool global` (global average pooling), "
    "`avgpool 4x4 adaptive=true` (a 4x4 output whatever the input), "
    "`count_pad=false` leaves the padding out of the average",
    "as `maxpool`",
    (ParamSpec("count_pad", boolean, True, doc="count padded zeros in the average (PyTorch's count_include_pad)"),),
)


def _upsample_finalize(attrs: Attrs) -> Attrs:
    if attrs["mode"] == "nearest" and attrs["align_corners"]:
        raise ArgError("upsample: align_corners applies to mode=bilinear only", param="align_corners",
                       hint="drop align_corners, or write mode=bilinear")
    return attrs


def _upsample_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    c, h, w = require_map("upsample", ins)
    sh, sw = attrs["scale"]
    return (c, h * sh, w * sw)


UPSAMPLE = OpDef(
    name="upsample",
    doc_shape="C × H·s × W·s; needs C×H×W",
    doc="upsampling by an integer factor (nn.Upsample): `upsample 2` (nearest), "
    "`upsample 2 mode=bilinear align_corners=true`",
    params=(
        ParamSpec("scale", pos_pair, required=True, positional=True, doc="factor, e.g. 2 or 2x1"),
        ParamSpec("mode", choice("nearest", "bilinear"), "nearest"),
        ParamSpec("align_corners", boolean, False, doc="bilinear: corner pixels aligned (PyTorch's align_corners)"),
    ),
    shape=_upsample_shape,
    finalize=_upsample_finalize,
    family="pool",
)
