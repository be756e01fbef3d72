"""Ops that join tensors (add, mul, concat, highway) and the graph's input and shortcut helpers."""

from __future__ import annotations

from cnndsl.ir.opdef import (
    Attrs,
    OpDef,
    ParamSpec,
    Shape,
    ShapeError,
    fmt_shape,
    number,
    pos_int,
    pos_pair,
    require_map,
)


def _input_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    return tuple(attrs["shape"])


INPUT = OpDef(name="input", doc="a network input", params=(ParamSpec("shape", lambda v, w: v),), shape=_input_shape, arity=0, user=False, family="input", traits=frozenset())


def _add_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    first = ins[0]
    for other in ins[1:]:
        if other != first:
            raise ShapeError(
                f"add needs equal shapes, got {' and '.join(fmt_shape(s) for s in ins)}",
                hint="a residual whose body changes the shape needs `shortcut=project` (or `zeropad`)",
            )
    return first


ADD = OpDef(
    name="add",
    doc_shape="all operands must have one shape; that shape",
    doc="element-wise sum of two or more tensors; `scale` multiplies the first (a scaled residual)",
    params=(ParamSpec("scale", number, 1.0),),
    shape=_add_shape,
    arity=None,
    family="merge", traits=frozenset({"merge", "elementwise"}),
)


def _mul_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    """Equal shapes, or C×1×1 gates broadcast over a C×H×W map (squeeze-and-excitation)."""
    full = max(ins, key=lambda s: (len(s) == 3 and s[1:] != (1, 1), len(s)))
    listed = " and ".join(fmt_shape(s) for s in ins)
    for other in ins:
        if other == full:
            continue
        if len(other) != len(full) or len(full) != 3 or other[1:] != (1, 1):
            raise ShapeError(f"mul needs equal shapes or a Cx1x1 gate over a CxHxW map, got {listed}",
                             hint="a gate is `avgpool global` followed by 1x1 convs: it keeps the Cx1x1 shape")
        if other[0] != full[0]:
            raise ShapeError(
                f"mul: a gate whose channels do not match: the gate has {other[0]} channels, the map {full[0]} "
                f"({listed})",
                hint=f"the gate's last layer must give the map's channels, e.g. `conv 1x1 {full[0]} -> sigmoid`")
    return full


MUL = OpDef(
    name="mul",
    doc_shape="equal shapes, or C×1×1 gates with a C×H×W map (either order); the map's shape",
    doc="element-wise product; a C×1×1 gate broadcasts over the map (squeeze-and-excitation): `mul @x @gate`",
    params=(),
    shape=_mul_shape,
    arity=None,
    family="merge", traits=frozenset({"merge"}),
)


def _concat_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    ranks = {len(s) for s in ins}
    if len(ranks) != 1:
        raise ShapeError(
            "concat needs operands of the same rank, got " + ", ".join(fmt_shape(s) for s in ins),
            hint="flatten all operands, or none",
        )
    grids = {tuple(s[1:]) for s in ins}
    if len(grids) != 1:
        raise ShapeError(
            "concat needs the same grid in every branch, got " + ", ".join(fmt_shape(s) for s in ins),
            hint="give each branch the same total stride and padding (e.g. pad=same)",
        )
    return (sum(s[0] for s in ins), *ins[0][1:])


CONCAT = OpDef(name="concat", forms=("concat { … }",), doc_shape="operands of one rank and one grid; channels (or features) summed", doc="concatenate along channels: `concat @a @b`, or `concat { … }` with one branch a line",
      params=(), shape=_concat_shape, arity=None, family="merge", traits=frozenset({"merge"}))


def _highway_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    h, t, x = ins
    if not h == t == x:
        raise ShapeError(
            f"highway needs H(x), T(x) and x of one shape, got H {fmt_shape(h)}, T {fmt_shape(t)}, x {fmt_shape(x)}",
            hint="the transform and the gate must keep the input's channels and grid",
        )
    return x


HIGHWAY = OpDef(
    name="highway",
    doc="highway gate y = H·T + x·(1 − T) of inputs (H, T, x)",
    params=(),
    shape=_highway_shape,
    arity=3,
    user=False,
    family="merge", traits=frozenset({"merge"}),
)


def _zeropad_shape(attrs: Attrs, ins: list[Shape]) -> Shape:
    c, h, w = require_map("zeropad shortcut", ins)
    sh, sw = attrs["stride"]
    out = attrs["out"]
    if out < c:
        raise ShapeError(f"zero-padding shortcut cannot shrink {c} channels to {out}", hint="use `shortcut=project`")
    return (out, (h + sh - 1) // sh, (w + sw - 1) // sw)


ZEROPAD = OpDef(
    name="zeropad",
    doc="parameter-free shortcut (ResNet option A): subsample by `stride`, pad channels with zeros to `out`",
    params=(ParamSpec("out", pos_int, required=True), ParamSpec("stride", pos_pair, (1, 1))),
    shape=_zeropad_shape,
    user=False,
    family="merge", traits=frozenset(),
)
