"""The launch plan: what runs for each node of the optimised IR (no weights, no device).

    plan_launch(graph, weights=None, batch=1, itemsize=2) -> LaunchPlan

`plan_launch` runs `cnndsl.passes.optimize` and asks the op table (table.py) node by node
whether a Triton kernel, a view, nothing (an eliminated concat, a routed slice) or a torch
fallback produces its output (launcher.py runs the plan). The plan's report counts the launches and the
fusions; `LaunchPlan.listing()` shows every launch with the `.cnn` lines it covers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from cnndsl.backends.triton.table import CONV_FAMILY, FC_FAMILY, IDENTITIES, rule_for
from cnndsl.ir.graph import inputs_of
from cnndsl.ir.registry import ops_with
from cnndsl.passes.pipeline import OptimizeReport, optimize

FOLDABLE = ops_with("normalisation")  # what fold_bn may have folded into a conv or fc


@dataclass
class Step:
    """One IR node of the optimised graph and how it runs."""

    node: str
    op: str
    kind: str  # "triton", "torch" (fallback), "view", "input", "none" (eliminated concat, routed slice)
    family: str  # what the launcher runs for it (`table.Rule.family`)
    kernel: str  # the Triton wrapper or the fallback's description
    covers: tuple[str, ...]  # the original IR nodes whose work this step does
    spans: tuple[str, ...]  # their `.cnn` spans, file:line:col
    ref: str | None  # the original node whose output equals this step's (for check), or None

    def where(self) -> str:
        return ", ".join(self.spans) if self.spans else "(no source span)"


@dataclass
class LaunchReport:
    """The optimisation report plus what the launcher emits."""

    optimize: OptimizeReport
    kernels: int  # Triton launches per forward pass
    fallbacks: list[tuple[str, str, str]] = field(default_factory=list)  # (node, what, span)
    views: int = 0
    kernel_ops: dict[str, int] = field(default_factory=dict)  # Triton launches by wrapper
    routed: int = 0  # branch slices a merged 1x1 convolution writes straight into their concat

    @property
    def conv_kernels(self) -> int:
        return self.kernel_ops.get("conv2d", 0)

    def __str__(self) -> str:
        o = self.optimize
        head = (f"{o.name}: {o.convs} convolutions → {self.conv_kernels} kernels"
                + (f" ({o.densified} subsampling / table layers as convolutions)" if o.densified else "") + ", "
                f"{o.residual_adds_fused} residual adds fused, {o.concats_eliminated} concats eliminated"
                + (f", {o.bns_folded} batch norms folded" if o.bns_folded else "")
                + (f", {o.highways_fused} highway gates fused" if o.highways_fused else "")
                + (f", {o.prologues} pre-activations moved into conv prologues" if o.prologues else "")
                + (f", {o.gates_fused} SE gates multiplied in by the convs reading them" if o.gates_fused else "")
                + (f", {o.shuffles_folded} channel shuffles written by their concat's producers" if o.shuffles_folded
                   else "")
                + (f", {o.post_norms} batch norms after an add fused" if o.post_norms else ""))
        by_op = ", ".join(f"{n} {k}" for k, n in sorted(self.kernel_ops.items()))
        lines = [head,
                 f"launches per forward: {self.kernels} Triton kernels ({by_op}) + {len(self.fallbacks)} torch "
                 f"fallbacks; {self.views} views"
                 + (f"; {self.routed} merged-1x1 branch slices written straight into their concats"
                    if self.routed else ""),
                 f"passes: {o}"]
        if self.fallbacks:
            lines.append(f"torch fallbacks ({len(self.fallbacks)}):")
            lines += [f"  {node}: {what}  [{span}]" for node, what, span in self.fallbacks]
        else:
            lines.append("torch fallbacks: none")
        return "\n".join(lines)


@dataclass
class LaunchPlan:
    graph: nx.MultiDiGraph  # optimised
    original: nx.MultiDiGraph
    weights: dict[str, Any] | None
    steps: list[Step]
    hwc_flat: dict[str, tuple[int, int, int]]  # flat tensors stored in (h, w, c) order: node → (C, H, W)
    report: LaunchReport

    def listing(self) -> str:
        """One line per launch, in order: its number, what runs, the node, the `.cnn` lines it covers
        and the original nodes it absorbed (views and eliminated concats move no data: left out)."""
        rows = [(st.kernel if st.kind == "triton" else f"torch: {st.kernel}", st.node, st.where(),
                 ", ".join(st.covers[1:])) for st in self.steps if st.kind in ("triton", "torch")]
        w_kernel = max((len(r[0]) for r in rows), default=0)
        w_node = max((len(r[1]) for r in rows), default=0)
        lines = [f"{i:>4}  {k:<{w_kernel}}  {n:<{w_node}}  [{where}]" + (f"  + {also}" if also else "")
                 for i, (k, n, where, also) in enumerate(rows, 1)]
        return "\n".join(lines)


def _span(graph: nx.MultiDiGraph, node: str) -> str | None:
    if node not in graph:
        return None
    span = graph.nodes[node].get("span")
    return None if span is None else str(span)


def _folded_after(original: nx.MultiDiGraph, optimised: nx.MultiDiGraph, node: str) -> list[str]:
    """The bn/scale nodes fold_bn removed after `node` (its chain of sole consumers)."""
    chain: list[str] = []
    cur = node
    while cur in original:
        succ = list(original.successors(cur))
        if len(succ) != 1 or original.nodes[succ[0]]["op"] not in FOLDABLE or succ[0] in optimised:
            break
        cur = succ[0]
        chain.append(cur)
    return chain


def plan_launch(graph: nx.MultiDiGraph, weights: Mapping[str, Any] | None = None, batch: int = 1,
                itemsize: int = 2) -> LaunchPlan:
    """Optimise `graph` and decide what runs for each node; needs neither weights nor a device."""
    g, w, opt = optimize(graph, weights, batch=batch, itemsize=itemsize)
    steps: list[Step] = []
    hwc_flat: dict[str, tuple[int, int, int]] = {}
    fallbacks: list[tuple[str, str, str]] = []
    kernel_ops: dict[str, int] = {}
    views = 0
    for node, data in g.nodes(data=True):
        op, attrs = data["op"], data["attrs"]
        fused = tuple(attrs.get("fused", ()))
        covers = (node, *_folded_after(graph, g, node), *fused, *attrs.get("pre_fused", ()))
        ref: str | None = node if node in graph and graph.nodes[node]["op"] == op else None
        rule = rule_for(g, node)
        kind, family, kernel = rule.kind, rule.family, rule.describe(g, node)
        if family in (CONV_FAMILY, FC_FAMILY):
            if op.startswith("highway"):
                ref = node
            else:
                folded = _folded_after(graph, g, node)
                ref = fused[-1] if fused else (folded[-1] if folded else node)
            if ref not in graph:
                ref = None
        if op in IDENTITIES:
            src = inputs_of(g, node)[0]
            if src in hwc_flat:
                hwc_flat[node] = hwc_flat[src]
        elif op == "slice":
            ref = None
        elif family == "flatten":
            src_shape = g.nodes[inputs_of(g, node)[0]]["shape"]
            if len(src_shape) == 3:
                hwc_flat[node] = tuple(src_shape)  # type: ignore[assignment]
        if kind == "triton":
            kernel_ops[kernel] = kernel_ops.get(kernel, 0) + 1
        elif kind == "view":
            views += 1
        spans = tuple(s for s in (_span(graph, n) or _span(g, n) for n in covers) if s)
        step = Step(node, op, kind, family, kernel, covers, spans, ref)
        if kind == "torch":
            fallbacks.append((node, kernel, step.where()))
        steps.append(step)
    routed = sum(1 for st in steps if st.op == "slice" and st.kind == "none")
    report = LaunchReport(opt, sum(kernel_ops.values()), fallbacks, views, kernel_ops, routed)
    return LaunchPlan(g, graph, w, steps, hwc_flat, report)
