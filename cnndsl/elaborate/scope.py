"""Names and values during elaboration: hierarchical scopes and expression evaluation."""

from __future__ import annotations

import keyword
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from cnndsl.diagnostics import CompileError, Span, did_you_mean
from cnndsl.syntax import ast

CONSTANTS: dict[str, Any] = {"true": True, "false": False}

# Names a layer or scope cannot take: Python keywords (they appear in generated code) and the
# attributes every PyTorch module has (a submodule of that name would shadow them).
RESERVED = frozenset(keyword.kwlist) | {
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile",
    "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer",
    "get_extra_state", "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia",
    "named_buffers", "named_children", "named_modules", "named_parameters", "parameters", "register_backward_hook",
    "register_buffer", "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook",
    "register_module", "register_parameter", "register_state_dict_post_hook", "register_state_dict_pre_hook",
    "requires_grad_", "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train",
    "training", "type", "xpu", "zero_grad", "code", "graph",
}
# larger numbers are certainly a mistake, and the bound keeps arithmetic cheap; the
# elaborator sets it from its `Limits` for the duration of one compilation
NUMBER_LIMIT: ContextVar[int] = ContextVar("number_limit", default=10**12)


@dataclass(frozen=True)
class RefValue:
    """An `@name` argument: a tensor, wired explicitly."""

    name: str
    span: Span


@dataclass
class Scope:
    """One level of hierarchical names: `layer1.0` inside `layer1` inside the network.

    A numbered scope (`seq { … }`, a labelled repetition) names its children 0, 1, 2 …
    like `nn.Sequential`; any other scope names them by kind and count: conv1, conv2, bn1.
    """

    prefix: str
    numbered: bool = False
    counters: Counter = field(default_factory=Counter)
    used: set[str] = field(default_factory=set)

    def child(self, base: str, label: str | None, span: Span) -> str:
        if label is not None:
            if label in RESERVED or label.startswith("_"):
                raise CompileError(f"`{label}` cannot name a layer: PyTorch modules use that name themselves",
                                   span, hint="choose another label, e.g. `{label}_` or `my_{label}`".replace(
                                       "{label}", label.lstrip("_")))
            if label in self.used:
                where = f" in `{self.prefix}`" if self.prefix else ""
                raise CompileError(f"the name `{label}` is used twice{where}", span, hint="give each layer a unique label")
            name = label
        elif self.numbered:
            while str(self.counters["#"]) in self.used:
                self.counters["#"] += 1
            name = str(self.counters["#"])
            self.counters["#"] += 1
        else:
            while True:
                self.counters[base] += 1
                name = f"{base}{self.counters[base]}"
                if name not in self.used:
                    break
        self.used.add(name)
        return f"{self.prefix}.{name}" if self.prefix else name


def _check_size(value: Any, span: Span) -> Any:
    limit = NUMBER_LIMIT.get()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > limit:
        raise CompileError(f"number {value:g} is too large (the `number` limit is {limit:g}; "
                           "raise it with --limit number=N)", span)
    return value


def _arith(op: str, a: Any, b: Any, span: Span) -> Any:
    for v in (a, b):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            hint = None
            if op == "-" and isinstance(a, tuple):
                hint = "between arguments, `a -b` reads as a subtraction; write a negative number as `(-b)`"
            raise CompileError(f"`{op}` needs numbers, got {_kind(v)}", span, hint=hint)
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


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, tuple):
        return "sizes " + "x".join(str(x) for x in v)
    if isinstance(v, RefValue):
        return f"the tensor @{v.name}"
    if isinstance(v, str):
        return f"the word `{v}`"
    return type(v).__name__


def evaluate(expr: ast.Expr, env: dict[str, Any], symbols: tuple[str, ...] = ()) -> Any:
    """Evaluate an expression; bare words in `symbols` (`same`, `global`…) stand for themselves."""
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
        known = set(env) | set(symbols)
        hint = did_you_mean(expr.id, known)
        if hint is None and symbols:
            hint = "expected a parameter or one of: " + ", ".join(symbols)
        raise CompileError(f"unknown name `{expr.id}`", expr.span, hint=hint)
    if isinstance(expr, ast.Ref):
        return RefValue(expr.id, expr.span)
    if isinstance(expr, ast.Str):
        return expr.value
    if isinstance(expr, ast.TupleExpr):
        return tuple(evaluate(item, env, symbols) for item in expr.items)
    if isinstance(expr, ast.Neg):
        v = evaluate(expr.operand, env, symbols)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise CompileError(f"`-` needs a number, got {_kind(v)}", expr.span)
        return -v
    if isinstance(expr, ast.BinOp):
        return _arith(expr.op, evaluate(expr.left, env, symbols), evaluate(expr.right, env, symbols), expr.span)
    raise CompileError("cannot evaluate this expression", expr.span)
