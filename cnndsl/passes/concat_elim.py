"""Concat elimination: producers write straight into their channel slice of the concat's buffer.

    concat_elim(graph) -> graph

A `concat` node is eliminated when every one of its producers (its inputs, port order):

- appears once among its inputs;
- has exactly one consumer edge (this concat) and is not a network output;
- is an op that materialises its output: not `input` (the caller owns that buffer), not
  `flatten` or `dropout` (views / identities at inference); a producer that is itself a
  `concat` qualifies only if it was eliminated (nested concats: Inception-v3's E modules).

Then, and only then (all or nothing):

- each producer's attrs get `out_slice = (concat_node, channel_offset)`: the producer writes
  its C_i channels (features, for flat tensors) at channels [offset, offset + C_i) of the
  concat's output, offset = Σ C_j over the producers at lower ports;
- the concat's attrs get `eliminated = True`: it moves no data.

Nesting composes: a producer whose `out_slice` names a concat that itself has an
`out_slice` lives at the sum of the offsets in the outermost concat's buffer (a launcher
follows the chain until it reaches a concat without `out_slice`). A `slice` producer (from
fuse_1x1) with `out_slice` must be materialised into the concat buffer, not kept as a view:
when its producer is a (merged, possibly fused) convolution that routes no other slice yet, the
producer's attrs get `route = slice_node` (the convolution writes that channel range straight
into the concat's buffer; a kernel epilogue with two destinations); otherwise it is a copy.

Concats that do not qualify are left alone (they copy, as before). The torch backend ignores
the annotations: the graph computes the same function, and `to_torch` still concatenates.
"""

from __future__ import annotations

import networkx as nx

from cnndsl.ir.graph import inputs_of
from cnndsl.ir.registry import ops_with
from cnndsl.passes.common import clone, out_edges, sole_consumer

NOT_WRITABLE = ("input", "flatten", "dropout", *ops_with("noop"))
ROUTERS = ("conv", "fused_conv")  # producers whose kernel can send a channel range to a second buffer


def _writable(graph: nx.MultiDiGraph, producer: str, concat: str) -> bool:
    data = graph.nodes[producer]
    if data["op"] in NOT_WRITABLE or "out_slice" in data["attrs"]:
        return False
    if data["op"] == "concat" and not data["attrs"].get("eliminated"):
        return False
    edges = out_edges(graph, producer)
    return len(edges) == 1 and sole_consumer(graph, producer) is not None and edges[0][0] == concat


def concat_elim(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Annotate the concats whose producers can write into their slices (see the docstring)."""
    g = clone(graph)
    for node in list(g.nodes):
        if g.nodes[node]["op"] != "concat":
            continue
        producers = inputs_of(g, node)
        if len(set(producers)) != len(producers) or not all(_writable(g, p, node) for p in producers):
            continue
        offset = 0
        for p in producers:
            g.nodes[p]["attrs"]["out_slice"] = (node, offset)
            offset += g.nodes[p]["shape"][0]
        g.nodes[node]["attrs"]["eliminated"] = True
    for node, data in g.nodes(data=True):
        if data["op"] == "slice" and "out_slice" in data["attrs"]:
            src = inputs_of(g, node)[0]
            if g.nodes[src]["op"] in ROUTERS and "route" not in g.nodes[src]["attrs"]:
                g.nodes[src]["attrs"]["route"] = node
    return g


def routed_by(graph: nx.MultiDiGraph, node: str) -> str | None:
    """The convolution that writes slice `node` into its concat (`route`), or None."""
    if graph.nodes[node]["op"] != "slice":
        return None
    src = inputs_of(graph, node)[0]
    return src if graph.nodes[src]["attrs"].get("route") == node else None


def resolve_slice(graph: nx.MultiDiGraph, node: str) -> tuple[str, int] | None:
    """(outermost concat, channel offset) where `node`'s output lives, or None if it has its own buffer."""
    where = graph.nodes[node]["attrs"].get("out_slice")
    if where is None:
        return None
    concat, offset = where
    outer = resolve_slice(graph, concat)
    return (concat, offset) if outer is None else (outer[0], outer[1] + offset)
