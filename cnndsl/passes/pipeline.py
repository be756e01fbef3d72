"""The optimisation pipeline: a list of named rewrites, run in order by one driver.

    run_passes(graph, weights=None, passes=PIPELINE, batch=1, itemsize=2, verify=None) -> (graph, weights, Trace)
    optimize(graph, weights=None, batch=1, itemsize=2, passes=PIPELINE, verify=None) -> (graph, weights, OptimizeReport)

`PASSES` lists each rewrite with its name and what it does; every pass is a pure function
(the input graph and weights are never changed) and `passes` picks a subset, always run in
pipeline order. With `verify` (default: the environment's `CNNDSL_VERIFY=1`; the tests set
it) the IR verifier (`cnndsl.ir.verify`) runs after every pass, and a pass that leaves more
unread nodes than it found is refused, so a broken rewrite is named where it happens. The
report counts what changed, from the op counts the driver records after each pass, e.g.

    resnet18: 20 convolutions → 20 conv kernels; 20 of 20 batch norms folded; 17 activations,
    8 residual adds fused; 0 of 0 concats eliminated; 70 ops → 23 kernels; buffers: …

"Kernels" are the nodes a backend must launch something for: every node except inputs,
views (flatten, dropout, a no-op left as an output, a `slice` without `out_slice`) and eliminated concats.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from cnndsl.ir.registry import REGISTRY, ops_with
from cnndsl.ir.verify import IRError, dangling
from cnndsl.ir.verify import verify as verify_ir
from cnndsl.passes.common import ACT_OPS, NORM_OPS, Weights, count_ops
from cnndsl.passes.concat_elim import concat_elim
from cnndsl.passes.densify import densify
from cnndsl.passes.drop_noops import drop_noops
from cnndsl.passes.fold_bn import fold_bn
from cnndsl.passes.fuse_1x1 import fuse_1x1
from cnndsl.passes.fuse_epilogue import fuse_epilogue
from cnndsl.passes.fuse_gate import fuse_gate
from cnndsl.passes.fuse_post_norm import fuse_post_norm
from cnndsl.passes.fuse_prologue import fuse_prologue
from cnndsl.passes.plan_buffers import BufferReport, plan_buffers

Rewrite = Callable[[nx.MultiDiGraph, "Weights | None", "Options"], "tuple[nx.MultiDiGraph, Weights | None, Any]"]


@dataclass(frozen=True)
class Options:
    """What a pass may need besides the graph and its weights."""

    batch: int = 1
    itemsize: int = 2


@dataclass(frozen=True)
class Pass:
    """One named rewrite: (graph, weights, options) → (graph, weights, what it reports)."""

    name: str
    doc: str
    rewrite: Rewrite


def _weights_pass(fn: Callable[[nx.MultiDiGraph, Weights | None], tuple[nx.MultiDiGraph, Weights | None]]) -> Rewrite:
    return lambda g, w, o: (*fn(g, w), None)


def _concat_elim(g: nx.MultiDiGraph, w: Weights | None, o: Options) -> tuple[nx.MultiDiGraph, Weights | None, None]:
    return concat_elim(g), w, None


def _plan_buffers(g: nx.MultiDiGraph, w: Weights | None, o: Options) -> tuple[nx.MultiDiGraph, Weights | None, Any]:
    planned, report = plan_buffers(g, batch=o.batch, itemsize=o.itemsize)
    return planned, w, report


PASSES: tuple[Pass, ...] = (
    Pass("drop_noops", "the identities at inference (identity, drop_path) removed", _weights_pass(drop_noops)),
    Pass("densify", "LeNet's subsampling and connection-table convs → plain (dense) convs", _weights_pass(densify)),
    Pass("fold_bn", "batch norm / scale into the conv or fc before it", _weights_pass(fold_bn)),
    Pass("fuse_1x1", "sibling 1x1 convs reading one input → one conv + channel slices", _weights_pass(fuse_1x1)),
    Pass("fuse_epilogue", "activations, residual adds and highway gates into the conv / fc that feeds them",
         _weights_pass(fuse_epilogue)),
    Pass("fuse_post_norm", "a bn (+ act) after a fused residual add into that layer's epilogue",
         _weights_pass(fuse_post_norm)),
    Pass("fuse_prologue", "a pre-activation bn (+ act) into the prologue of the convs reading it",
         _weights_pass(fuse_prologue)),
    Pass("fuse_gate", "a squeeze-and-excitation product into the convs reading the gated map",
         _weights_pass(fuse_gate)),
    Pass("concat_elim", "producers write straight into their slice of a concat", _concat_elim),
    Pass("plan_buffers", "liveness-based activation buffers (sizes for `batch` and `itemsize`)", _plan_buffers),
)
PIPELINE = tuple(p.name for p in PASSES)


@dataclass
class Trace:
    """What the driver saw: the op counts before any pass and after each pass (a skipped
    pass repeats the counts before it), and what each pass reported."""

    before: dict[str, int]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    reports: dict[str, Any] = field(default_factory=dict)


def _verify_default() -> bool:
    return os.environ.get("CNNDSL_VERIFY", "0").lower() in ("1", "true", "yes", "on")


def run_passes(
    graph: nx.MultiDiGraph,
    weights: Mapping[str, Any] | None = None,
    passes: Sequence[str] = PIPELINE,
    batch: int = 1,
    itemsize: int = 2,
    verify: bool | None = None,
) -> tuple[nx.MultiDiGraph, Weights | None, Trace]:
    """Run the chosen passes in pipeline order; verify the IR after each when asked."""
    unknown = set(passes) - set(PIPELINE)
    if unknown:
        raise ValueError(f"unknown pass(es) {sorted(unknown)}; the pipeline is {', '.join(PIPELINE)}")
    check = _verify_default() if verify is None else verify
    options = Options(batch, itemsize)
    g, w = graph, (dict(weights) if weights is not None else None)
    trace = Trace(count_ops(graph))
    unread = dangling(graph)
    for p in PASSES:
        if p.name in passes:
            g, w, report = p.rewrite(g, w, options)
            trace.reports[p.name] = report
            if check:
                verify_ir(g, where=p.name)
                if dangling(g) > unread:
                    raise IRError([f"{dangling(g) - unread} node(s) that nothing reads"], where=p.name)
        trace.counts[p.name] = count_ops(g)
    return (graph.copy() if g is graph else g), w, trace


def kernel_count(graph: nx.MultiDiGraph) -> int:
    n = 0
    for _, data in graph.nodes(data=True):
        op, attrs = data["op"], data["attrs"]
        if op == "input" or REGISTRY[op].has("view") or (op in ("concat", "channel_shuffle") and attrs.get("eliminated")):
            continue
        if op == "slice" and "out_slice" not in attrs:
            continue
        n += 1
    return n


@dataclass(frozen=True)
class OptimizeReport:
    name: str
    convs: int  # conv nodes before
    densified: int  # subsampling and connection-table layers rewritten as (dense) convolutions
    conv_kernels: int  # conv, fused_conv and highway_conv nodes after
    bns: int
    bns_folded: int
    scales_folded: int
    convs_merged: int  # 1x1 convolutions merged horizontally …
    merged_groups: int  # … into this many convolutions
    acts_fused: int
    residual_adds_fused: int
    highways_fused: int
    prologues: int  # batch norms / scales (with their activations) moved into the convs that read them
    post_norms: int  # batch norms / scales after a fused residual add, moved into that layer's epilogue
    gates_fused: int  # squeeze-and-excitation products multiplied in by the convs reading them
    concats: int
    concats_eliminated: int
    shuffles_folded: int  # channel shuffles performed by their concat's producers' writes (a channel step)
    ops: int  # nodes before (inputs excluded)
    kernels: int  # kernel_count after
    buffers: BufferReport | None

    def __str__(self) -> str:
        parts = [
            f"{self.convs} convolutions → {self.conv_kernels} conv kernels"
            + (f" ({self.convs_merged} 1x1 convolutions merged into {self.merged_groups})" if self.convs_merged else "")
            + (f" ({self.densified} subsampling / table layers as convolutions)" if self.densified else ""),
            f"{self.bns_folded} of {self.bns} batch norms folded" + (f", {self.scales_folded} scales" if self.scales_folded else "")
            + (f", {self.prologues} moved into conv prologues" if self.prologues else "")
            + (f", {self.post_norms} into epilogues after the add" if self.post_norms else ""),
            f"{self.acts_fused} activations, {self.residual_adds_fused} residual adds"
            + (f", {self.highways_fused} highway gates" if self.highways_fused else "")
            + (f", {self.gates_fused} SE gates" if self.gates_fused else "") + " fused",
            f"{self.concats_eliminated} of {self.concats} concats eliminated"
            + (f" ({self.shuffles_folded} channel shuffles folded into their writes)" if self.shuffles_folded else ""),
            f"{self.ops} ops → {self.kernels} kernels",
        ]
        text = f"{self.name}: " + "; ".join(parts)
        return text + (f"; buffers: {self.buffers}" if self.buffers else "")


def optimize(
    graph: nx.MultiDiGraph,
    weights: Mapping[str, Any] | None = None,
    batch: int = 1,
    itemsize: int = 2,
    passes: Sequence[str] = PIPELINE,
    verify: bool | None = None,
) -> tuple[nx.MultiDiGraph, Weights | None, OptimizeReport]:
    """Run the passes in pipeline order; return the graph, its weights and what changed."""
    g, w, trace = run_passes(graph, weights, passes, batch, itemsize, verify)
    c = trace.before
    at = trace.counts

    def total(counts: dict[str, int], names: Sequence[str]) -> int:
        return sum(counts.get(op, 0) for op in names)

    densified = 0
    if "densify" in passes:
        densified = c.get("subsample", 0) + sum(1 for _, d in graph.nodes(data=True)
                                                if d["op"] == "conv" and d["attrs"].get("table") is not None)
    fold, merged, epi, post, final = at["fold_bn"], at["fuse_1x1"], at["fuse_epilogue"], at["fuse_post_norm"], \
        at["fuse_prologue"]
    convs_merged = merged.get("slice", 0) - fold.get("slice", 0)
    report = OptimizeReport(
        name=graph.graph.get("name", ""),
        convs=c.get("conv", 0),
        densified=densified,
        conv_kernels=total(final, ops_with("conv")),
        bns=c.get("bn", 0),
        bns_folded=c.get("bn", 0) - fold.get("bn", 0),
        scales_folded=c.get("scale", 0) - fold.get("scale", 0),
        convs_merged=convs_merged,
        merged_groups=merged.get("conv", 0) - (fold.get("conv", 0) - convs_merged),
        acts_fused=total(merged, ACT_OPS) - total(final, ACT_OPS),
        residual_adds_fused=merged.get("add", 0) - final.get("add", 0),
        highways_fused=final.get("highway_conv", 0) + final.get("highway_fc", 0),
        prologues=total(post, NORM_OPS) - total(final, NORM_OPS),
        post_norms=total(epi, NORM_OPS) - total(post, NORM_OPS),
        gates_fused=final.get("mul", 0) - at["fuse_gate"].get("mul", 0),
        concats=c.get("concat", 0),
        concats_eliminated=sum(1 for _, d in g.nodes(data=True) if d["op"] == "concat" and d["attrs"].get("eliminated")),
        shuffles_folded=sum(1 for _, d in g.nodes(data=True)
                            if d["op"] == "channel_shuffle" and d["attrs"].get("eliminated")),
        ops=sum(n for op, n in c.items() if op != "input"),
        kernels=kernel_count(g),
        buffers=trace.reports.get("plan_buffers"),
    )
    return g, w, report
