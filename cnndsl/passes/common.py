"""What every pass shares: copying and rewiring the IR, and reading/writing weights.

Weights are a mapping `"<node>.<param>" -> tensor`, the torch backend's `state_dict()`
(or numpy arrays). Passes compute on float64 numpy copies and hand back values of the kind
they were given: a torch tensor (same dtype and device) for a torch tensor, an array for
anything else. torch is never imported here: a torch tensor's own module is looked up in
`sys.modules`, where it must already be.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import networkx as nx
import numpy as np

from cnndsl.ir.graph import in_shapes, inputs_of
from cnndsl.ir.registry import REGISTRY, ops_with

Weights = dict[str, Any]

ACT_OPS = ops_with("activation")  # fused into the epilogues and prologues
NORM_OPS = ops_with("normalisation")  # per-channel affine: folded into the layer before, or a prologue


def clone(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """A deep copy: a pass edits the copy, never its input."""
    return copy.deepcopy(graph)


def copy_weights(weights: Mapping[str, Any] | None) -> Weights | None:
    """A new dict holding the same values (values are replaced, never changed in place)."""
    return None if weights is None else dict(weights)


def out_edges(graph: nx.MultiDiGraph, node: str) -> list[tuple[str, int]]:
    """(consumer, port) for every edge leaving `node`."""
    return [(dst, port) for _, dst, port in graph.out_edges(node, data="port")]


def is_output(graph: nx.MultiDiGraph, node: str) -> bool:
    return node in graph.graph["outputs"]


def sole_consumer(graph: nx.MultiDiGraph, node: str) -> tuple[str, int] | None:
    """(consumer, port) when exactly one edge leaves `node` and it is not a network output."""
    edges = out_edges(graph, node)
    if len(edges) != 1 or is_output(graph, node):
        return None
    return edges[0]


def redirect(graph: nx.MultiDiGraph, old: str, new: str) -> None:
    """Every consumer of `old` reads `new` instead (same ports); outputs follow."""
    for _, dst, key, port in list(graph.out_edges(old, keys=True, data="port")):
        graph.remove_edge(old, dst, key)
        graph.add_edge(new, dst, port=port)
    graph.graph["outputs"] = [new if n == old else n for n in graph.graph["outputs"]]


def add_node(graph: nx.MultiDiGraph, name: str, op: str, attrs: dict[str, Any], inputs: list[str],
             span: Any = None) -> str:
    """Add a node reading `inputs` (sources[i] feeds port i); its shape is the op's registry rule."""
    graph.add_node(name, op=op, attrs=attrs, span=span)
    for port, src in enumerate(inputs):
        graph.add_edge(src, name, port=port)
    graph.nodes[name]["shape"] = tuple(REGISTRY[op].shape(attrs, in_shapes(graph, name)))
    return name


def set_inputs(graph: nx.MultiDiGraph, node: str, sources: list[str]) -> None:
    """Replace a node's in-edges: sources[i] feeds port i."""
    for src, _, key in list(graph.in_edges(node, keys=True)):
        graph.remove_edge(src, node, key)
    for port, src in enumerate(sources):
        graph.add_edge(src, node, port=port)


def reorder(graph: nx.MultiDiGraph, order: Iterable[str]) -> nx.MultiDiGraph:
    """The same graph with its nodes in `order` (node order is the IR's execution order)."""
    out = nx.MultiDiGraph(**graph.graph)
    order = list(order)
    assert sorted(order) == sorted(graph.nodes), "reorder needs every node exactly once"
    for node in order:
        out.add_node(node, **graph.nodes[node])
    for src, dst, port in graph.edges(data="port"):
        out.add_edge(src, dst, port=port)
    return out


def unique_name(graph: nx.MultiDiGraph, base: str) -> str:
    if base not in graph:
        return base
    i = 2
    while f"{base}_{i}" in graph:
        i += 1
    return f"{base}_{i}"


def only_input(graph: nx.MultiDiGraph, node: str) -> str | None:
    ins = inputs_of(graph, node)
    return ins[0] if len(ins) == 1 else None


def act_of(data: dict[str, Any]) -> tuple[str, float, float]:
    """An activation node as the fused ops spell it: (kind, a, s), a and s its scalars."""
    maths = REGISTRY[data["op"]].maths
    assert maths is not None, f"{data['op']} is not an activation"
    return (data["op"], *maths.scalar_values(data["attrs"]))


def layer_kind(data: dict[str, Any]) -> str | None:
    """"conv" or "dense" for an unfused conv or fc layer that passes may rewrite, else None.

    LeNet's connection-table convolutions are left alone (densify makes them plain first)."""
    op = REGISTRY[data["op"]]
    if op.has("fused"):
        return None
    if op.has("conv"):
        return "conv" if data["attrs"].get("table") is None else None
    return "dense" if op.has("dense") else None


def count_ops(graph: nx.MultiDiGraph) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, op in graph.nodes(data="op"):
        counts[op] = counts.get(op, 0) + 1
    return counts


# ---- weights ------------------------------------------------------------------------------


def to_array(value: Any) -> np.ndarray:
    """A float64 numpy copy of a tensor or array."""
    if hasattr(value, "detach"):  # a torch tensor (bf16/fp16 included)
        value = value.detach().to("cpu")
        if value.is_floating_point():
            value = value.double()
        return value.numpy().astype(np.float64, copy=True)
    return np.array(value, dtype=np.float64, copy=True)


def like(reference: Any, array: np.ndarray) -> Any:
    """`array` as the kind of `reference`: a torch tensor of its dtype and device, or an array."""
    if type(reference).__module__.split(".")[0] == "torch":
        torch = sys.modules["torch"]
        return torch.from_numpy(np.ascontiguousarray(array)).to(dtype=reference.dtype, device=reference.device)
    return np.asarray(array, dtype=np.asarray(reference).dtype)


def get(weights: Mapping[str, Any], key: str, why: str) -> Any:
    try:
        return weights[key]
    except KeyError:
        raise KeyError(f"{why} needs the weight {key!r}, which the weights mapping lacks") from None


def drop(weights: Weights, node: str, params: Iterable[str]) -> None:
    for p in params:
        weights.pop(f"{node}.{p}", None)


LAYER_PARAMS = ("weight", "bias")
BN_PARAMS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
