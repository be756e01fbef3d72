"""What an op is: `OpDef` (signature, shape rule, params, MACs, family, traits, maths) and the
argument types its parameters are checked with.

The op modules (`cnndsl/ir/ops/`) declare `OpDef`s with these; `cnndsl.ir.registry` collects
them. Nothing here imports torch or triton: backends own their lowering tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cnndsl.diagnostics import did_you_mean

Shape = tuple[int, ...]
Attrs = dict[str, Any]


class ShapeError(Exception):
    """A shape rule's refusal; elaboration turns it into a `CompileError` at the layer's span."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ArgError(Exception):
    """A bad argument value; `param` names the argument so the error can point at it."""

    def __init__(self, message: str, param: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.hint = hint


def fmt_shape(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def describe(value: Any) -> str:
    """A value as a user wrote it: `3x3` for a pair, `same` for a symbol."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "(" + ", ".join(describe(v) for v in value) + ")"
    return str(value)


# ---- argument types: each converts an elaborated value into a resolved attribute ------


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ArgError(f"{what} must be an integer, got {describe(v)}")
    if isinstance(v, float):
        if not v.is_integer():
            raise ArgError(f"{what} must be an integer, got {v:.4g}", hint="use `//` for whole-number division")
        v = int(v)
    return v


def pos_int(v: Any, what: str) -> int:
    n = _int(v, what)
    if n < 1:
        raise ArgError(f"{what} must be positive, got {n}")
    return n


def nonneg_int(v: Any, what: str) -> int:
    n = _int(v, what)
    if n < 0:
        raise ArgError(f"{what} must not be negative, got {n}")
    return n


def number(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ArgError(f"{what} must be a number, got {describe(v)}")
    return float(v)


def probability(v: Any, what: str) -> float:
    p = number(v, what)
    if not 0.0 <= p < 1.0:
        raise ArgError(f"{what} must be in [0, 1), got {p}")
    return p


def boolean(v: Any, what: str) -> bool:
    if isinstance(v, bool):
        return v
    if v in ("on", "yes"):
        return True
    if v in ("off", "no"):
        return False
    raise ArgError(f"{what} must be true or false, got {describe(v)}")


def pair(v: Any, what: str, check: Callable[[Any, str], int] = pos_int) -> tuple[int, int]:
    """An int (square) or a pair (h, w): kernels, strides, dilations."""
    if isinstance(v, tuple):
        if len(v) != 2:
            raise ArgError(f"{what} needs 1 or 2 sizes, got {len(v)} ({describe(v)})")
        return (check(v[0], what), check(v[1], what))
    n = check(v, what)
    return (n, n)


def pos_pair(v: Any, what: str) -> tuple[int, int]:
    return pair(v, what, pos_int)


def padding(v: Any, what: str) -> Any:
    """`same`, `valid`, an int or a pair; `same` is resolved against kernel and dilation."""
    if v in ("same", "valid"):
        return v
    if isinstance(v, str):
        raise ArgError(f"{what} must be an integer, a pair, `same` or `valid`, got `{v}`")
    return pair(v, what, nonneg_int)


def connection_table(v: Any, what: str) -> tuple[tuple[int, ...], ...]:
    """LeNet's partial connections: for each output map, the input maps it reads."""
    if not isinstance(v, tuple) or not v:
        raise ArgError(f"{what} must be a tuple of tuples of input channels, e.g. ((0, 1, 2), (1, 2, 3))")
    rows = []
    for row in v:
        row = row if isinstance(row, tuple) else (row,)
        idx = tuple(nonneg_int(i, what) for i in row)
        if not idx or len(set(idx)) != len(idx):
            raise ArgError(f"{what}: each output map needs distinct input channels, got {describe(row)}")
        rows.append(idx)
    return tuple(rows)


def choice(*options: str) -> Callable[[Any, str], str]:
    def convert(v: Any, what: str) -> str:
        if v not in options:
            raise ArgError(f"{what} must be one of {', '.join(options)}, got {describe(v)}")
        return v

    convert.symbols = options  # type: ignore[attr-defined]
    return convert


def symbols_of(convert: Callable) -> tuple[str, ...]:
    """The bare words an argument type accepts (`same`, `global`, `true`, …)."""
    if convert is boolean:
        return ("true", "false", "on", "off", "yes", "no")
    if convert is padding:
        return ("same", "valid")
    return getattr(convert, "symbols", ())


@dataclass(frozen=True)
class ParamSpec:
    """One argument of an op: `convert` checks and normalises the value."""

    name: str
    convert: Callable[[Any, str], Any]
    default: Any = None
    required: bool = False
    positional: bool = False
    doc: str = ""


def _no_params(attrs: Attrs, ins: list[Shape], out: Shape) -> int:
    return 0


FAMILIES = ("input", "conv", "dense", "activation", "normalisation", "pool", "merge", "view", "lenet", "fused")
"""The op families, in the order the op table of docs/LANGUAGE.md lists them."""

TRAITS = {
    "conv": "a convolution (weights out x in/groups x kh x kw): batch norm folds into it, epilogues fuse into it",
    "dense": "a fully connected layer (weights out x in): batch norm folds into it, epilogues fuse into it",
    "activation": "element-wise and parameter-free, with `maths`: fuses into a conv's or fc's epilogue and prologue",
    "elementwise": "each output element depends on the same input element only (the shape is kept)",
    "normalisation": "a per-channel affine map in eval mode, z·scale[c] + shift[c]: folds into the layer before",
    "pool": "a window reduction without weights",
    "merge": "joins two or more tensors",
    "view": "no arithmetic: the output is the input seen differently (flatten; dropout outside training)",
    "noop": "the identity at inference with nothing to learn (identity, drop_path): the pass drop_noops removes it",
    "fused": "made by a pass from several ops; a .cnn file cannot name it",
}
"""What passes and tools may ask of an op (`op.has(trait)`), instead of testing names."""


@dataclass(frozen=True)
class Maths:
    """An activation's formula, written once for every backend.

    `torch` is a PyTorch expression (names: `torch`, `F` for torch.nn.functional) and `triton`
    a Triton one on an fp32 block (`tl`), both in `x` and the op's attributes named in
    `scalars` (at most two, in order: the fused epilogue's two scalar slots, e.g. stanh's
    `a` and `s`).
    """

    torch: str
    triton: str
    scalars: tuple[str, ...] = ()
    codes: dict[str, dict[str, float]] = field(default_factory=dict)  # a word-valued scalar → its number

    def __post_init__(self) -> None:
        if len(self.scalars) > 2:
            raise ValueError("an activation has at most two scalar attributes (a, s)")

    def scalars_of(self, attrs: Attrs) -> dict[str, float]:
        """The attrs named by `scalars` as numbers (a word through `codes`: gelu's approximate=tanh → 1.0)."""
        return {name: self.codes[name][attrs[name]] if name in self.codes else float(attrs[name])
                for name in self.scalars}

    def scalar_values(self, attrs: Attrs) -> tuple[float, float]:
        """(a, s) for the epilogue: `scalars_of` in order, 1.0 where there are none."""
        return (*self.scalars_of(attrs).values(), 1.0, 1.0)[:2]  # type: ignore[return-value]


@dataclass(frozen=True)
class OpDef:
    """Everything the compiler knows about one operation kind."""

    name: str
    doc: str
    params: tuple[ParamSpec, ...]
    shape: Callable[[Attrs, list[Shape]], Shape]
    arity: int | None = 1  # None: two or more inputs
    param_count: Callable[[Attrs, list[Shape], Shape], int] = _no_params
    fixed_params: Callable[[Attrs, list[Shape], Shape], int] = _no_params
    macs: Callable[[Attrs, list[Shape], Shape], int] = _no_params
    connections: Callable[[Attrs, list[Shape], Shape], int] = _no_params  # LeCun's count (LeNet-5 tables)
    finalize: Callable[[Attrs], Attrs] | None = None
    user: bool = True  # callable by name from a .cnn file
    aliases: tuple[str, ...] = field(default=())
    family: str = "view"
    traits: frozenset[str] = frozenset()
    maths: Maths | None = None  # activations: the formula every backend lowers
    # docs/LANGUAGE.md's op table is generated from these (docs/gen_ops.py):
    doc_shape: str = "unchanged"  # the output shape, in words
    doc_params: str = "0"  # the trainable parameters, in words
    forms: tuple[str, ...] = ()  # other ways to write it, e.g. "maxpool global"

    def __post_init__(self) -> None:
        unknown = set(self.traits) - set(TRAITS)
        if unknown or self.family not in FAMILIES:
            raise ValueError(f"op {self.name!r}: unknown family {self.family!r} or traits {sorted(unknown)}")
        if ("activation" in self.traits) != (self.maths is not None):
            raise ValueError(f"op {self.name!r}: an activation (and only one) needs `maths`")
        object.__setattr__(self, "traits", frozenset(self.traits))

    def has(self, trait: str) -> bool:
        """Whether the op has `trait` (see TRAITS)."""
        if trait not in TRAITS:
            raise ValueError(f"unknown trait {trait!r}; traits are {', '.join(TRAITS)}")
        return trait in self.traits

    @property
    def positional(self) -> list[ParamSpec]:
        return [p for p in self.params if p.positional]

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)

    def bind(self, positional: list[Any], keywords: dict[str, Any]) -> Attrs:
        """Check and resolve arguments into attrs; raise `ArgError` naming the bad argument."""
        pos_specs = self.positional
        if len(positional) > len(pos_specs):
            expected = " ".join(p.name for p in pos_specs) or "no positional arguments"
            raise ArgError(
                f"{self.name} takes {len(pos_specs)} positional argument(s) ({expected}), got {len(positional)}",
                param=None,
            )
        attrs: Attrs = {}
        for spec, value in zip(pos_specs, positional):
            attrs[spec.name] = value
        for key, value in keywords.items():
            if self.param(key) is None:
                names = [p.name for p in self.params]
                raise ArgError(f"{self.name} has no argument `{key}`", param=key,
                               hint=did_you_mean(key, names) or f"{self.name} takes: {', '.join(names) or 'nothing'}")
            if key in attrs:
                raise ArgError(f"{self.name}: argument `{key}` given twice", param=key)
            attrs[key] = value
        out: Attrs = {}
        for spec in self.params:
            if spec.name in attrs:
                try:
                    out[spec.name] = spec.convert(attrs[spec.name], f"{self.name}: {spec.name}")
                except ArgError as err:
                    err.param = spec.name
                    raise
            elif spec.required:
                raise ArgError(f"{self.name} needs the argument `{spec.name}`{' (' + spec.doc + ')' if spec.doc else ''}")
            else:
                out[spec.name] = spec.default
        return self.finalize(out) if self.finalize else out


def conv_out(size: int, kernel: int, stride: int, pad_lo: int, pad_hi: int, dilation: int = 1, ceil: bool = False) -> int:
    """The output length of a sliding window (PyTorch's and Caffe's formula)."""
    span = dilation * (kernel - 1) + 1
    num = size + pad_lo + pad_hi - span
    if num < 0 and not ceil:
        return 0
    out = (-(-num // stride) if ceil else num // stride) + 1
    if ceil and (out - 1) * stride >= size + pad_lo:
        out -= 1  # the last window must start inside the input or its left padding
    return out


def require_map(op: str, ins: list[Shape]) -> tuple[int, int, int]:
    (shape,) = ins
    if len(shape) != 3:
        raise ShapeError(
            f"{op} needs a CxHxW feature map, got a flat tensor of {fmt_shape(shape)}",
            hint="feature-map layers must come before `flatten`/`fc`",
        )
    return shape  # type: ignore[return-value]
