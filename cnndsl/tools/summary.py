"""Rendering a summary (`cnndsl.ir.summary.Summary`) as text, md, json or csv.

Formats: `text` (aligned columns; a `rich` table when `tty=True`), `md`, `json`, `csv`. The
connections column is shown when a layer has connections that its MACs do not count
(LeNet's subsampling and RBF layers) or when asked for.
"""

from __future__ import annotations

import argparse
import csv
import io
import json

from cnndsl.ir.opdef import fmt_shape
from cnndsl.ir.summary import Summary, scaled

FORMATS = ("text", "md", "json", "csv")


def depth_arg(text: str) -> int | str:
    """argparse type of `--depth N|all|auto`: a whole number, 1 or more, or a word."""
    if text in ("all", "auto"):
        return text
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"depth must be at least 1, got {n}")
    return n


def render(summary: Summary, fmt: str = "text", *, depth: int | None = None, connections: bool | None = None,
           tty: bool = False, width: int | None = None) -> str:
    """The summary as `fmt` (text, md, json, csv), per layer or per block of `depth`.

    `connections`: show the connections column (None: when the network has LeNet-style
    layers). `tty`: draw the text table with `rich` (for a terminal) instead of plain columns.
    """
    s = summary.collapse(depth)
    if fmt == "json":
        return json.dumps(s.to_dict(), indent=1)
    if fmt == "csv":
        return _csv(s)
    columns = _columns(s, depth is not None, s.shows_connections(connections))
    if fmt == "md":
        return _markdown(s, columns)
    if fmt != "text":
        raise ValueError(f"unknown summary format {fmt!r} (expected one of {', '.join(FORMATS)})")
    if tty:
        try:
            return _rich(s, columns, width)
        except ImportError:  # rich is optional: plain columns without it
            pass
    return _text(s, columns)


def _columns(s: Summary, layers: bool, connections: bool) -> list[tuple[str, bool, list[str]]]:
    """(header, right-aligned, cells) per column."""
    cols = [("layer", False, [r.name for r in s.rows]), ("op", False, [r.op for r in s.rows])]
    if layers:
        cols.append(("layers", True, [f"{r.layers:,}" for r in s.rows]))
    cols += [
        ("output", False, [fmt_shape(r.shape) for r in s.rows]),
        ("params", True, [f"{r.params:,}" for r in s.rows]),
        ("MACs", True, [f"{r.macs:,}" for r in s.rows]),
    ]
    if connections:
        cols.append(("connections", True, [f"{r.connections:,}" for r in s.rows]))
    return cols

def _text(s: Summary, columns) -> str:
    widths = [max(len(h), *(len(c) for c in cells)) for h, _, cells in columns]

    def line(cells) -> str:
        return "  ".join(c.rjust(w) if right else c.ljust(w)
                         for c, w, (_, right, _) in zip(cells, widths, columns)).rstrip()

    rule = line(["-" * w for w in widths])
    out = [f"network {s.name}", line([h for h, _, _ in columns]), rule]
    out += [line(cells) for cells in zip(*(cells for _, _, cells in columns))]
    out.append(rule)
    out += _totals(s, columns)
    return "\n".join(out)

def _rich(s: Summary, columns, width: int | None) -> str:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"network [bold]{s.name}[/]", box=box.SIMPLE_HEAD, header_style="bold",
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
    for t in _totals(s, columns):
        key, _, value = t.partition(":")
        console.print(f"[bold]{key}:[/]{value}")
    return buf.getvalue().rstrip("\n")

def _mib(n: int) -> str:
    return f"{n / 2**20:,.2f} MiB"


def _totals(s: Summary, columns: list[tuple[str, bool, list[str]]]) -> list[str]:
    fixed = f" + {s.fixed_params:,} fixed" if s.fixed_params else ""
    weights, values = s.memory()
    links = sum(r.connections for r in s.rows)
    return [
        f"inputs:  {', '.join(fmt_shape(s) for s in s.inputs)}",
        f"outputs: {', '.join(fmt_shape(s) for s in s.outputs)}",
        f"memory:  {_mib(weights)} parameters + {_mib(values)} activations of one example = {_mib(weights + values)} "
        "(fp32; every layer's output, as a training step keeps them)",
        f"params:  {s.params:,} ({s.trainable_params:,} trainable{fixed})",
        f"MACs:    {s.macs:,} ({scaled(s.macs)})",
    ] + ([f"connections: {links:,} ({scaled(links)})"] if "connections" in [h for h, _, _ in columns] else [])

def _markdown(s: Summary, columns) -> str:
    header = "| " + " | ".join(h for h, _, _ in columns) + " |"
    align = "|" + "|".join("---:" if right else "---" for _, right, _ in columns) + "|"
    out = [f"### {s.name}", "", header, align]
    for cells in zip(*(cells for _, _, cells in columns)):
        out.append("| `" + cells[0] + "` | " + " | ".join(cells[1:]) + " |")
    out += [""] + [f"- {t}" for t in _totals(s, columns)]
    return "\n".join(out)

def _csv(s: Summary) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["layer", "op", "layers", "output", "params", "macs", "connections", "line"])
    for r in s.rows:
        writer.writerow([r.name, r.op, r.layers, fmt_shape(r.shape), r.params, r.macs, r.connections,
                         "" if r.line is None else r.line])
    return buf.getvalue().rstrip("\n")
