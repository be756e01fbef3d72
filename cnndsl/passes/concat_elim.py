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

A `channel_shuffle G` whose input is such a concat (read by nothing else, itself written into
no other concat) is folded into the producers' writes (ShuffleNetV2's `concat -> shuffle`):
when every producer's channels lie within one of the G groups, the shuffle's attrs get
`eliminated = True` and the concat's `out_slice = (shuffle, 0)` and `shuffle = G`: the
concat's channel k lands at channel (k mod C/G)·G + k div C/G of the shuffle's output, so a
producer of group g at concat offset o writes its channel c at (o − g·C/G + c)·G + g, a step
of G (`resolve_slice`). No kernel moves the shuffled data; the convolution epilogues and the
slice copies write it where the shuffle would have put it.

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
    for node in list(g.nodes):
        if g.nodes[node]["op"] == "channel_shuffle":
            _fold_shuffle(g, node)
    for node, data in g.nodes(data=True):
        if data["op"] == "slice" and "out_slice" in data["attrs"] and not _stepped(g, node):
            src = inputs_of(g, node)[0]
            if g.nodes[src]["op"] in ROUTERS and "route" not in g.nodes[src]["attrs"]:
                g.nodes[src]["attrs"]["route"] = node
    return g


def _fold_shuffle(g: nx.MultiDiGraph, shuffle: str) -> None:
    """Fold `shuffle` into its concat's writes when it qualifies (see the module docstring)."""
    (concat,) = inputs_of(g, shuffle)
    data = g.nodes[concat]
    if data["op"] != "concat" or not data["attrs"].get("eliminated") or "out_slice" in data["attrs"]:
        return
    if len(out_edges(g, concat)) != 1 or concat in g.graph["outputs"]:
        return
    groups, channels = g.nodes[shuffle]["attrs"]["groups"], data["shape"][0]
    per = channels // groups
    offset = 0
    for p in inputs_of(g, concat):
        width = g.nodes[p]["shape"][0]
        if offset // per != (offset + width - 1) // per or g.nodes[p]["op"] not in (*ROUTERS, "slice"):
            return
        offset += width
    data["attrs"].update(out_slice=(shuffle, 0), shuffle=groups)
    g.nodes[shuffle]["attrs"]["eliminated"] = True


def _stepped(graph: nx.MultiDiGraph, node: str) -> bool:
    where = resolve_slice(graph, node)
    return where is not None and where[2] != 1


def routed_by(graph: nx.MultiDiGraph, node: str) -> str | None:
    """The convolution that writes slice `node` into its concat (`route`), or None."""
    if graph.nodes[node]["op"] != "slice":
        return None
    src = inputs_of(graph, node)[0]
    return src if graph.nodes[src]["attrs"].get("route") == node else None


def resolve_slice(graph: nx.MultiDiGraph, node: str) -> tuple[str, int, int] | None:
    """(owner, offset, step): `node`'s channel c lives at channel offset + c·step of the output of
    `owner` (its outermost concat, or a folded shuffle); None if it has a buffer of its own."""
    if "out_slice" not in graph.nodes[node]["attrs"]:
        return None
    owner, offset, step = node, 0, 1
    while "out_slice" in graph.nodes[owner]["attrs"]:
        parent, at = graph.nodes[owner]["attrs"]["out_slice"]
        if owner != node and graph.nodes[owner]["attrs"].get("shuffle"):  # channel k → (k mod C/G)·G + k div C/G
            groups = graph.nodes[owner]["attrs"]["shuffle"]
            per = graph.nodes[owner]["shape"][0] // groups
            g = offset // per
            offset, step = (offset - g * per) * groups + g, step * groups
        owner, offset = parent, at + offset
    return owner, offset, step
