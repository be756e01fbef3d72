"""Warnings: likely mistakes that still compile, found by looking at the checked IR.

Each warning has a code; a `# cnndsl: ignore` comment on the line silences every warning
there, `# cnndsl: ignore[code]` just that one, and `--no-warnings` all of them.
"""

from __future__ import annotations

import networkx as nx

from cnndsl.diagnostics import Diagnostic
from cnndsl.ir.graph import inputs_of
from cnndsl.ir.memory import large_weights
from cnndsl.ir.opdef import fmt_shape


def _warning(code: str, message: str, data: dict, hint: str | None = None) -> Diagnostic:
    return Diagnostic(f"{message} [{code}]", data.get("span"), hint=hint, severity="warning", code=code)


def _unused(graph: nx.MultiDiGraph) -> list[Diagnostic]:
    outputs = set(graph.graph["outputs"])
    return [
        _warning("unused", f"`{node}` is computed but never used: nothing reads it and it is not an output", data,
                 hint="make it an output (`output @x` after binding it), or remove it")
        for node, data in graph.nodes(data=True)
        if graph.out_degree(node) == 0 and node not in outputs and data["op"] != "input"
    ]


def _dropout_after_softmax(graph: nx.MultiDiGraph) -> list[Diagnostic]:
    found = []
    for node, data in graph.nodes(data=True):
        if data["op"] == "dropout":
            (src,) = inputs_of(graph, node)
            if graph.nodes[src]["op"] == "softmax":
                found.append(_warning("dropout-after-softmax", f"dropout after a softmax (`{src}`) scrambles the "
                                      "class probabilities", data, hint="put dropout before the classifier's last fc"))
    return found


def _dropped_rows(graph: nx.MultiDiGraph) -> list[Diagnostic]:
    """Pooling windows that never reach the last rows or columns of their input."""
    found = []
    for node, data in graph.nodes(data=True):
        attrs = data["attrs"]
        if data["op"] not in ("maxpool", "avgpool") or attrs["kernel"] == "global" or attrs.get("adaptive"):
            continue
        (src,) = inputs_of(graph, node)
        _, h, w = graph.nodes[src]["shape"]
        lost = []
        for axis, size, k, s, p, out in (("row", h, *[attrs[a][0] for a in ("kernel", "stride", "pad")], data["shape"][1]),
                                         ("column", w, *[attrs[a][1] for a in ("kernel", "stride", "pad")], data["shape"][2])):
            covered = (out - 1) * s + k - p  # input positions that some window reaches
            if covered < size:
                lost.append(f"{size - covered} {axis}{'s' if size - covered > 1 else ''}")
        if lost:
            found.append(_warning(
                "pool-drops", f"{data['op']} on {fmt_shape(graph.nodes[src]['shape'])} ignores the last "
                f"{' and '.join(lost)}: the windows do not reach them", data,
                hint="use ceil=true (Caffe's rounding), padding, or a window/stride that divides the input"))
    return found


CHECKS = (_unused, _dropout_after_softmax, _dropped_rows, large_weights)


def lint(graph: nx.MultiDiGraph) -> list[Diagnostic]:
    """Every warning for a checked graph, in node order."""
    found = [d for check in CHECKS for d in check(graph)]
    return sorted(found, key=lambda d: (d.span.file, d.span.line, d.span.col) if d.span else ("", 0, 0))
