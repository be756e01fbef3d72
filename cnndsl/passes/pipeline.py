"""The optimisation pipeline: densify → fold_bn → fuse_1x1 → fuse_epilogue → fuse_post_norm →
fuse_prologue → concat_elim → plan_buffers.

    optimize(graph, weights=None, batch=1, itemsize=2, passes=PIPELINE) -> (graph, weights, OptimizeReport)

Each pass is a pure function (the input graph and weights are never changed); `passes` picks
a subset (in pipeline order). The report counts what changed, e.g.

    resnet18: 20 convolutions → 20 conv kernels; 20 of 20 batch norms folded; 17 activations,
    8 residual adds fused; 0 of 0 concats eliminated; 70 ops → 23 kernels; buffers: …

"Kernels" are the nodes a backend must launch something for: every node except inputs,
views (flatten, dropout, a `slice` without `out_slice`) and eliminated concats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx

from cnndsl.passes.common import ACT_OPS, Weights, count_ops
from cnndsl.passes.concat_elim import concat_elim
from cnndsl.passes.densify import densify
from cnndsl.passes.fold_bn import fold_bn
from cnndsl.passes.fuse_1x1 import fuse_1x1
from cnndsl.passes.fuse_epilogue import fuse_epilogue
from cnndsl.passes.fuse_post_norm import fuse_post_norm
from cnndsl.passes.fuse_prologue import fuse_prologue
from cnndsl.passes.plan_buffers import BufferReport, plan_buffers

PIPELINE = ("densify", "fold_bn", "fuse_1x1", "fuse_epilogue", "fuse_post_norm", "fuse_prologue", "concat_elim",
            "plan_buffers")
CONV_KERNELS = ("conv", "fused_conv", "highway_conv")


def kernel_count(graph: nx.MultiDiGraph) -> int:
    n = 0
    for _, data in graph.nodes(data=True):
        op, attrs = data["op"], data["attrs"]
        if op in ("input", "flatten", "dropout") or (op == "concat" and attrs.get("eliminated")):
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
    fcs: int
    fc_kernels: int
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
    concats: int
    concats_eliminated: int
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
            + (f", {self.highways_fused} highway gates" if self.highways_fused else "") + " fused",
            f"{self.concats_eliminated} of {self.concats} concats eliminated",
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
) -> tuple[nx.MultiDiGraph, Weights | None, OptimizeReport]:
    """Run the passes in pipeline order; return the graph, its weights and what changed."""
    unknown = set(passes) - set(PIPELINE)
    if unknown:
        raise ValueError(f"unknown pass(es) {sorted(unknown)}; the pipeline is {', '.join(PIPELINE)}")
    before = count_ops(graph)
    g, w = graph, (dict(weights) if weights is not None else None)
    merged_groups = convs_merged = 0
    densified = before.get("subsample", 0) + sum(1 for _, d in graph.nodes(data=True)
                                                 if d["op"] == "conv" and d["attrs"].get("table") is not None)
    if "densify" in passes:
        g, w = densify(g, w)
    else:
        densified = 0
    if "fold_bn" in passes:
        g, w = fold_bn(g, w)
    after_fold = count_ops(g)
    if "fuse_1x1" in passes:
        n_conv = count_ops(g).get("conv", 0)
        g, w = fuse_1x1(g, w)
        convs_merged = count_ops(g).get("slice", 0) - after_fold.get("slice", 0)
        merged_groups = count_ops(g).get("conv", 0) - (n_conv - convs_merged)
    acts_before = sum(count_ops(g).get(op, 0) for op in ACT_OPS)
    adds_before = count_ops(g).get("add", 0)
    if "fuse_epilogue" in passes:
        g, w = fuse_epilogue(g, w)
    after = count_ops(g)
    bns_before_pro = after.get("bn", 0) + after.get("scale", 0)
    if "fuse_post_norm" in passes:
        g, w = fuse_post_norm(g, w)
    post_norms = bns_before_pro - count_ops(g).get("bn", 0) - count_ops(g).get("scale", 0)
    bns_before_pro -= post_norms
    if "fuse_prologue" in passes:
        g, w = fuse_prologue(g, w)
    after = count_ops(g)
    if "concat_elim" in passes:
        g = concat_elim(g)
    buffers = None
    if "plan_buffers" in passes:
        g, buffers = plan_buffers(g, batch=batch, itemsize=itemsize)
    if g is graph:
        g = graph.copy()
    report = OptimizeReport(
        name=graph.graph.get("name", ""),
        convs=before.get("conv", 0),
        densified=densified,
        conv_kernels=sum(after.get(op, 0) for op in CONV_KERNELS),
        fcs=before.get("fc", 0),
        fc_kernels=sum(after.get(op, 0) for op in ("fc", "fused_fc", "highway_fc")),
        bns=before.get("bn", 0),
        bns_folded=before.get("bn", 0) - after_fold.get("bn", 0),
        scales_folded=before.get("scale", 0) - after_fold.get("scale", 0),
        convs_merged=convs_merged,
        merged_groups=merged_groups,
        acts_fused=acts_before - sum(after.get(op, 0) for op in ACT_OPS),
        residual_adds_fused=adds_before - after.get("add", 0),
        highways_fused=after.get("highway_conv", 0) + after.get("highway_fc", 0),
        prologues=bns_before_pro - after.get("bn", 0) - after.get("scale", 0),
        post_norms=post_norms,
        concats=before.get("concat", 0),
        concats_eliminated=sum(1 for _, d in g.nodes(data=True) if d["op"] == "concat" and d["attrs"].get("eliminated")),
        ops=sum(n for op, n in before.items() if op != "input"),
        kernels=kernel_count(g),
        buffers=buffers,
    )
    return g, w, report
