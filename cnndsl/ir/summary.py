"""A checked network's summary: per layer name, op, output shape, parameters and MACs.

Works on the IR alone (no torch), so `cnndsl summary` is as fast as `cnndsl check`.
Parameters count weights and biases (batch norm's scale and shift included, its running
statistics not); MACs count the multiply-accumulates of conv and fc layers for one image;
connections count LeCun's connections (LeNet-5's table I).

`Summary.collapse(depth)` gives one row per block instead: hierarchical names cut to their
first `depth` components (`layer3.1.conv2` → `layer3.1` at depth 2), with the block's
parameters, MACs and connections summed and its output shape that of its last layer.
The renderers (text, md, json, csv, rich) are tools: `cnndsl.tools.summary.render`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import networkx as nx

from cnndsl.ir.infer import node_stats


def scaled(n: float) -> str:
    """A count in the unit that fits it: 11.51 G, 325.68 K, 42 (LeNet's MACs are not `0.00 G`)."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:g}"


def block_of(name: str, depth: int | None) -> str:
    """The name cut to its first `depth` components (`layer3.1.conv2`, 2 → `layer3.1`)."""
    if depth is None:
        return name
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    return ".".join(name.split(".")[:depth])


@dataclass
class Row:
    name: str
    op: str
    shape: list[int]
    params: int
    macs: int
    connections: int = 0
    line: int | None = None
    layers: int = 1  # >1 for a block of a collapsed summary


@dataclass
class Summary:
    name: str
    rows: list[Row] = field(default_factory=list)
    params: int = 0
    trainable_params: int = 0
    fixed_params: int = 0
    macs: int = 0
    inputs: list[list[int]] = field(default_factory=list)
    outputs: list[list[int]] = field(default_factory=list)
    activations: int = 0  # values of one example: every layer's output, inputs included

    def memory(self, itemsize: int = 4) -> tuple[int, int]:
        """(parameter bytes, activation bytes of one example) in fp32 unless `itemsize` says otherwise."""
        return self.params * itemsize, self.activations * itemsize

    def to_dict(self) -> dict:
        return asdict(self)

    def collapse(self, depth: int | None) -> Summary:
        """One row per block of names cut to `depth` components, in order of first appearance."""
        if depth is None:
            return self
        groups: dict[str, list[Row]] = {}
        for row in self.rows:
            groups.setdefault(block_of(row.name, depth), []).append(row)
        rows = []
        for key, members in groups.items():
            if len(members) == 1 and members[0].name == key:
                rows.append(members[0])
                continue
            rows.append(Row(key, "block" if len(members) > 1 else members[0].op, list(members[-1].shape),
                            sum(r.params for r in members), sum(r.macs for r in members),
                            sum(r.connections for r in members), None, sum(r.layers for r in members)))
        return replace(self, rows=rows)

    def auto_depth(self, max_rows: int = 80) -> int | None:
        """The depth a reader wants by default: every layer when there are at most `max_rows`,
        else the deepest block level that fits (ResNet-152: layer3.17, not its 515 layers)."""
        if len(self.rows) <= max_rows:
            return None
        deepest = max(len(r.name.split(".")) for r in self.rows)
        fitting = [d for d in range(1, deepest) if len(self.collapse(d).rows) <= max_rows]
        return max(fitting) if fitting else 1

    def shows_connections(self, connections: bool | None = None) -> bool:
        """Whether the connections column is shown: as asked, or when a layer has connections but no MACs."""
        if connections is not None:
            return connections
        return any(r.connections and not r.macs for r in self.rows)


def summarize(graph: nx.MultiDiGraph) -> Summary:
    s = Summary(graph.graph["name"])
    for node, data in graph.nodes(data=True):
        stats = node_stats(graph, node)
        span = data.get("span")
        s.rows.append(Row(node, data["op"], list(data["shape"]), stats.params + stats.fixed_params, stats.macs,
                          stats.connections, span.line if span else None))
        s.trainable_params += stats.params
        s.fixed_params += stats.fixed_params
        s.macs += stats.macs
        s.activations += math.prod(data["shape"])
    s.params = s.trainable_params + s.fixed_params
    s.inputs = [list(graph.nodes[n]["shape"]) for n in graph.graph["inputs"]]
    s.outputs = [list(graph.nodes[n]["shape"]) for n in graph.graph["outputs"]]
    return s
