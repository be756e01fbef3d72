"""Compile-time expressions: arithmetic, comparisons, conditions, built-in functions and shapes.

Everything a `.cnn` expression can compute is computed here, while the network is elaborated:
parameters, sizes (`3x3`, with components `k.h`, `k.w`), words (`same`), booleans, and the
shapes of tensors (`in.c`, `@x.h`). A tensor itself is never a number; only its shape is
visible to expressions, so the IR stays a plain graph of layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from cnndsl.diagnostics import CompileError, Span, did_you_mean
from cnndsl.syntax import ast

CONSTANTS: dict[str, Any] = {"true": True, "false": False}

# larger numbers are certainly a mistake, and the bound keeps arithmetic cheap; the
# elaborator sets it from its `Limits` for the duration of one compilation
NUMBER_LIMIT: ContextVar[int] = ContextVar("number_limit", default=10**12)

INCOMING = "in"  # the name of a block's incoming value: `@in`, `in.c`


@dataclass(frozen=True)
class RefValue:
    """An `@name` argument: a tensor, wired explicitly."""

    name: str
    span: Span


@dataclass(frozen=True)
class Tensor:
    """What an expression may know of a tensor: its name and its shape (C or C×H×W)."""

    name: str
    shape: tuple[int, ...]


class Unknown(CompileError):
    """An expression that reads the shape of a tensor whose own statement failed.

    That failure was reported already; this one carries no diagnostic of its own, so a
    single mistake gives a single message.
    """

    def __init__(self) -> None:
        super().__init__([])

    def __str__(self) -> str:
        return "a shape that is unknown after an earlier error"


class UnknownName(CompileError):
    """A name that is neither a parameter, a loop index in reach, a constant nor a word."""

    def __init__(self, name: str, span: Span, hint: str | None) -> None:
        super().__init__(f"unknown name `{name}`", span, hint=hint)
        self.name = name


# `Tensors(name, span)` resolves a tensor's name (`in`, or `x` of `@x`) for shape introspection
Tensors = Callable[[str, Span], Tensor]


def _check_size(value: Any, span: Span) -> Any:
    limit = NUMBER_LIMIT.get()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise CompileError(f"number {value} is not finite", span)
        if abs(value) > limit:
            raise CompileError(f"number {value:g} is too large (the `number` limit is {limit:g}; "
                               "raise it with --limit number=N)", span)
    return value


def whole_numbers(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Whole-number floats (`1e1`, `8.0`) as ints where a count or a size is wanted, as LANGUAGE.md
    promises; anything else is left for the caller to reject."""
    return tuple(int(v) if isinstance(v, float) and v.is_integer() else v for v in values)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def kind(v: Any) -> str:
    """How a value is named in an error message."""
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, tuple):
        return "sizes " + "x".join(str(x) for x in v)
    if isinstance(v, RefValue):
        return f"the tensor @{v.name}"
    if isinstance(v, Tensor):
        return f"the tensor `{v.name}` (use its shape: `{v.name}.c`)"
    if isinstance(v, str):
        return f"the word `{v}`"
    if is_number(v):
        return f"the number {v:g}"
    return type(v).__name__


def _arith(op: str, a: Any, b: Any, span: Span) -> Any:
    for v in (a, b):
        if not is_number(v):
            hint = None
            if op == "-" and isinstance(a, tuple):
                hint = "between arguments, `a -b` reads as a subtraction; write a negative number as `(-b)`"
            elif isinstance(v, tuple) and len(v) in (2, 3):
                hint = "take one component: `k.h`, `k.w`" + (" or `s.c`" if len(v) == 3 else "")
            raise CompileError(f"`{op}` needs numbers, got {kind(v)}", span, hint=hint)
    if op == "+":
        r = a + b
    elif op == "-":
        r = a - b
    elif op == "*":
        r = a * b
    else:
        if b == 0:
            raise CompileError("division by zero", span)
        if op == "/":
            r = a / b
        elif op == "//":
            r = a // b
        else:
            r = a % b
    return _check_size(r, span)


