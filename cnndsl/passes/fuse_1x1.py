"""Horizontal fusion: sibling 1x1 convolutions that read one tensor become one convolution.

    fuse_1x1(graph, weights=None) -> (graph, weights)

Candidates are `conv` nodes with a 1x1 kernel, groups = 1 and no connection table. Those that
read the same producer with the same stride, padding and dilation, and are followed by the
same activation (or by none), form a group; a conv (or conv -> activation) whose only
consumer is an `add` or a `highway` stays out (merged, its residual add or highway gate could
no longer be fused). A group of two or more (Inception's 1x1
branch and its 3x3/5x5 reduce convolutions) becomes:

- one new `conv` node, named `<common scope>.fused_1x1` (`fused_1x1` at the top level; `_2`,
  `_3` … appended if taken), placed just before the group's first member, with the members'
  attrs, `out` = the sum of their `out`, and `bias` = true if any member had a bias;
- each member node, under its own name and at its own place, turned into an internal
  `slice` node (attrs `start`, `stop`: its channel range [start, stop) of the merged output, in
  the group's node order) that reads the merged conv; its consumers are unchanged.

Weights: `<merged>.weight` is the members' weights concatenated along the output channels
(dim 0), `<merged>.bias` their biases (zeros for a member without one); the members' keys are
removed. `weights=None` transforms the graph only.

A `slice` is a view of its input (a channel range), unless `concat_elim` gives it an
`out_slice` (then its channels must be written into the concat's buffer: see concat_elim).
Run this pass after fold_bn (a bn after a member would stay unfolded) and before
fuse_epilogue (which fuses an activation that follows every slice of a merged conv).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np

from cnndsl.passes.common import (
    ACT_OPS,
    LAYER_PARAMS,
    Weights,
    act_of,
    add_node,
    clone,
    copy_weights,
    drop,
    get,
    layer_kind,
    like,
    only_input,
    reorder,
    set_inputs,
    sole_consumer,
    to_array,
    unique_name,
)


def _key(graph: nx.MultiDiGraph, node: str) -> tuple | None:
    data = graph.nodes[node]
    a = data["attrs"]
    if layer_kind(data) != "conv" or tuple(a["kernel"]) != (1, 1) or a["groups"] != 1:
        return None
    src = only_input(graph, node)
    if src is None:
        return None
    nxt = sole_consumer(graph, node)
    follow = graph.nodes[nxt[0]]["op"] if nxt is not None else None
    after = act_of(graph.nodes[nxt[0]]) if follow in ACT_OPS else None
    if after is not None:
        then = sole_consumer(graph, nxt[0])
        follow = graph.nodes[then[0]]["op"] if then is not None else None
    if follow in ("add", "highway"):
        return None  # merged, its residual add or highway gate could no longer be fused
    return (src, tuple(a["stride"]), tuple(a["pad"]), tuple(a["dilation"]), after)


def _scope(names: list[str]) -> str:
    parts = [n.split(".")[:-1] for n in names]
    common: list[str] = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return ".".join(common)


def sibling_groups(graph: nx.MultiDiGraph) -> list[list[str]]:
    """The groups of mergeable 1x1 convolutions (two or more each), in node order."""
    groups: dict[tuple, list[str]] = {}
    for node in graph.nodes:
        key = _key(graph, node)
        if key is not None:
            groups.setdefault(key, []).append(node)
    return [members for members in groups.values() if len(members) >= 2]


def fuse_1x1(graph: nx.MultiDiGraph, weights: Mapping[str, Any] | None = None) -> tuple[nx.MultiDiGraph, Weights | None]:
    """Merge sibling 1x1 convolutions (see the module docstring)."""
    g = clone(graph)
    w = copy_weights(weights)
    before: dict[str, str] = {}  # first member -> merged node placed just before it
    for members in sibling_groups(g):
        scope = _scope(members)
        merged = unique_name(g, f"{scope}.fused_1x1" if scope else "fused_1x1")
        first = g.nodes[members[0]]
        src = only_input(g, members[0])
        outs = [g.nodes[m]["attrs"]["out"] for m in members]
        has_bias = any(g.nodes[m]["attrs"]["bias"] for m in members)
        attrs = {**first["attrs"], "out": sum(outs), "bias": has_bias, "bias_init": None}
        add_node(g, merged, "conv", attrs, [src], first.get("span"))
        if w is not None:
            why = f"merging the 1x1 convolutions {', '.join(members)}"
            ref = get(w, f"{members[0]}.weight", why)
            kernels, biases = [], []
            for m, out in zip(members, outs):
                kernels.append(to_array(get(w, f"{m}.weight", why)))
                biases.append(to_array(w[f"{m}.bias"]) if g.nodes[m]["attrs"]["bias"] else np.zeros(out))
                drop(w, m, LAYER_PARAMS)
            w[f"{merged}.weight"] = like(ref, np.concatenate(kernels, axis=0))
            if has_bias:
                w[f"{merged}.bias"] = like(ref, np.concatenate(biases))
        start = 0
        for m, out in zip(members, outs):
            g.nodes[m]["op"] = "slice"
            g.nodes[m]["attrs"] = {"start": start, "stop": start + out}
            set_inputs(g, m, [merged])
            start += out
        before[members[0]] = merged
    if not before:
        return g, w
    merged_nodes = set(before.values())
    order: list[str] = []
    for node in g.nodes:
        if node in merged_nodes:
            continue
        if node in before:
            order.append(before[node])
        order.append(node)
    return reorder(g, order), w
