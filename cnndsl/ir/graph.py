"""The IR: a `networkx.MultiDiGraph` with one node per op instance.

Node key = the hierarchical name (`layer3.1.conv2`). Node data: `op` (registry key),
`attrs` (resolved values), `span` (where the source wrote it) and `shape` (inferred
output shape, batch left out). Edges carry `port`, the input position. The graph's own
data holds `name`, `inputs` and `outputs` (lists of node keys) and `params` (the
network-level parameters as bound).
"""

from __future__ import annotations

import json
from typing import Any

import networkx as nx

from cnndsl.diagnostics import Span
from cnndsl.ir.opdef import Shape
from cnndsl.ir.registry import REGISTRY

IR_FORMAT = "cnndsl-ir/1"


def new_graph(name: str) -> nx.MultiDiGraph:
    graph = nx.MultiDiGraph(name=name, inputs=[], outputs=[], params={})
    return graph


def inputs_of(graph: nx.MultiDiGraph, node: str) -> list[str]:
    """The producers of a node's inputs, ordered by port."""
    edges = sorted(graph.in_edges(node, data="port"), key=lambda e: e[2])
    return [src for src, _, _ in edges]


def in_shapes(graph: nx.MultiDiGraph, node: str) -> list[Shape]:
    return [graph.nodes[src]["shape"] for src in inputs_of(graph, node)]


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def _from_jsonable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_from_jsonable(v) for v in value)
    return value


def to_json(graph: nx.MultiDiGraph) -> dict[str, Any]:
    """A plain-data form of the IR (stable key order: the node order)."""
    nodes = []
    for key, data in graph.nodes(data=True):
        span: Span | None = data.get("span")
        nodes.append(
            {
                "name": key,
                "op": data["op"],
                "attrs": {k: _jsonable(v) for k, v in data["attrs"].items()},
                "inputs": inputs_of(graph, key),
                "shape": list(data["shape"]),
                "span": [span.file, span.line, span.col, span.end_line, span.end_col] if span else None,
            }
        )
    return {
        "format": IR_FORMAT,
        "name": graph.graph["name"],
        "params": {k: _jsonable(v) for k, v in graph.graph.get("params", {}).items()},
        "inputs": list(graph.graph["inputs"]),
        "outputs": list(graph.graph["outputs"]),
        "nodes": nodes,
    }


def from_json(data: dict[str, Any]) -> nx.MultiDiGraph:
    """Rebuild the IR from `to_json`'s output (shapes included, as stored)."""
    if data.get("format") != IR_FORMAT:
        raise ValueError(f"not a cnndsl IR document (format {data.get('format')!r}, expected {IR_FORMAT!r})")
    graph = new_graph(data["name"])
    graph.graph["params"] = {k: _from_jsonable(v) for k, v in data.get("params", {}).items()}
    for node in data["nodes"]:
        if node["op"] not in REGISTRY:
            raise ValueError(f"unknown op {node['op']!r} in IR node {node['name']!r}")
        span = Span(*node["span"]) if node.get("span") else None
        graph.add_node(
            node["name"],
            op=node["op"],
            attrs={k: _from_jsonable(v) for k, v in node["attrs"].items()},
            shape=tuple(node["shape"]),
            span=span,
        )
        for port, src in enumerate(node["inputs"]):
            graph.add_edge(src, node["name"], port=port)
    graph.graph["inputs"] = list(data["inputs"])
    graph.graph["outputs"] = list(data["outputs"])
    return graph


def dumps(graph: nx.MultiDiGraph) -> str:
    return json.dumps(to_json(graph), indent=1)


def loads(text: str) -> nx.MultiDiGraph:
    return from_json(json.loads(text))