_ORDER = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def _compare(op: str, a: Any, b: Any, span: Span) -> bool:
    if op in ("==", "!="):
        same_kind = (is_number(a) and is_number(b)) or type(a) is type(b)
        if not same_kind or isinstance(a, (RefValue, Tensor)):
            raise CompileError(f"`{op}` compares values of one kind, got {kind(a)} and {kind(b)}", span,
                               hint="compare a tensor by its shape: `in.c == out`" if isinstance(a, (RefValue, Tensor))
                               or isinstance(b, (RefValue, Tensor)) else None)
        return (a == b) if op == "==" else (a != b)
    for v in (a, b):
        if not is_number(v):
            raise CompileError(f"`{op}` needs numbers, got {kind(v)}", span)
    return _ORDER[op](a, b)


def boolean(v: Any, span: Span, what: str) -> bool:
    """V as a condition: only `true`/`false` and comparisons are conditions, never numbers."""
    if not isinstance(v, bool):
        hint = "compare it: `x != 0`" if is_number(v) else "a condition is a comparison (`a == b`, `in.c > 64`) or true/false"
        raise CompileError(f"{what} must be a boolean, got {kind(v)}", span, hint=hint)
    return v


# ---- shapes and sizes --------------------------------------------------------------------

_TENSOR_PARTS = {"c": 0, "h": 1, "w": 2}


def _attribute(value: Any, attr: str, span: Span, what: str) -> int:
    if isinstance(value, Tensor):
        parts = ("c",) if len(value.shape) == 1 else ("c", "h", "w")
        if attr not in parts:
            hint = did_you_mean(attr, parts) or f"a tensor of shape {_shape(value.shape)} has: " + ", ".join(
                f".{p}" for p in parts)
            raise CompileError(f"`{what}` has no `.{attr}`", span, hint=hint)
        return value.shape[_TENSOR_PARTS[attr]]
    if isinstance(value, tuple) and len(value) in (2, 3) and all(is_number(v) for v in value):
        parts = ("h", "w") if len(value) == 2 else ("c", "h", "w")
        if attr not in parts:
            raise CompileError(f"sizes {kind(value)[6:]} have no `.{attr}`", span,
                               hint="their components: " + ", ".join(f".{p}" for p in parts))
        return value[parts.index(attr)]
    raise CompileError(f"`.{attr}` needs a tensor (`in`, `@x`) or sizes (`3x3`), got {kind(value)}", span)


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


# ---- built-in functions ------------------------------------------------------------------


