"""Prologue fusion: a batch norm (or `scale`) and its activation move into the convolutions that read them.

    fuse_prologue(graph, weights=None) -> (graph, weights)

Pre-activation networks (ResNet v2) compute `bn -> relu -> conv` where the bn cannot fold into
the layer before it (its input is a residual sum, a pool, or is read elsewhere too), nor into
the conv after it (that conv zero-pads the *activated* map: scaling its weights would change
the borders). Instead each reading conv applies the per-input-channel affine map and the
activation to the values it loads, before the zero padding: its *prologue*.

A chain `B -> A` (B a `bn` or `scale` node, A an optional activation, `relu`, `sigmoid`,
`tanh` or `stanh`, that B alone feeds) is fused when B has one input, B (and A) is no network
output, B feeds only A (when A exists), and every reader of the chain's last node is a
`fused_conv` at port 0 without a prologue yet. Then, with (s, t) the affine map of B (as in
fold_bn: y = x·s + t per channel):

- each reader gets attrs `pre = True`, `pre_act` (A's kind, or "none"), `pre_a`, `pre_s`, reads
  B's input at port 0, and lists B and A in `pre_fused`;
- weights: each reader gets `<reader>.pre_scale` = s and `<reader>.pre_shift` = t (B's input
  channels); B's keys are removed;
- B and A are removed.

Two readers (a pre-activated map read by a unit's first conv and by its projection shortcut)
both apply the prologue: the map is recomputed on load rather than stored. Run after
fuse_epilogue (the readers must be `fused_conv` nodes) and before concat_elim.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx

from cnndsl.ir.graph import inputs_of
from cnndsl.passes.common import (
    ACT_OPS,
    BN_PARAMS,
    NORM_OPS,
    Weights,
    act_of,
    clone,
    copy_weights,
    drop,
    get,
    is_output,
    like,
    only_input,
    out_edges,
    set_inputs,
    sole_consumer,
)
from cnndsl.passes.fold_bn import affine


def _chain(graph: nx.MultiDiGraph, node: str) -> list[str] | None:
    """[B] or [B, A] when the chain starting at bn/scale `node` can move into its readers."""
    if graph.nodes[node]["op"] not in NORM_OPS or only_input(graph, node) is None:
        return None
    if len(graph.nodes[only_input(graph, node)]["shape"]) != 3 or is_output(graph, node):
        return None
    chain = [node]
    nxt = sole_consumer(graph, node)
    if nxt is not None and nxt[1] == 0 and graph.nodes[nxt[0]]["op"] in ACT_OPS:
        chain.append(nxt[0])
    last = chain[-1]
    if is_output(graph, last):
        return None
    readers = out_edges(graph, last)
    if not readers:
        return None
    for dst, port in readers:
        data = graph.nodes[dst]
        if data["op"] != "fused_conv" or port != 0 or data["attrs"].get("pre"):
            return None
    return chain


def fuse_prologue(graph: nx.MultiDiGraph, weights: Mapping[str, Any] | None = None
                  ) -> tuple[nx.MultiDiGraph, Weights | None]:
    """Move bn/scale (+ activation) chains into the convolutions that read them (see the docstring)."""
    g = clone(graph)
    w = copy_weights(weights)
    for node in list(g.nodes):
        if node not in g:
            continue
        chain = _chain(g, node)
        if chain is None:
            continue
        src = only_input(g, node)
        last = chain[-1]
        kind, a, s_ = act_of(g.nodes[chain[1]]) if len(chain) == 2 else ("none", 1.0, 1.0)
        readers = sorted({dst for dst, _ in out_edges(g, last)}, key=list(g.nodes).index)
        if w is not None:
            scale, shift = affine(g, node, w)
            ref = get(w, f"{node}.weight", f"moving `{node}` into its readers")
            for dst in readers:
                w[f"{dst}.pre_scale"] = like(ref, scale)
                w[f"{dst}.pre_shift"] = like(ref, shift)
            drop(w, node, BN_PARAMS)
        for dst in readers:
            attrs = g.nodes[dst]["attrs"]
            attrs.update(pre=True, pre_act=kind, pre_a=a, pre_s=s_, pre_fused=tuple(chain))
            set_inputs(g, dst, [src, *inputs_of(g, dst)[1:]])
        g.remove_nodes_from(chain)
    return g, w
