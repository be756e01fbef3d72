"""Gate fusion: a squeeze-and-excitation product moves into the convolutions that read it.

    fuse_gate(graph, weights=None) -> (graph, weights)

An SE block ends in `mul @x @gate`, x a C×H×W map and the gate C×1×1 (global pool, two small
convs, a sigmoid); the gated map is read by one 1x1 convolution (MBConv's projection,
RegNetY's third conv). Computing the product as its own kernel writes the gated map and
reads it back: the conv can as well multiply each value it loads by the gate of its sample
and channel (`fused_conv` with ``in_gate``), so the gated map is never stored.

A `mul` node M with two distinct inputs, x of M's shape C×H×W (H·W > 1) and g of shape
C×1×1 (either order), is fused when M is no network output and every reader of M is a
`fused_conv` at port 0 with neither a prologue nor an input gate yet. Each reader then reads x
at port 0 and g as its last input, gets ``in_gate = true`` and lists M in `pre_fused`; M is
removed. Weights are unchanged (a mul has none). Run after fuse_prologue (a gated reader takes
no prologue after it) and before concat_elim and plan_buffers (the gate stays live until the
last reader has run: it is an input of each).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx

from cnndsl.ir.graph import inputs_of
from cnndsl.passes.common import Weights, clone, copy_weights, is_output, out_edges, set_inputs


def _operands(graph: nx.MultiDiGraph, node: str) -> tuple[str, str] | None:
    """(x, gate) when `node` is a mul of a C×H×W map by a C×1×1 gate whose readers can take it."""
    data = graph.nodes[node]
    ins = inputs_of(graph, node)
    if data["op"] != "mul" or len(ins) != 2 or ins[0] == ins[1] or is_output(graph, node):
        return None
    shape = tuple(data["shape"])
    if len(shape) != 3 or shape[1] * shape[2] == 1:
        return None
    shapes = [tuple(graph.nodes[n]["shape"]) for n in ins]
    gate_shape = (shape[0], 1, 1)
    if shapes == [shape, gate_shape]:
        x, gate = ins
    elif shapes == [gate_shape, shape]:
        gate, x = ins
    else:
        return None
    readers = out_edges(graph, node)
    if not readers:
        return None
    for dst, port in readers:
        attrs = graph.nodes[dst]["attrs"]
        if graph.nodes[dst]["op"] != "fused_conv" or port != 0 or attrs.get("pre") or attrs.get("in_gate"):
            return None
    return x, gate


def fuse_gate(graph: nx.MultiDiGraph, weights: Mapping[str, Any] | None = None
              ) -> tuple[nx.MultiDiGraph, Weights | None]:
    """Move gate products into the convolutions reading them (see the module docstring)."""
    g = clone(graph)
    for node in list(g.nodes):
        found = _operands(g, node)
        if found is None:
            continue
        x, gate = found
        for dst in sorted({dst for dst, _ in out_edges(g, node)}, key=list(g.nodes).index):
            attrs = g.nodes[dst]["attrs"]
            attrs.update(in_gate=True, pre_fused=(*attrs.get("pre_fused", ()), node))
            set_inputs(g, dst, [x, *inputs_of(g, dst)[1:], gate])
        g.remove_node(node)
    return g, copy_weights(weights)
