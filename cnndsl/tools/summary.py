"""Summaries of a checked network: per layer name, op, output shape, parameters and MACs.

Works on the IR alone (no torch), so `cnndsl summary` is as fast as `cnndsl check`.
Parameters count weights and biases (batch norm's scale and shift included, its running
statistics not); MACs count the multiply-accumulates of conv and fc layers for one image.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import networkx as nx

from cnndsl.ir.infer import node_stats
from cnndsl.ir.registry import fmt_shape


@dataclass
class Row:
    name: str
    op: str
    shape: list[int]
    params: int
    macs: int
    connections: int = 0
    line: int | None = None


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

    def to_dict(self) -> dict:
        return asdict(self)

    def render(self, fmt: str = "text") -> str:
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=1)
        if fmt == "md":
            return self._markdown()
        return self._text()

    def _table(self) -> list[tuple[str, str, str, str, str]]:
        return [(r.name, r.op, fmt_shape(r.shape), f"{r.params:,}", f"{r.macs:,}") for r in self.rows]

    def _text(self) -> str:
        header = ("layer", "op", "output", "params", "MACs")
        rows = self._table()
        widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(5)]
        right = {3, 4}

        def line(cells) -> str:
            return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        out = [f"network {self.name}", line(header), line(["-" * w for w in widths])]
        out += [line(r) for r in rows]
        out.append(line(["-" * w for w in widths]))
        out += self._totals()
        return "\n".join(out)

    def _totals(self) -> list[str]:
        fixed = f" + {self.fixed_params:,} fixed" if self.fixed_params else ""
        return [
            f"inputs:  {', '.join(fmt_shape(s) for s in self.inputs)}",
            f"outputs: {', '.join(fmt_shape(s) for s in self.outputs)}",
            f"params:  {self.params:,} ({self.trainable_params:,} trainable{fixed})",
            f"MACs:    {self.macs:,} ({self.macs / 1e9:.2f} G)",
        ]

    def _markdown(self) -> str:
        out = [f"### {self.name}", "", "| layer | op | output | params | MACs |", "|---|---|---|---:|---:|"]
        out += [f"| `{a}` | {b} | {c} | {d} | {e} |" for a, b, c, d, e in self._table()]
        out += [""] + [f"- {t}" for t in self._totals()]
        return "\n".join(out)


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
    s.params = s.trainable_params + s.fixed_params
    s.inputs = [list(graph.nodes[n]["shape"]) for n in graph.graph["inputs"]]
    s.outputs = [list(graph.nodes[n]["shape"]) for n in graph.graph["outputs"]]
    return s
