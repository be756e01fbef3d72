"""Shape inference over a whole IR graph, and per-node statistics (params, MACs).

Elaboration infers each node's shape as it creates it (so errors point at the layer);
`infer_shapes` re-runs the same registry rules over an existing graph, which is how a
pass or a JSON round trip is re-checked.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from cnndsl.ir.graph import in_shapes
from cnndsl.ir.opdef import Shape
from cnndsl.ir.registry import REGISTRY


def infer_shapes(graph: nx.MultiDiGraph) -> dict[str, Shape]:
    """Recompute every node's shape with the registry's rules; return the changed ones."""
    changed: dict[str, Shape] = {}
    for node in nx.topological_sort(graph):
        data = graph.nodes[node]
        shape = REGISTRY[data["op"]].shape(data["attrs"], in_shapes(graph, node))
        if tuple(shape) != tuple(data.get("shape", ())):
            changed[node] = shape
        data["shape"] = tuple(shape)
    return changed


@dataclass(frozen=True)
class NodeStats:
    params: int
    fixed_params: int
    macs: int
    connections: int


def node_stats(graph: nx.MultiDiGraph, node: str) -> NodeStats:
    data = graph.nodes[node]
    op = REGISTRY[data["op"]]
    ins, out = in_shapes(graph, node), data["shape"]
    return NodeStats(
        op.param_count(data["attrs"], ins, out),
        op.fixed_params(data["attrs"], ins, out),
        op.macs(data["attrs"], ins, out),
        op.connections(data["attrs"], ins, out),
    )
