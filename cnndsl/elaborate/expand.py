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

from typing import Any

import networkx as nx

from cnndsl.diagnostics import CompileError, Diagnostic, Span, UsageError, did_you_mean
from cnndsl.elaborate.constructs import CONSTRUCTS, ERROR, Constructs
from cnndsl.elaborate.context import Ctx, Fatal, Limits
from cnndsl.elaborate.evaluate import (
    INCOMING,
    NUMBER_LIMIT,
    RefValue,
    Tensor,
    Unknown,
    UnknownName,
    boolean,
    evaluate,
    whole_numbers,
)
from cnndsl.elaborate.loader import Program
from cnndsl.elaborate.scope import Scope
from cnndsl.ir.graph import new_graph
from cnndsl.ir.opdef import ArgError, ShapeError, describe, fmt_shape, symbols_of
from cnndsl.ir.registry import REGISTRY
from cnndsl.syntax import ast
from cnndsl.syntax.parser import parse_expr

# Bare words that block arguments may carry through to the ops and constructs that read them.
WORDS = tuple(sorted({w for op in REGISTRY.values() for p in op.params for w in symbols_of(p.convert)}
                     | {"identity", "project", "zeropad"}))


class Elaborator(Constructs):
    """Builds the IR of a program's network; collects every independent error on the way.

    A statement that fails is recorded and its value becomes `ERROR`; layers built on an
    `ERROR` are not checked (their shapes are unknown), so one mistake gives one message,
    while mistakes in independent statements are all reported.
    """

    def __init__(self, program: Program, limits: Limits | None = None) -> None:
        self.program = program
        self.limits = limits or Limits()
        self.graph: nx.MultiDiGraph | None = None
        self.errors: list[Diagnostic] = []
        self._calls: list[tuple[str, Span]] = []  # the block calls being expanded, outermost first
        self._indices: dict[str, Span] = {}  # every loop index met so far, for "used outside its loop"
        self.work = 0  # elaboration steps taken, against `limits.work`

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
        if self.errors:
            raise CompileError(self.errors)
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
                raise UsageError(f"--set {key[:60]}: network `{net.name}` has no parameter `{key[:60]}`", None, hint=hint)
        env: dict[str, Any] = {}
        for p in net.params:
            if p.name in overrides:
                try:
                    env[p.name] = evaluate(parse_expr(overrides[p.name], f"--set {p.name}"), {})
                except CompileError as err:  # the option's value, not the program, is wrong
                    raise UsageError(err.diagnostics) from None
            elif p.default is not None:
                env[p.name] = evaluate(p.default, env)
            else:
                raise CompileError(f"network parameter `{p.name}` has no default", p.span,
                                   hint=f"give one in the file, or pass --set {p.name}=VALUE")
        return env

    # ---- statements -------------------------------------------------------------------

    def _body(self, stmts: list[ast.Stmt], ctx: Ctx, flow: str | None) -> str | None:
        for stmt in stmts:
            try:
                flow = self._stmt(stmt, ctx, flow)
            except Fatal:
                raise
            except CompileError as err:
                self._record(err)
                if isinstance(stmt, ast.ChainStmt):
                    if stmt.bind is not None:
                        ctx.values[stmt.bind] = ERROR
                    if stmt.source is None:
                        flow = ERROR
                elif isinstance(stmt, (ast.InputStmt, ast.IfStmt)):
                    flow = ERROR
        return flow

    def _spend(self, span: Span | None, what: str) -> None:
        """Count one elaboration step: work on empty bodies, failed flows and repeated errors
        costs too, so no program elaborates without end, whatever it builds."""
        self.work += 1
        if self.work > self.limits.work:
            raise Fatal(self.errors + [Diagnostic(self.limits.exceeded("work", f"elaborating this {what} takes too many "
                                                                       "steps"), span)])

    def _record(self, err: CompileError) -> None:
        """Keep an error (with the chain of block calls that led to it) and carry on."""
        self._spend(err.diagnostics[0].span if err.diagnostics else None, "program")
        for diag in err.diagnostics:
            if any(d.message == diag.message and d.span == diag.span for d in self.errors):
                continue  # the same mistake met again through another call of its block
            for name, span in reversed(self._calls):
                diag.notes.append(f"in block `{name}` called at {span}")
            self.errors.append(diag)
        if len(self.errors) >= self.limits.errors:
            raise Fatal(self.errors + [Diagnostic(self.limits.exceeded("errors", "too many errors; stopping here"))])

    def _stmt(self, stmt: ast.Stmt, ctx: Ctx, flow: str | None) -> str | None:
        self._spend(stmt.span, "statement")
        if isinstance(stmt, ast.InputStmt):
            return self._input(stmt, ctx)
        if isinstance(stmt, ast.IfStmt):
            # only the branch taken is elaborated: the other may name what does not exist here
            taken = boolean(self._eval(stmt.cond, ctx, WORDS), stmt.cond.span, "an `if` condition")
            return self._body(stmt.then if taken else (stmt.orelse or []), ctx, flow)
        if isinstance(stmt, ast.OutputStmt):
            if ctx.outputs is None:
                raise CompileError("`output` is allowed only in a network, not in a block", stmt.span,
                                   hint="a block's result is the value of its last statement")
            value = self._ref(stmt.ref, ctx) if stmt.ref else flow
            if value is None:
                raise CompileError("`output` of nothing: no layer comes before it", stmt.span)
            if value == ERROR:  # its mistake is reported where it was made
                return flow
            if value in ctx.outputs:
                raise CompileError(f"`{value}` is already an output", stmt.span,
                                   hint="after a side chain `@x -> …`, a bare `output` is the main flow; name the value: `output @x`")
            ctx.outputs.append(value)
            return flow
        assert isinstance(stmt, ast.ChainStmt)
        if stmt.bind == INCOMING:
            raise CompileError("`in` names a block's incoming value and cannot be rebound", stmt.span,
                               hint="choose another name: `x = …`")
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
        shape = self._eval(stmt.shape, ctx)
        if not ctx.inputs and self._input_override is not None:
            shape = self._input_override
        shape = whole_numbers(shape if isinstance(shape, tuple) else (shape,))
        if len(shape) not in (1, 3) or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            raise CompileError(f"input shape must be C or CxHxW positive sizes, got {describe(shape)}", stmt.shape.span)
        label = stmt.bind or "input"
        name = ctx.scope.child("input", label if not ctx.inputs or stmt.bind else None, stmt.span, argument=True)
        self._add("input", {"shape": tuple(shape)}, [], name, stmt.span)
        ctx.inputs.append(name)
        if stmt.bind:
            ctx.values[stmt.bind] = name
        return name

    def _ref(self, ref: ast.Ref | RefValue, ctx: Ctx) -> str:
        name = ref.id if isinstance(ref, ast.Ref) else ref.name
        if name not in ctx.values:
            if name == INCOMING:
                raise CompileError("`in` names a block's incoming value; the network's top level has none", ref.span,
                                   hint="name the value you mean (`x = …`) and use `@x`, `@x.c`")
            if name == "input" and ctx.outputs is None:
                raise CompileError("unknown value `@input`: a block has no `input`", ref.span,
                                   hint="inside a block, its incoming value is `@in` (and its shape `in.c`, `in.h`, `in.w`)")
            known = ", ".join(f"@{v}" for v in ctx.values) or "none"
            raise CompileError(f"unknown value `@{name}`", ref.span,
                               hint=did_you_mean(f"@{name}", {f"@{v}" for v in ctx.values})
                               or f"bind it first with `{name} = …`; named values here: {known}")
        return ctx.values[name]

    # ---- expressions ------------------------------------------------------------------

    def _eval(self, expr: ast.Expr, ctx: Ctx, symbols: tuple[str, ...] = ()) -> Any:
        """Evaluate EXPR where CTX stands: its parameters, loop indices and tensors' shapes."""
        def tensors(name: str, span: Span) -> Tensor:
            node = self._ref(RefValue(name, span), ctx)
            if node == ERROR:
                raise Unknown()
            return Tensor(name, tuple(self.graph.nodes[node]["shape"]))

        try:
            return evaluate(expr, ctx.env, symbols, tensors)
        except UnknownName as err:
            where = self._indices.get(err.name)
            if where is not None:
                err.first.hint = (f"`{err.name}` is the index of the loop `repeat … as {err.name}` at {where.short()}; "
                                  "it is known only inside that loop's body")
            raise

    # ---- calls: layers, blocks, constructs --------------------------------------------

    def _call(self, call: ast.Call, ctx: Ctx, flow: str | None) -> str:
        if len(ctx.stack) > self.limits.depth:
            raise Fatal(self.limits.exceeded("depth", "blocks nest too deeply"), call.span)
        if call.repeat < 1:
            raise CompileError(f"repetition x{call.repeat}: the count must be at least 1", call.span)
        if call.repeat > self.limits.repeat:
            raise CompileError(self.limits.exceeded("repeat", f"repetition x{call.repeat} is too long"), call.span)
        if call.repeat > 1 and call.label is not None:
            # `layer1: bottleneck(64) x3` → layer1.0, layer1.1, layer1.2
            inner = ctx.nested(Scope(ctx.scope.child("seq", call.label, call.span), numbered=True))
            construct = call.name in CONSTRUCTS and call.body is not None
            for _ in range(call.repeat):
                # a construct has no name of its own: each repetition gets a scope (res.0.conv1 …)
                each = inner.nested(Scope(inner.scope.child("", None, call.span))) if construct else inner
                flow = self._one_call(call, each, flow, None)
                if flow == ERROR:  # a failed flow is elaborated once, not once a repetition
                    break
            return flow
        for _ in range(call.repeat):
            flow = self._one_call(call, ctx, flow, call.label)
            if flow == ERROR:
                break
        return flow

    def _one_call(self, call: ast.Call, ctx: Ctx, flow: str | None, label: str | None) -> str:
        name = call.name
        self._spend(call.span, f"`{name}`")
        if name in ("shortcut", "gate"):
            owner = "residual" if name == "shortcut" else "highway"
            raise CompileError(f"`{name} {{ … }}` is allowed only directly inside `{owner} {{ … }}`", call.name_span)
        if name in CONSTRUCTS and call.body is None and name != "concat":  # `concat @a @b` is the op
            raise CompileError(f"`{name}` needs a body in braces `{{ … }}`", call.span, hint=CONSTRUCTS[name])
        if name in CONSTRUCTS and call.body is not None:
            return self.BUILDERS[name](self, call, ctx, flow, label)
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
                value = self._eval(arg.value, ctx, symbols_of(spec.convert) if spec else ())
                if isinstance(value, Tensor):
                    raise CompileError(f"`{value.name}` as an argument: wire the tensor as `@{value.name}`", arg.span)
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
                value = self._eval(arg.value, ctx, symbols_of(spec.convert) if spec else ())
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
            body_form = " or `concat { … }` with one branch a line" if op.name == "concat" else ""
            raise CompileError(f"{call.name} joins two or more tensors, got {len(inputs)}", call.span,
                               hint=f"name them: `{call.name} @a @b`{body_form}")
        if op.arity == 1 and len(inputs) != 1:
            raise CompileError(f"{call.name} takes one input, got {len(inputs)}", call.span)
        name = ctx.scope.child(op.name, label, call.span)  # aliases (linear, batchnorm) name the op itself
        return self._add(op.name, attrs, inputs, name, call.span)

    def _block_call(self, call: ast.Call, ctx: Ctx, flow: str | None, label: str | None) -> str:
        block = self.program.blocks[call.name]
        if call.name in ctx.stack:
            chain = " -> ".join([*ctx.stack[ctx.stack.index(call.name):], call.name])
            raise CompileError(f"block `{call.name}` calls itself ({chain})", call.name_span,
                               hint="blocks cannot recurse; use `repeat N { … }` or `x3`")
        names = [p.name for p in block.params]
        given: dict[str, Any] = {}
        n_pos = 0
        if flow is None:
            raise CompileError(f"`{call.name}` has no input: nothing comes before it", call.span)
        for arg in call.args:
            value = self._eval(arg.value, ctx, WORDS)
            if isinstance(value, (RefValue, Tensor)):
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
        scope = Scope(ctx.scope.child(call.name, label, call.span))
        # the block's own input is `@in`; its parameter defaults may read its shape (`out = in.c // 2`)
        inner = Ctx(env, {INCOMING: flow}, scope, (*ctx.stack, call.name), None, ctx.inputs)
        for p in block.params:
            if p.name == INCOMING:
                raise CompileError("a block parameter cannot be called `in`: it names the block's incoming value",
                                   p.span)
            if p.name in given:
                env[p.name] = given[p.name]
            elif p.default is not None:
                env[p.name] = self._eval(p.default, inner, WORDS)
            else:
                raise CompileError(f"block `{call.name}` needs the argument `{p.name}`", call.span,
                                   notes=[f"`{call.name}` is defined at {block.span}"])
        self._calls.append((call.name, call.span))
        try:
            out = self._body(block.body, inner, flow)
        finally:
            self._calls.pop()
        return out if out is not None else flow

    # ---- graph building ---------------------------------------------------------------

    def _add(self, op: str, attrs: dict[str, Any], inputs: list[str], name: str, span: Span) -> str:
        g = self.graph
        if g.number_of_nodes() >= self.limits.nodes:
            raise Fatal(self.limits.exceeded("nodes", "the network has too many layers"), span)
        if ERROR in inputs:
            return ERROR
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
    limits = limits or Limits()
    token = NUMBER_LIMIT.set(limits.number)
    try:
        return Elaborator(program, limits).network(overrides, input_shape)
    except RecursionError:
        module = program.module
        raise CompileError("the program nests too deeply to elaborate", Span(module.file, 1, 1),
                           hint="flatten deeply nested constructs, or use blocks and `repeat`") from None
    finally:
        NUMBER_LIMIT.reset(token)
