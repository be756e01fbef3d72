"""Remove the ops that are the identity at inference (`identity`, `drop_path`: the `noop` trait).

    drop_noops(graph, weights=None) -> (graph, weights)

Each such node with one input that is not a network output is removed and its consumers read
its input (ports kept). It runs first, so that what the no-op stood between is fused as if it
were not there: `conv -> layerscale -> drop_path -> add` (a ConvNeXt block) becomes a conv whose
epilogue adds the residual. A no-op that is a network output stays (a view at run time).
The ops carry no weights: `weights` passes through unchanged. `dropout` is a view as before (it
is no `noop`: the reports count it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx

from cnndsl.ir.registry import ops_with
from cnndsl.passes.common import Weights, clone, copy_weights, is_output, only_input, redirect

NOOP_OPS = ops_with("noop")


def drop_noops(graph: nx.MultiDiGraph, weights: Mapping[str, Any] | None = None
               ) -> tuple[nx.MultiDiGraph, Weights | None]:
    """Remove every no-op that is no network output (see the module docstring)."""
    g = clone(graph)
    for node in list(g.nodes):
        src = only_input(g, node)
        if g.nodes[node]["op"] in NOOP_OPS and src is not None and not is_output(g, node):
            redirect(g, node, src)
            g.remove_node(node)
    return g, copy_weights(weights)
