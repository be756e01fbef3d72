"""Summaries of a checked network: per layer name, op, output shape, parameters and MACs.

Works on the IR alone (no torch), so `cnndsl summary` is as fast as `cnndsl check`.
Parameters count weights and biases (batch norm's scale and shift included, its running
statistics not); MACs count the multiply-accumulates of conv and fc layers for one image;
connections count LeCun's connections (LeNet-5's table I), shown when a layer has connections
that its MACs do not count (LeNet's subsampling and RBF layers) or when asked for.

`Summary.collapse(depth)` gives one row per block instead: hierarchical names cut to their
first `depth` components (`layer3.1.conv2` → `layer3.1` at depth 2), with the block's
parameters, MACs and connections summed and its output shape that of its last layer.

Formats: `text` (aligned columns; a `rich` table when `tty=True`), `md`, `json`, `csv`.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field, replace

import networkx as nx

from cnndsl.ir.infer import node_stats
from cnndsl.ir.opdef import fmt_shape

FORMATS = ("text", "md", "json", "csv")


def block_of(name: str, depth: int | None) -> str:
    """The name cut to its first `depth` components (`layer3.1.conv2`, 2 → `layer3.1`)."""
    if depth is None:
        return name
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    return ".".join(name.split(".")[:depth])


def depth_arg(text: str) -> int:
    """argparse type of `--depth N`: a whole number, 1 or more."""
    import argparse

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"depth must be at least 1, got {n}")
    return n


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

    def shows_connections(self, connections: bool | None = None) -> bool:
        """Whether the connections column is shown: as asked, or when a layer has connections but no MACs."""
        if connections is not None:
            return connections
        return any(r.connections and not r.macs for r in self.rows)

    def render(self, fmt: str = "text", *, depth: int | None = None, connections: bool | None = None,
               tty: bool = False, width: int | None = None) -> str:
        """The summary as `fmt` (text, md, json, csv), per layer or per block of `depth`.

        `connections`: show the connections column (None: when the network has LeNet-style
        layers). `tty`: draw the text table with `rich` (for a terminal) instead of plain columns.
        """
        s = self.collapse(depth)
        if fmt == "json":
            return json.dumps(s.to_dict(), indent=1)
        if fmt == "csv":
            return s._csv()
        columns = s._columns(depth is not None, s.shows_connections(connections))
        if fmt == "md":
            return s._markdown(columns)
        if fmt != "text":
            raise ValueError(f"unknown summary format {fmt!r} (expected one of {', '.join(FORMATS)})")
        if tty:
            try:
                return s._rich(columns, width)
            except ImportError:  # rich is optional: plain columns without it
                pass
        return s._text(columns)

    # ---- tables ---------------------------------------------------------------------

    def _columns(self, layers: bool, connections: bool) -> list[tuple[str, bool, list[str]]]:
        """(header, right-aligned, cells) per column."""
        cols = [("layer", False, [r.name for r in self.rows]), ("op", False, [r.op for r in self.rows])]
        if layers:
            cols.append(("layers", True, [f"{r.layers:,}" for r in self.rows]))
        cols += [
            ("output", False, [fmt_shape(r.shape) for r in self.rows]),
            ("params", True, [f"{r.params:,}" for r in self.rows]),
            ("MACs", True, [f"{r.macs:,}" for r in self.rows]),
        ]
        if connections:
            cols.append(("connections", True, [f"{r.connections:,}" for r in self.rows]))
        return cols

    def _text(self, columns) -> str:
        widths = [max(len(h), *(len(c) for c in cells)) for h, _, cells in columns]

        def line(cells) -> str:
            return "  ".join(c.rjust(w) if right else c.ljust(w)
                             for c, w, (_, right, _) in zip(cells, widths, columns)).rstrip()

        rule = line(["-" * w for w in widths])
        out = [f"network {self.name}", line([h for h, _, _ in columns]), rule]
        out += [line(cells) for cells in zip(*(cells for _, _, cells in columns))]
        out.append(rule)
        out += self._totals()
        return "\n".join(out)

    def _rich(self, columns, width: int | None) -> str:
        from rich import box
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"network [bold]{self.name}[/]", box=box.SIMPLE_HEAD, header_style="bold",
                      title_justify="left")
        for header, right, _ in columns:
            table.add_column(header, justify="right" if right else "left", no_wrap=True,
                             style="cyan" if header == "layer" else None)
        params = [h for h, _, _ in columns].index("params")
        for cells in zip(*(cells for _, _, cells in columns)):
            table.add_row(*cells, style="dim" if cells[params] == "0" else None)  # parameter-free layers dimmed
        buf = io.StringIO()
        console = Console(file=buf, force_terminal=True, width=width, highlight=False)
        console.print(table)
        for t in self._totals():
            key, _, value = t.partition(":")
            console.print(f"[bold]{key}:[/]{value}")
        return buf.getvalue().rstrip("\n")

    def _totals(self) -> list[str]:
        fixed = f" + {self.fixed_params:,} fixed" if self.fixed_params else ""
        return [
            f"inputs:  {', '.join(fmt_shape(s) for s in self.inputs)}",
            f"outputs: {', '.join(fmt_shape(s) for s in self.outputs)}",
            f"params:  {self.params:,} ({self.trainable_params:,} trainable{fixed})",
            f"MACs:    {self.macs:,} ({self.macs / 1e9:.2f} G)",
        ]

    def _markdown(self, columns) -> str:
        header = "| " + " | ".join(h for h, _, _ in columns) + " |"
        align = "|" + "|".join("---:" if right else "---" for _, right, _ in columns) + "|"
        out = [f"### {self.name}", "", header, align]
        for cells in zip(*(cells for _, _, cells in columns)):
            out.append("| `" + cells[0] + "` | " + " | ".join(cells[1:]) + " |")
        out += [""] + [f"- {t}" for t in self._totals()]
        return "\n".join(out)

    def _csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["layer", "op", "layers", "output", "params", "macs", "connections", "line"])
        for r in self.rows:
            writer.writerow([r.name, r.op, r.layers, fmt_shape(r.shape), r.params, r.macs, r.connections,
                             "" if r.line is None else r.line])
        return buf.getvalue().rstrip("\n")


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