def make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """torchvision's `_make_divisible`: V rounded to a multiple of DIVISOR, never 10% below V."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


@dataclass(frozen=True)
class Builtin:
    fn: Callable[..., Any]
    arity: tuple[int, int]  # the least and the most arguments
    doc: str


BUILTINS: dict[str, Builtin] = {
    "min": Builtin(min, (2, 64), "the least of two or more numbers: `min(a, b)`"),
    "max": Builtin(max, (2, 64), "the greatest of two or more numbers: `max(a, b)`"),
    "round": Builtin(lambda x: int(round(x)), (1, 1), "the nearest whole number, halves to even as in Python: `round(2.5)` is 2"),
    "floor": Builtin(math.floor, (1, 1), "the whole number at or below: `floor(2.7)` is 2"),
    "ceil": Builtin(math.ceil, (1, 1), "the whole number at or above: `ceil(2.1)` is 3 (depth multipliers)"),
    "abs": Builtin(abs, (1, 1), "the magnitude: `abs(-3)` is 3"),
    "make_divisible": Builtin(make_divisible, (2, 3),
                              "torchvision's `_make_divisible(v, divisor, min_value=divisor)`: v rounded to the "
                              "nearest multiple of divisor, at least min_value, never more than 10% below v"),
}


def _call(expr: ast.FuncCall, args: list[Any]) -> Any:
    builtin = BUILTINS.get(expr.func)
    if builtin is None:
        raise CompileError(f"unknown function `{expr.func}`", expr.span,
                           hint=did_you_mean(expr.func, BUILTINS) or "functions: " + ", ".join(sorted(BUILTINS)))
    least, most = builtin.arity
    if not least <= len(args) <= most:
        count = str(least) if least == most else f"{least} to {most}" if most < 64 else f"{least} or more"
        raise CompileError(f"`{expr.func}` takes {count} argument{'s' if most > 1 else ''}, got {len(args)}",
                           expr.span, hint=builtin.doc)
    for a, node in zip(args, expr.args):
        if not is_number(a):
            raise CompileError(f"`{expr.func}` needs numbers, got {kind(a)}", node.span, hint=builtin.doc)
    if expr.func == "make_divisible" and (not isinstance(args[1], int) or args[1] < 1):
        raise CompileError(f"make_divisible: the divisor must be a whole number ≥ 1, got {args[1]}", expr.args[1].span)
    return _check_size(builtin.fn(*args), expr.span)


# ---- the evaluator -----------------------------------------------------------------------


def evaluate(expr: ast.Expr, env: dict[str, Any], symbols: tuple[str, ...] = (),
             tensors: Tensors | None = None) -> Any:
    """Evaluate an expression; bare words in `symbols` (`same`, `global`…) stand for themselves.

    TENSORS resolves the tensors that shape introspection names (`in.c`, `@x.h`); without it
    (network parameters, `--set` values) no tensor is in reach.
    """
    def ev(e: ast.Expr) -> Any:
        return evaluate(e, env, symbols, tensors)

    if isinstance(expr, ast.Num):
        return _check_size(expr.value, expr.span)
    if isinstance(expr, ast.Dims):
        for v in expr.values:
            _check_size(v, expr.span)
        return tuple(expr.values)
    if isinstance(expr, ast.Name):
        if expr.id in env:
            return env[expr.id]
        if expr.id in CONSTANTS:
            return CONSTANTS[expr.id]
        if expr.id in symbols:
            return expr.id
        if expr.id == INCOMING:
            return _tensor(INCOMING, expr.span, tensors)
        known = set(env) | set(symbols)
        hint = did_you_mean(expr.id, known)
        if hint is None and symbols:
            hint = "expected a parameter or one of: " + ", ".join(symbols)
        raise UnknownName(expr.id, expr.span, hint)
    if isinstance(expr, ast.Ref):
        return RefValue(expr.id, expr.span)
    if isinstance(expr, ast.Str):
        return expr.value
    if isinstance(expr, ast.TupleExpr):
        return tuple(ev(item) for item in expr.items)
    if isinstance(expr, ast.Neg):
        v = ev(expr.operand)
        if not is_number(v):
            raise CompileError(f"`-` needs a number, got {kind(v)}", expr.span)
        return -v
    if isinstance(expr, ast.BinOp):
        return _arith(expr.op, ev(expr.left), ev(expr.right), expr.span)
    if isinstance(expr, ast.Attr):
        value = ev(expr.value)
        what = f"@{value.name}" if isinstance(value, RefValue) else getattr(value, "name", "")
        if isinstance(value, RefValue):
            value = _tensor(value.name, expr.value.span, tensors)
        return _attribute(value, expr.attr, expr.span, what)
    if isinstance(expr, ast.FuncCall):
        return _call(expr, [ev(a) for a in expr.args])
    if isinstance(expr, ast.Compare):
        return _compare(expr.op, ev(expr.left), ev(expr.right), expr.span)
    if isinstance(expr, ast.Not):
        return not boolean(ev(expr.operand), expr.operand.span, "the operand of `not`")
    if isinstance(expr, ast.BoolOp):
        left = boolean(ev(expr.left), expr.left.span, f"the left side of `{expr.op}`")
        if left == (expr.op == "or"):  # short-circuit: `stride == 1 and in.c == out` needs no shape when stride is 2
            return left
        return boolean(ev(expr.right), expr.right.span, f"the right side of `{expr.op}`")
    raise CompileError("cannot evaluate this expression", expr.span)


def _tensor(name: str, span: Span, tensors: Tensors | None) -> Tensor:
    if tensors is None:
        what = "`in`" if name == INCOMING else f"`@{name}`"
        raise CompileError(f"{what} is a tensor; a parameter's value cannot depend on one", span)
    return tensors(name, span)
