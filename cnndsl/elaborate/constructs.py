"""Structural constructs: residual, concat, branch, seq, repeat and highway.

Each builds its sub-bodies with the elaborator's statement machinery and joins them with
one merge node (add, concat, highway), so the IR keeps the construct visible.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

from cnndsl.diagnostics import CompileError, Span
from cnndsl.elaborate.context import Ctx
from cnndsl.elaborate.evaluate import INCOMING, whole_numbers
from cnndsl.elaborate.scope import Scope
from cnndsl.ir.opdef import describe, fmt_shape
from cnndsl.ir.registry import REGISTRY
from cnndsl.syntax import ast

CONSTRUCTS = {
    "residual": "y = F(x) + shortcut(x): `residual { … } shortcut=identity|project|zeropad scale=1`",
    "concat": "branches joined along channels: `concat { one branch a line }`",
    "branch": "a named sequence inside `concat { … }`: `branch { … }`",
    "highway": "y = H(x)·T(x) + x·(1 − T(x)): `highway { H … ; gate bias=-2 { T … } }`",
    "seq": "a sequence whose layers are numbered 0, 1, 2 … like nn.Sequential",
    "repeat": "repeat a body: `repeat 3 { … }`",
    "shortcut": "the shortcut path of a residual: `shortcut { conv 1x1 256 /2 -> bn }`",
    "gate": "the gate path T(x) of a highway: `gate bias=-2 { conv 3x3 64 -> sigmoid }`",
}

ERROR = "<error>"  # the value of a statement that failed: later layers build on it unchecked


class Constructs:
    """The construct builders, mixed into `Elaborator` (which provides _body, _stmt, _add, _spend)."""

    def _split(self, call: ast.Call, special: str) -> tuple[list[ast.Stmt], list[ast.Call]]:
        """Separate `shortcut { … }` / `gate { … }` statements from a construct's body."""
        plain, found = [], []
        for stmt in call.body or []:
            if isinstance(stmt, ast.ChainStmt) and len(stmt.items) == 1 and stmt.items[0].name == special \
                    and stmt.items[0].body is not None and stmt.bind is None and stmt.source is None:
                found.append(stmt.items[0])
            else:
                plain.append(stmt)
        if len(found) > 1:
            raise CompileError(f"a construct may have only one `{special} {{ … }}`", found[1].span)
        return plain, found

    def _construct_args(self, call: ast.Call, ctx: Ctx, allowed: dict[str, tuple[str, ...]]) -> dict[str, tuple[Any, Span]]:
        out: dict[str, tuple[Any, Span]] = {}
        for arg in call.args:
            if arg.name is None or arg.name not in allowed:
                what = f"argument `{arg.name}`" if arg.name else "positional arguments"
                opts = ", ".join(f"{k}=" for k in allowed) or "no arguments"
                raise CompileError(f"`{call.name}` takes no {what}", arg.span, hint=f"`{call.name}` takes {opts}")
            out[arg.name] = (self._eval(arg.value, ctx, allowed[arg.name]), arg.span)
        return out

    def _need_flow(self, call: ast.Call, flow: str | None) -> str:
        if flow is None:
            raise CompileError(f"`{call.name}` has no input: nothing comes before it", call.span)
        return flow

    def _construct_residual(self, call: ast.Call, ctx: Ctx, flow: str | None, label: str | None) -> str:
        x = self._need_flow(call, flow)
        args = self._construct_args(call, ctx, {"shortcut": ("identity", "project", "zeropad"), "scale": ()})
        body, explicit = self._split(call, "shortcut")
        inner = ctx if label is None else ctx.nested(Scope(ctx.scope.child("residual", label, call.span)))
        kind, kind_span = args.get("shortcut", ("identity", call.span))
        if explicit and "shortcut" in args:
            raise CompileError("give the shortcut either as `shortcut=…` or as `shortcut { … }`, not both", kind_span)
        # layers are created in source order: a `shortcut { … }` written first is built first
        first = bool(explicit) and isinstance(call.body[0], ast.ChainStmt) and call.body[0].items[0] is explicit[0]
        short = self._explicit_shortcut(explicit[0], inner, x) if first else None
        out = self._body(body, inner, x)
        if out is None or (out == x and x != ERROR):
            raise CompileError("`residual { … }` needs at least one layer in its body", call.span)
        if explicit:
            short = short or self._explicit_shortcut(explicit[0], inner, x)
            what = "the shortcut"
        elif kind == "identity":
            short, what = x, "the identity shortcut"
        elif kind == "project":
            short, what = self._projection(x, out, inner, call.span), "the projection shortcut"
        elif kind == "zeropad":
            short, what = self._zeropad(x, out, inner, call.span), "the zero-padding shortcut"
        else:
            raise CompileError(f"residual: shortcut must be identity, project or zeropad, got {describe(kind)}", kind_span)
        g = self.graph
        if ERROR in (out, short):
            return ERROR
        a, b = g.nodes[out]["shape"], g.nodes[short]["shape"]
        if a != b:
            span = kind_span if not explicit else explicit[0].span
            origin = g.nodes[out]
            hint = None
            if kind == "identity" and not explicit:
                hint = "use `shortcut=project` to add a 1x1 projection (Wx), or `shortcut=zeropad`"
            raise CompileError(
                f"residual add needs equal shapes, got {fmt_shape(a)} (from {out} at {origin['span'].short()}) "
                f"and {fmt_shape(b)} ({what})",
                span,
                hint=hint,
            )
        scale = 1.0
        if "scale" in args:
            value, span = args["scale"]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise CompileError(f"residual: scale must be a number, got {describe(value)}", span)
            scale = float(value)
        name = inner.scope.child("add", None, call.span)
        return self._add("add", {"scale": scale}, [out, short], name, call.span)

    def _explicit_shortcut(self, sc_call: ast.Call, ctx: Ctx, x: str) -> str:
        self._construct_args(sc_call, ctx, {})
        scope = Scope(ctx.scope.child("shortcut", sc_call.label, sc_call.span))
        return self._body(sc_call.body or [], ctx.nested(scope), x) or x

    def _projection(self, x: str, out: str, ctx: Ctx, span: Span) -> str:
        """The Wx shortcut: a 1x1 convolution (stride from the grids) and batch norm."""
        if ERROR in (x, out):
            return ERROR
        xs, ys = self.graph.nodes[x]["shape"], self.graph.nodes[out]["shape"]
        if len(xs) != 3 or len(ys) != 3:
            raise CompileError("a projection shortcut needs feature maps on both sides", span)
        stride = (max(1, math.ceil(xs[1] / ys[1])), max(1, math.ceil(xs[2] / ys[2])))
        scope = Scope(ctx.scope.child("shortcut", None, span))
        conv = REGISTRY["conv"].bind([(1, 1), ys[0]], {"stride": stride, "bias": False})
        c = self._add("conv", conv, [x], scope.child("conv", None, span), span)
        return self._add("bn", REGISTRY["bn"].bind([], {}), [c], scope.child("bn", None, span), span)

    def _zeropad(self, x: str, out: str, ctx: Ctx, span: Span) -> str:
        if ERROR in (x, out):
            return ERROR
        xs, ys = self.graph.nodes[x]["shape"], self.graph.nodes[out]["shape"]
        if len(xs) != 3 or len(ys) != 3:
            raise CompileError("a zero-padding shortcut needs feature maps on both sides", span)
        stride = (max(1, math.ceil(xs[1] / ys[1])), max(1, math.ceil(xs[2] / ys[2])))
        attrs = REGISTRY["zeropad"].bind([], {"out": ys[0], "stride": stride})
        return self._add("zeropad", attrs, [x], ctx.scope.child("shortcut", None, span), span)

    def _construct_concat(self, call: ast.Call, ctx: Ctx, flow: str | None, label: str | None) -> str:
        x = self._need_flow(call, flow)
        self._construct_args(call, ctx, {})
        inner = ctx if label is None else ctx.nested(Scope(ctx.scope.child("concat", label, call.span)))
        outs = []
        for stmt in call.body or []:
            if isinstance(stmt, (ast.InputStmt, ast.OutputStmt)):
                raise CompileError("a concat branch must be a chain of layers", stmt.span)
            out = self._stmt(stmt, inner, x)
            outs.append(out)
        if len(outs) < 2:
            raise CompileError(f"concat needs two or more branches, got {len(outs)}", call.span,
                               hint="write one branch a line inside `concat { … }`")
        name = inner.scope.child("concat", None, call.span)
        return self._add("concat", {}, outs, name, call.span)

    def _construct_branch(self, call: ast.Call, ctx: Ctx, flow: str | None, label: str | None) -> str:
        x = self._need_flow(call, flow)
        self._construct_args(call, ctx, {})
        scope = Scope(ctx.scope.child("branch", label, call.span))
        out = self._body(call.body or [], ctx.nested(scope), x)
        return out if out is not None else x

    def _construct_seq(self, call: ast.Call, ctx: Ctx, flow: str | None, label: str | None) -> str:
        self._construct_args(call, ctx, {})
        scope = Scope(ctx.scope.child("seq", label, call.span), numbered=True)
        out = self._body(call.body or [], ctx.nested(scope), flow)
        return self._need_flow(call, out)

    def _construct_repeat(self, call: ast.Call, ctx: Ctx, flow: str | None, label: str | None) -> str:
        count_arg, index = self._repeat_header(call, ctx)
        (count,) = whole_numbers((self._eval(count_arg.value, ctx),))
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise CompileError(f"repeat count must be a whole number ≥ 0, got {describe(count)}", count_arg.span)
        if count > self.limits.repeat:
            raise CompileError(self.limits.exceeded("repeat", f"repeat {count} is too long"), count_arg.span)
        outer = Scope(ctx.scope.child("repeat", label, call.span), numbered=True) if label is not None else None
        for i in range(count):
            each = ctx if outer is None else ctx.nested(Scope(outer.child("", None, call.span)))
            if index is not None:  # `repeat N as i`: the index is a parameter of the body, 0 … N-1
                each = Ctx({**ctx.env, index: i}, each.values, each.scope, each.stack, each.outputs, each.inputs)
            self._spend(call.span, "`repeat`")
            flow = self._body(call.body or [], each, flow)
            if flow == ERROR:  # a failed flow is elaborated once, not once an iteration
                break
        return self._need_flow(call, flow)  # `repeat 0` passes its input through

    def _repeat_header(self, call: ast.Call, ctx: Ctx) -> tuple[ast.Arg, str | None]:
        """`repeat N { … }` or `repeat N as i { … }`: the count's argument and the index's name."""
        positional = [a for a in call.args if a.name is None]
        usage = "`repeat` takes a count and, optionally, an index: `repeat 3 { … }`, `repeat 3 as i { … }`"
        if len(positional) != len(call.args) or len(positional) not in (1, 3):
            raise CompileError(usage, call.span)
        if len(positional) == 1:
            return positional[0], None
        as_word, name = positional[1].value, positional[2].value
        if not (isinstance(as_word, ast.Name) and as_word.id == "as"):
            raise CompileError(usage, positional[1].span)
        if not isinstance(name, ast.Name):
            raise CompileError("`repeat … as NAME`: the index must be a name", positional[2].span, hint=usage)
        if name.id in ctx.env or name.id == INCOMING:
            what = "the block's incoming value" if name.id == INCOMING else f"the parameter `{name.id}`"
            raise CompileError(f"the loop index `{name.id}` would hide {what}", name.span,
                               hint="choose another name for the index")
        self._indices.setdefault(name.id, name.span)
        return positional[0], name.id

    def _construct_highway(self, call: ast.Call, ctx: Ctx, flow: str | None, label: str | None) -> str:
        x = self._need_flow(call, flow)
        self._construct_args(call, ctx, {})
        body, gates = self._split(call, "gate")
        if not gates:
            raise CompileError("`highway { … }` needs a gate: `gate bias=-2 { conv 3x3 C -> sigmoid }`", call.span)
        inner = ctx if label is None else ctx.nested(Scope(ctx.scope.child("highway", label, call.span)))
        h = self._body(body, inner, x)
        if h is None or (h == x and x != ERROR):
            raise CompileError("`highway { … }` needs a transform H(x): at least one layer besides the gate", call.span)
        gate = gates[0]
        gargs = self._construct_args(gate, inner, {"bias": ()})
        scope = Scope(inner.scope.child("gate", gate.label, gate.span))
        t = self._body(gate.body or [], inner.nested(scope), x)
        if t is None or (t == x and x != ERROR):
            raise CompileError("`gate { … }` needs at least one layer", gate.span)
        if "bias" in gargs and t != ERROR:
            self._set_gate_bias(t, gargs["bias"], gate)
        name = inner.scope.child("highway", None, call.span)
        return self._add("highway", {}, [h, t, x], name, call.span)

    def _set_gate_bias(self, t: str, bias: tuple[Any, Span], gate: ast.Call) -> None:
        """Initialise the bias of the gate's last conv/fc (negative: carry x at first)."""
        value, span = bias
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CompileError(f"gate: bias must be a number, got {describe(value)}", span)
        node = t
        while REGISTRY[self.graph.nodes[node]["op"]].param("bias_init") is None:  # conv, fc
            preds = list(self.graph.predecessors(node))
            if len(preds) != 1:
                raise CompileError("gate bias=…: the gate has no conv or fc layer to initialise", span)
            node = preds[0]
        attrs = self.graph.nodes[node]["attrs"]
        if not attrs.get("bias", True):
            raise CompileError("gate bias=…: the gate's last layer has bias=false", span)
        attrs["bias_init"] = float(value)


    BUILDERS: ClassVar[dict[str, Callable[..., str]]]  # filled below the class


Constructs.BUILDERS = {
    "residual": Constructs._construct_residual,
    "concat": Constructs._construct_concat,
    "branch": Constructs._construct_branch,
    "seq": Constructs._construct_seq,
    "repeat": Constructs._construct_repeat,
    "highway": Constructs._construct_highway,
}
"""Construct name → its builder (`shortcut` and `gate` live inside residual and highway)."""
