"""Elaboration: the AST of a network becomes the IR graph, shapes checked as nodes appear.

Blocks are expanded with their parameters bound, arithmetic is evaluated, repetitions are
unrolled, and each layer gets a hierarchical name. Every node's shape is inferred the
moment it is created (by the op registry's rule), so a mistake is reported at the layer
that makes it, with the shapes that flowed into it.

Data flow inside a body: each statement reads the current value (the "flow") and its
result becomes the new flow, except a chain that starts from a named value (`@x -> …`),
which is a side branch: it is bound to a name or made an `output`, and the flow stays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

import cnndsl.ir.ops  # noqa: F401  (registers the ops)
from cnndsl.diagnostics import CompileError, Span, did_you_mean
from cnndsl.elaborate.loader import Program
from cnndsl.elaborate.scope import RefValue, Scope, evaluate
from cnndsl.ir.graph import new_graph
from cnndsl.ir.registry import REGISTRY, ArgError, ShapeError, describe, fmt_shape, symbols_of
from cnndsl.syntax import ast
from cnndsl.syntax.parser import parse_expr

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


# Bare words that block arguments may carry through to the ops and constructs that read them.
WORDS = tuple(sorted({w for op in REGISTRY.values() for p in op.params for w in symbols_of(p.convert)}
                     | {"identity", "project", "zeropad"}))


@dataclass
class Limits:
    """Resource limits that turn pathological programs into errors instead of hangs."""

    max_nodes: int = 200_000
    max_repeat: int = 10_000
    max_depth: int = 100


@dataclass
class Ctx:
    """Where elaboration stands: parameter values, named tensors, names, the block stack."""

    env: dict[str, Any]
    values: dict[str, str]
    scope: Scope
    stack: tuple[str, ...] = ()
    outputs: list[str] | None = None  # only the network level may declare outputs
    inputs: list[str] = field(default_factory=list)

    def nested(self, scope: Scope) -> Ctx:
        return Ctx(self.env, self.values, scope, self.stack, self.outputs, self.inputs)


class Elaborator:
    def __init__(self, program: Program, limits: Limits | None = None) -> None:
        self.program = program
        self.limits = limits or Limits()
        self.graph: nx.MultiDiGraph | None = None

    # ---- entry point ------------------------------------------------------------------

    def network(
        self,
        overrides: dict[str, str] | None = None,
        input_shape: tuple[int, ...] | None = None,
    ) -> nx.MultiDiGraph:
        module = self.program.module
        if not module.networks:
            raise CompileError(
                f"{module.file} defines no network"
                + (f" (only blocks: {', '.join(b.name for b in module.blocks)})" if module.blocks else ""),
                Span(module.file, 1, 1, 1, 2),
                hint="add `network NAME { input CxHxW … }`, or compile a file that `use`s this library",
            )
        if len(module.networks) > 1:
            second = module.networks[1]
            raise CompileError("a file may define only one network", second.span,
                               notes=[f"the first is `{module.networks[0].name}` at {module.networks[0].span}"])
        net = module.networks[0]
        env = self._network_params(net, overrides or {})
        self.graph = new_graph(net.name)
        self.graph.graph["params"] = dict(env)
        self._input_override = input_shape
        ctx = Ctx(env, {}, Scope(""), (), [], [])
        flow = self._body(net.body, ctx, None)
        outputs = ctx.outputs or ([flow] if flow is not None else [])
        if not ctx.inputs:
            raise CompileError(f"network `{net.name}` has no input", net.span, hint="start the body with `input CxHxW`")
        if not outputs:
            raise CompileError(f"network `{net.name}` computes nothing", net.span)
        self.graph.graph["inputs"] = list(ctx.inputs)
        self.graph.graph["outputs"] = outputs
        return self.graph

    def _network_params(self, net: ast.NetworkDef, overrides: dict[str, str]) -> dict[str, Any]:
        names = [p.name for p in net.params]
        for key in overrides:
            if key not in names:
                hint = did_you_mean(key, names) or (
                    f"`{net.name}` takes: {', '.join(names)}" if names else f"`{net.name}` takes no parameters"
                )
                raise CompileError(f"--set {key}: network `{net.name}` has no parameter `{key}`", None, hint=hint)
        env: dict[str, Any] = {}
        for p in net.params:
            if p.name in overrides:
                env[p.name] = evaluate(parse_expr(overrides[p.name], f"--set {p.name}"), {})
            elif p.default is not None:
                env[p.name] = evaluate(p.default, env)
            else:
                raise CompileError(f"network parameter `{p.name}` has no default", p.span,
                                   hint=f"give one in the file, or pass --set {p.name}=VALUE")
        return env

    # ---- statements -------------------------------------------------------------------

    def _body(self, stmts: list[ast.Stmt], ctx: Ctx, flow: str | None) -> str | None:
        for stmt in stmts:
            flow = self._stmt(stmt, ctx, flow)
        return flow

    def _stmt(self, stmt: ast.Stmt, ctx: Ctx, flow: str | None) -> str | None:
        if isinstance(stmt, ast.InputStmt):
            return self._input(stmt, ctx)
        if isinstance(stmt, ast.OutputStmt):
            if ctx.outputs is None:
                raise CompileError("`output` is allowed only in a network, not in a block", stmt.span,
                                   hint="a block's result is the value of its last statement")
            value = self._ref(stmt.ref, ctx) if stmt.ref else flow
            if value is None:
                raise CompileError("`output` of nothing: no layer comes before it", stmt.span)
            if value in ctx.outputs:
                raise CompileError(f"`{value}` is already an output", stmt.span,
                                   hint="after a side chain `@x -> …`, a bare `output` is the main flow; name the value: `output @x`")
            ctx.outputs.append(value)
            return flow
        assert isinstance(stmt, ast.ChainStmt)
        start = self._ref(stmt.source, ctx) if stmt.source else flow
        value = start
        for call in stmt.items:
            value = self._call(call, ctx, value)
        if stmt.bind is not None:
            ctx.values[stmt.bind] = value
        return flow if stmt.source is not None else value

    def _input(self, stmt: ast.InputStmt, ctx: Ctx) -> str:
        if ctx.outputs is None:
            raise CompileError("`input` is allowed only in a network, not in a block", stmt.span)
        shape = evaluate(stmt.shape, ctx.env)
        if not ctx.inputs and self._input_override is not None:
            shape = self._input_override
        shape = shape if isinstance(shape, tuple) else (shape,)
        if len(shape) not in (1, 3) or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            raise CompileError(f"input shape must be C or CxHxW positive sizes, got {describe(shape)}", stmt.shape.span)
        label = stmt.bind or "input"
        name = ctx.scope.child("input", label if not ctx.inputs or stmt.bind else None, stmt.span)
        self._add("input", {"shape": tuple(shape)}, [], name, stmt.span)
        ctx.inputs.append(name)
        if stmt.bind:
            ctx.values[stmt.bind] = name
        return name

    def _ref(self, ref: ast.Ref | RefValue, ctx: Ctx) -> str:
        name = ref.id if isinstance(ref, ast.Ref) else ref.name
        if name not in ctx.values:
            known = ", ".join(f"@{v}" for v in ctx.values) or "none"
            raise CompileError(f"unknown value `@{name}`", ref.span,
                               hint=did_you_mean(f"@{name}", {f"@{v}" for v in ctx.values})
                               or f"bind it first with `{name} = …`; named values here: {known}")
        return ctx.values[name]

    # ---- calls: layers, blocks, constructs --------------------------------------------

    def _call(self, call: ast.Call, ctx: Ctx, flow: str | None) -> str:
        if len(ctx.stack) > self.limits.max_depth:
            raise CompileError(f"blocks nest deeper than {self.limits.max_depth} levels", call.span)
        if call.repeat < 1:
            raise CompileError(f"repetition x{call.repeat}: the count must be at least 1", call.span)
        if call.repeat > self.limits.max_repeat:
            raise CompileError(f"repetition x{call.repeat} exceeds the limit of {self.limits.max_repeat}", call.span)
        if call.repeat > 1 and call.label is not None:
            # `layer1: bottleneck(64) x3` → layer1.0, layer1.1, layer1.2
            inner = ctx.nested(Scope(ctx.scope.child("seq", call.label, call.span), numbered=True))
            for _ in range(call.repeat):
                flow = self._one_call(call, inner, flow, None)
            return flow
        for _ in range(call.repeat):
            flow = self._one_call(call, ctx, flow, call.label)
        return flow

    def _one_call(self, call: ast.Call, ctx: Ctx, flow: str | None, label: str | None) -> str:
        name = call.name
        if name in ("shortcut", "gate"):
            owner = "residual" if name == "shortcut" else "highway"
            raise CompileError(f"`{name} {{ … }}` is allowed only directly inside `{owner} {{ … }}`", call.name_span)
        if name in CONSTRUCTS and (call.body is not None or name != "concat"):
            return getattr(self, f"_construct_{name}")(call, ctx, flow, label)
        if call.body is not None:
            raise CompileError(f"`{name}` takes no `{{ … }}` body", call.span,
                               hint="constructs with a body: " + ", ".join(sorted(CONSTRUCTS)))
        if name in self.program.blocks:
            return self._block_call(call, ctx, flow, label)
        op = REGISTRY.get(name)
        if op is None or not op.user:
            known = {n for n, o in REGISTRY.items() if o.user} | set(self.program.blocks) | set(CONSTRUCTS)
            raise CompileError(f"unknown layer or block `{name}`", call.name_span, hint=did_you_mean(name, known))
        return self._layer(call, ctx, flow, label)

    def _layer(self, call: ast.Call, ctx: Ctx, flow: str | None, label: str | None) -> str:
        op = REGISTRY[call.name]
        refs: list[str] = []
        positional: list[Any] = []
        keywords: dict[str, Any] = {}
        spans: dict[str, Span] = {}
        pos_specs = op.positional
        for arg in call.args:
            if arg.name is None:
                spec = pos_specs[len(positional)] if len(positional) < len(pos_specs) else None
                value = evaluate(arg.value, ctx.env, symbols_of(spec.convert) if spec else ())
                if isinstance(value, RefValue):
                    refs.append(self._ref(value, ctx))
                    continue
                if spec is None:
                    expected = ", ".join(p.name for p in pos_specs) or "none"
                    named = ", ".join(f"{p.name}=" for p in op.params if not p.positional)
                    raise CompileError(
                        f"{call.name} takes {len(pos_specs)} positional argument{'s' if len(pos_specs) != 1 else ''} "
                        f"({expected}), got {len(positional) + 1}", arg.span,
                        hint=f"other arguments are given by name: {named}" if named else None)
                spans[spec.name] = arg.span
                positional.append(value)
            else:
                spec = op.param(arg.name)
                if arg.name in keywords:
                    raise CompileError(f"{call.name}: argument `{arg.name}` given twice", arg.span)
                value = evaluate(arg.value, ctx.env, symbols_of(spec.convert) if spec else ())
                keywords[arg.name] = value
                spans[arg.name] = arg.span
        try:
            attrs = op.bind(positional, keywords)
        except ArgError as err:
            raise CompileError(err.message, spans.get(err.param or "", call.span), hint=err.hint) from None
        if refs:
            inputs = refs
        elif flow is None:
            raise CompileError(f"`{call.name}` has no input: nothing comes before it", call.span,
                               hint="declare `input CxHxW` first, or read a named value: `@x -> …`")
        else:
            inputs = [flow]
        if op.arity is None and len(inputs) < 2:
            raise CompileError(f"{call.name} joins two or more tensors, got {len(inputs)}", call.span,
                               hint=f"name them: `{call.name} @a @b`, or use `{call.name} {{ … }}` with one branch a line")
        if op.arity == 1 and len(inputs) != 1:
            raise CompileError(f"{call.name} takes one input, got {len(inputs)}", call.span)
        name = ctx.scope.child(call.name, label, call.span)
        return self._add(call.name, attrs, inputs, name, call.span)

    def _block_call(self, call: ast.Call, ctx: Ctx, flow: str | None, label: str | None) -> str:
        block = self.program.blocks[call.name]
        if call.name in ctx.stack:
            chain = " -> ".join([*ctx.stack[ctx.stack.index(call.name):], call.name])
            raise CompileError(f"block `{call.name}` calls itself ({chain})", call.name_span,
                               hint="blocks cannot recurse; use `repeat N { … }` or `x3`")
        names = [p.name for p in block.params]
        given: dict[str, Any] = {}
        n_pos = 0
        for arg in call.args:
            value = evaluate(arg.value, ctx.env, WORDS)
            if isinstance(value, RefValue):
                raise CompileError(f"block `{call.name}` takes numbers, not tensors; feed it with `@x -> {call.name}(…)`", arg.span)
            if arg.name is None:
                if n_pos >= len(names):
                    n_given = sum(1 for a in call.args if a.name is None)
                    raise CompileError(
                        f"block `{call.name}` takes {len(names)} argument{'s' if len(names) != 1 else ''} "
                        f"({', '.join(names) or 'none'}), got {n_given}", arg.span)
                key = names[n_pos]
                n_pos += 1
            else:
                key = arg.name
                if key not in names:
                    raise CompileError(f"block `{call.name}` has no parameter `{key}`", arg.span,
                                       hint=did_you_mean(key, names) or f"its parameters: {', '.join(names) or 'none'}")
            if key in given:
                raise CompileError(f"block `{call.name}`: argument `{key}` given twice", arg.span)
            given[key] = value
        env: dict[str, Any] = {}
        for p in block.params:
            if p.name in given:
                env[p.name] = given[p.name]
            elif p.default is not None:
                env[p.name] = evaluate(p.default, env, WORDS)
            else:
                raise CompileError(f"block `{call.name}` needs the argument `{p.name}`", call.span,
                                   notes=[f"`{call.name}` is defined at {block.span}"])
        if flow is None:
            raise CompileError(f"`{call.name}` has no input: nothing comes before it", call.span)
        scope = Scope(ctx.scope.child(call.name, label, call.span))
        inner = Ctx(env, {}, scope, (*ctx.stack, call.name), None, ctx.inputs)
        try:
            out = self._body(block.body, inner, flow)
        except CompileError as err:
            err.diagnostics[0].notes.append(f"in block `{call.name}` called at {call.span}")
            raise
        return out if out is not None else flow

    # ---- constructs -------------------------------------------------------------------

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
            out[arg.name] = (evaluate(arg.value, ctx.env, allowed[arg.name]), arg.span)
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
        if out is None or out == x:
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
        xs, ys = self.graph.nodes[x]["shape"], self.graph.nodes[out]["shape"]
        if len(xs) != 3 or len(ys) != 3:
            raise CompileError("a projection shortcut needs feature maps on both sides", span)
        stride = (max(1, math.ceil(xs[1] / ys[1])), max(1, math.ceil(xs[2] / ys[2])))
        scope = Scope(ctx.scope.child("shortcut", None, span))
        conv = REGISTRY["conv"].bind([(1, 1), ys[0]], {"stride": stride, "bias": False})
        c = self._add("conv", conv, [x], scope.child("conv", None, span), span)
        return self._add("bn", REGISTRY["bn"].bind([], {}), [c], scope.child("bn", None, span), span)

    def _zeropad(self, x: str, out: str, ctx: Ctx, span: Span) -> str:
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
        positional = [a for a in call.args if a.name is None]
        if len(positional) != 1 or len(call.args) != 1:
            raise CompileError("`repeat` takes one count: `repeat 3 { … }`", call.span)
        count = evaluate(positional[0].value, ctx.env)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise CompileError(f"repeat count must be a whole number ≥ 0, got {describe(count)}", positional[0].span)
        if count > self.limits.max_repeat:
            raise CompileError(f"repeat {count} exceeds the limit of {self.limits.max_repeat}", positional[0].span)
        if label is not None:
            outer = Scope(ctx.scope.child("repeat", label, call.span), numbered=True)
            for _ in range(count):
                scope = Scope(outer.child("", None, call.span))
                flow = self._body(call.body or [], ctx.nested(scope), flow)
        else:
            for _ in range(count):
                flow = self._body(call.body or [], ctx, flow)
        return self._need_flow(call, flow)  # `repeat 0` passes its input through

    def _construct_highway(self, call: ast.Call, ctx: Ctx, flow: str | None, label: str | None) -> str:
        x = self._need_flow(call, flow)
        self._construct_args(call, ctx, {})
        body, gates = self._split(call, "gate")
        if not gates:
            raise CompileError("`highway { … }` needs a gate: `gate bias=-2 { conv 3x3 C -> sigmoid }`", call.span)
        inner = ctx if label is None else ctx.nested(Scope(ctx.scope.child("highway", label, call.span)))
        h = self._body(body, inner, x)
        if h is None or h == x:
            raise CompileError("`highway { … }` needs a transform H(x): at least one layer besides the gate", call.span)
        gate = gates[0]
        gargs = self._construct_args(gate, inner, {"bias": ()})
        scope = Scope(inner.scope.child("gate", gate.label, gate.span))
        t = self._body(gate.body or [], inner.nested(scope), x)
        if t is None or t == x:
            raise CompileError("`gate { … }` needs at least one layer", gate.span)
        if "bias" in gargs:
            self._set_gate_bias(t, gargs["bias"], gate)
        name = inner.scope.child("highway", None, call.span)
        return self._add("highway", {}, [h, t, x], name, call.span)

    def _set_gate_bias(self, t: str, bias: tuple[Any, Span], gate: ast.Call) -> None:
        """Initialise the bias of the gate's last conv/fc (negative: carry x at first)."""
        value, span = bias
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CompileError(f"gate: bias must be a number, got {describe(value)}", span)
        node = t
        while self.graph.nodes[node]["op"] not in ("conv", "fc"):
            preds = list(self.graph.predecessors(node))
            if len(preds) != 1:
                raise CompileError("gate bias=…: the gate has no conv or fc layer to initialise", span)
            node = preds[0]
        attrs = self.graph.nodes[node]["attrs"]
        if not attrs.get("bias", True):
            raise CompileError("gate bias=…: the gate's last layer has bias=false", span)
        attrs["bias_init"] = float(value)

    # ---- graph building ---------------------------------------------------------------

    def _add(self, op: str, attrs: dict[str, Any], inputs: list[str], name: str, span: Span) -> str:
        g = self.graph
        if g.number_of_nodes() >= self.limits.max_nodes:
            raise CompileError(f"the network exceeds {self.limits.max_nodes} layers (the node limit)", span)
        shapes = [g.nodes[i]["shape"] for i in inputs]
        try:
            shape = REGISTRY[op].shape(attrs, shapes)
        except ShapeError as err:
            notes = [f"input {i + 1}: {fmt_shape(s)} from `{src}` at {g.nodes[src]['span'].short()}"
                     for i, (src, s) in enumerate(zip(inputs, shapes))] if len(inputs) > 1 else []
            raise CompileError(err.message, span, hint=err.hint, notes=notes) from None
        g.add_node(name, op=op, attrs=attrs, span=span, shape=tuple(shape))
        for port, src in enumerate(inputs):
            g.add_edge(src, name, port=port)
        return name


def elaborate(
    program: Program,
    overrides: dict[str, str] | None = None,
    input_shape: tuple[int, ...] | None = None,
    limits: Limits | None = None,
) -> nx.MultiDiGraph:
    """Expand the program's network into a shape-checked IR graph."""
    return Elaborator(program, limits).network(overrides, input_shape)
