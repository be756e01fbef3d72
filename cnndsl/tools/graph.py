"""Drawings of a network with Graphviz: `cnndsl graph FILE -o net.svg|png|pdf|dot|html`.

The drawing is built from the IR alone. Each layer is a box labelled with its op and key
arguments (`conv 3x3/2, 64`); edges carry the shape that flows along them (`64x56x56`);
blocks (hierarchical names: `layer3.1.conv2` is in `layer3.1`, which is in `layer3`) are
nested clusters named `cluster_<prefix>`; the branches of a concat stand side by side in
their input order. Two things keep a big network readable:

- depth: names are cut to their first N components (as `cnndsl summary --depth N`), so a
  block deeper than N becomes one box (its name, output shape and parameters). By default
  the deepest level that still draws at most `AUTO_BOXES` boxes is chosen (resnet50: one box
  per bottleneck; googlenet: one box per inception branch).
- folding: a batch norm, activation, dropout, LRN or flatten that is the only consumer of
  the layer before it is written into that layer's box (`conv 7x7/2, 64` over `bn · relu`).

The output format comes from the file's extension: `.dot`/`.gv` (the Graphviz source, no
Graphviz needed), `.svg`, `.png`, `.pdf` (Graphviz's `dot` program), and `.html`: a page
that holds one SVG per depth, switched by buttons or by clicking a block to open it, and the
blocks as an expandable tree with their layers. Without `-o` the dot source is printed.

Needs the `graphviz` Python package (imported only here) and, except for `.dot`, Graphviz's
`dot` program (Debian/Ubuntu: `apt-get install graphviz`).
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import networkx as nx

from cnndsl.ir.infer import node_stats
from cnndsl.ir.opdef import fmt_shape
from cnndsl.ir.registry import REGISTRY, ops
from cnndsl.ir.summary import block_of, scaled
from cnndsl.tools.options import compile_for

FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot", ".html": "html", ".htm": "html"}
AUTO_BOXES = 70  # the automatic depth: the deepest level that draws at most this many boxes
FOLDED = frozenset(op.name for op in ops() if op.family in ("activation", "normalisation", "view"))
"""Single-input ops drawn inside the box of the layer before them (`conv 3x3, 64 + bn + relu`)."""

FONT = "Helvetica"
TRAIT_FILLS = {"conv": "#cfe2f3", "dense": "#fce5cd", "pool": "#d9ead3", "merge": "#eeeeee", "fused": "#eeeeee"}
"""Box colours by the op's traits (the first that matches); LeNet's layers by what they resemble."""
FILL = {
    **{op.name: next((c for t, c in TRAIT_FILLS.items() if op.has(t)), None) for op in ops()},
    "rbf": TRAIT_FILLS["dense"], "subsample": TRAIT_FILLS["pool"], "zeropad": TRAIT_FILLS["merge"], "input": "#fff2cc",
}
FILL = {op: colour for op, colour in FILL.items() if colour is not None}
BLOCK_FILL = "#e4d7f5"
OUTPUT_FILL = "#fff2cc"
CLUSTER_FILLS = ("#f6f6f6", "#ffffff")


# ---- the boxes to draw ------------------------------------------------------------------


@dataclass
class Box:
    """One drawn node: a layer (with the layers folded into it) or a collapsed block."""

    key: str  # the Graphviz node id: the layer's name or the block's prefix
    nodes: list[str]
    block: bool

    @property
    def parent(self) -> str:
        return self.key.rpartition(".")[0]


@dataclass
class View:
    """The network at one depth: boxes in creation order and the edges between them."""

    graph: nx.MultiDiGraph
    depth: int | None
    boxes: dict[str, Box]
    owner: dict[str, str]  # layer name → the key of its box
    edges: list[tuple[str, str, str]] = field(default_factory=list)  # (from box, to box, shape)

    def clusters(self) -> list[str]:
        """The block prefixes drawn as clusters, outermost first, in creation order: those that
        enclose two boxes or more (a block of one box is named in the box instead)."""
        count: dict[str, int] = {}
        for box in self.boxes.values():
            parts = box.parent.split(".") if box.parent else []
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                count[prefix] = count.get(prefix, 0) + 1
        return [c for c, n in count.items() if n > 1]

    def placement(self) -> dict[str, tuple[str, str | None]]:
        """Per box: the cluster it is drawn in ("": none) and the name of the block it stands
        for when that block's cluster is not drawn (None: no such block)."""
        kept = set(self.clusters())
        out = {}
        for key, box in self.boxes.items():
            parts = key.split(".")
            inside = ""
            for i in range(len(parts) - 1, 0, -1):
                if ".".join(parts[:i]) in kept:
                    inside = ".".join(parts[:i])
                    break
            rest = parts[len(inside.split(".")) if inside else 0:]
            named = box.block or key != box.nodes[0]  # a block, or a block of one layer cut at `depth`
            title = ".".join(rest) if named else ".".join(rest[:-1]) or None
            out[key] = (inside, title)
        return out


def max_depth(graph: nx.MultiDiGraph) -> int:
    """The number of components of the longest name: the depth that draws every layer."""
    return max(len(n.split(".")) for n in graph.nodes)


def make_view(graph: nx.MultiDiGraph, depth: int | None = None, fold: bool = True) -> View:
    """The boxes and edges of the drawing at `depth` (None: every layer)."""
    boxes: dict[str, Box] = {}
    owner: dict[str, str] = {}
    for node in graph.nodes:
        key = block_of(node, depth)
        if key in boxes:
            boxes[key].nodes.append(node)
        else:
            boxes[key] = Box(key, [node], False)
        owner[node] = key
    for box in boxes.values():
        box.block = len(box.nodes) > 1
    if fold:
        outputs = set(graph.graph["outputs"])
        for key in list(boxes):
            box = boxes[key]
            node = box.nodes[0]
            if box.block or graph.nodes[node]["op"] not in FOLDED or graph.in_degree(node) != 1:
                continue
            (pred,) = list(graph.predecessors(node))
            into = boxes[owner[pred]]
            if (into.block or into.nodes[-1] != pred or graph.out_degree(pred) != 1 or pred in outputs
                    or graph.nodes[into.nodes[0]]["op"] == "input" or into.parent != box.parent):
                continue
            into.nodes.append(node)
            owner[node] = into.key
            del boxes[key]
    view = View(graph, depth, boxes, owner)
    order = {n: i for i, n in enumerate(graph.nodes)}
    seen = set()
    for src, dst, _port in sorted(graph.edges(data="port"), key=lambda e: (order[e[1]], e[2] or 0)):
        a, b = owner[src], owner[dst]
        edge = (a, b, fmt_shape(graph.nodes[src]["shape"]))
        if a != b and edge not in seen:
            seen.add(edge)
            view.edges.append(edge)
    return view


def auto_depth(graph: nx.MultiDiGraph, limit: int = AUTO_BOXES, fold: bool = True) -> int | None:
    """The deepest level that draws at most `limit` boxes (None: every layer fits)."""
    deepest = max_depth(graph)
    best = 1
    for depth in range(1, deepest + 1):
        if len(make_view(graph, depth, fold).boxes) > limit:
            break
        best = depth
    return None if best == deepest else best


# ---- labels -------------------------------------------------------------------------------


def _hw(v) -> str:
    return fmt_shape(v) if isinstance(v, tuple) else str(v)


def op_label(graph: nx.MultiDiGraph, node: str) -> str:
    """A layer as a person would write it: `conv 3x3/2, 64`, `maxpool 3x3/2`, `fc 1000`."""
    data = graph.nodes[node]
    op, a = data["op"], data["attrs"]
    if op == "input":
        return f"input {fmt_shape(data['shape'])}"
    if REGISTRY[op].has("conv"):
        text = f"conv {_hw(a['kernel'])}"
        if tuple(a["stride"]) != (1, 1):
            text += "/" + (str(a["stride"][0]) if a["stride"][0] == a["stride"][1] else _hw(a["stride"]))
        text += f", {a['out']}"
        if a.get("groups", 1) != 1:
            text += f", groups {a['groups']}"
        if tuple(a.get("dilation", (1, 1))) != (1, 1):
            text += f", dilation {_hw(a['dilation'])}"
        if a.get("table"):
            text += ", table"
        return text if op == "conv" else f"{op} ({text})"
    if op in ("maxpool", "avgpool"):
        if a["kernel"] == "global":
            return f"{op} global"
        if a["adaptive"]:
            return f"{op} to {_hw(a['kernel'])}"
        stride = a["stride"]
        text = f"{op} {_hw(a['kernel'])}"
        if stride is not None and tuple(stride) != (1, 1):
            text += "/" + (str(stride[0]) if stride[0] == stride[1] else _hw(stride))
        return text
    if op in ("fc", "rbf", "fused_fc", "highway_fc"):
        return f"{op} {a['out']}"
    if op == "add":
        return "+" if a.get("scale", 1.0) == 1.0 else f"+ ×{a['scale']:g}"
    if op == "dropout":
        return f"dropout {a['p']:g}"
    if op == "lrn":
        return f"lrn {a['size']}"
    if op == "subsample":
        return f"subsample {_hw(a['kernel'])}"
    return op


def _compact(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 10_000:
        return f"{n / 1e3:.0f}k"
    if n >= 1_000:
        return f"{n / 1e3:.1f}k"
    return str(n)


def _short(key: str, parent: str) -> str:
    """A block's name inside its cluster: the last component (`branch2`), two when it is a number (`layer1.0`)."""
    parts = key.split(".")
    if len(parts) > 1 and parts[-1].isdigit():
        return ".".join(parts[-2:])
    return parts[-1] if parent else key


def _stats(graph: nx.MultiDiGraph, nodes: list[str]) -> tuple[int, int]:
    params = macs = 0
    for n in nodes:
        s = node_stats(graph, n)
        params += s.params + s.fixed_params
        macs += s.macs
    return params, macs


def block_lines(graph: nx.MultiDiGraph, nodes: list[str]) -> list[str]:
    """What a collapsed block does, in at most two lines: its main path (when it has at most four
    main layers) and what runs beside it (`shortcut: conv 1x1/2, 512`, `identity shortcut`, a
    highway's `gate: …`), or `concat of 4 branches`."""
    sub = graph.subgraph(nodes)
    main = [n for n in nodes if graph.nodes[n]["op"] not in FOLDED]
    concats = [n for n in main if graph.nodes[n]["op"] == "concat"]
    adds = [graph.nodes[n]["attrs"].get("scale", 1.0) for n in main if graph.nodes[n]["op"] == "add"]
    if concats and sub.in_degree(concats[-1]) > 1:
        lines = [f"concat of {sub.in_degree(concats[-1])} branches"]
        if adds:
            lines.append("residual" + (f", scale {adds[-1]:g}" if adds[-1] != 1.0 else ""))
        return lines
    path = [n for n in nx.dag_longest_path(sub) if n in main]
    if not path or len(path) > 4:
        return []
    lines = [" → ".join(op_label(graph, n) for n in path if graph.nodes[n]["op"] not in ("add", "highway"))]
    beside = [op_label(graph, n) for n in main if n not in path]
    residual = bool(adds)
    gated = any(graph.nodes[n]["op"] == "highway" for n in main)
    if beside:
        lines.append(("shortcut: " if residual else "gate: " if gated else "beside: ") + ", ".join(beside))
    elif residual:
        lines.append("identity shortcut" + (f", scale {adds[-1]:g}" if adds[-1] != 1.0 else ""))
    return [line for line in lines if line]


def box_attrs(view: View, box: Box, href: str | None = None, title: str | None = None,
              inside: str | None = None) -> dict[str, str]:
    """The Graphviz attributes of one box: an HTML-like label, shape, fill and tooltip.

    `title`: the name of the block a lone layer box stands for; `inside`: the cluster it is drawn in."""
    g = view.graph
    params, macs = _stats(g, box.nodes)
    last = g.nodes[box.nodes[-1]]
    tip = f"{box.key}: {fmt_shape(last['shape'])}, {params:,} params, {macs:,} MACs"
    if box.block:
        lines = [f"<b>{html.escape(_short(box.key, box.parent if inside is None else inside))}</b>"]
        what = block_lines(g, box.nodes)
        if what:
            lines.append(f'<font point-size="10">{html.escape(what[0])}</font>')
            lines += [f'<font point-size="9">{html.escape(w)}</font>' for w in what[1:]]
        lines.append(f'<font point-size="9" color="#555555">{fmt_shape(last["shape"])} · {_compact(params)} params</font>')
        attrs = {"label": "<" + "<br/>".join(lines) + ">", "fillcolor": BLOCK_FILL, "style": "rounded,filled,bold",
                 "tooltip": f"{tip} ({len(box.nodes)} layers)"}
        if href:
            attrs["href"] = href
        return attrs
    first = g.nodes[box.nodes[0]]
    op = first["op"]
    main = html.escape(op_label(g, box.nodes[0]))
    extra = [html.escape(op_label(g, n)) for n in box.nodes[1:]]
    if op == "add" and not extra and not title:
        return {"label": main, "shape": "circle", "width": "0.3", "height": "0.3", "fixedsize": "false",
                "fillcolor": FILL["add"], "style": "filled", "margin": "0.02", "tooltip": tip}
    label = main if not extra else f'{main}<br/><font point-size="9" color="#555555">{" · ".join(extra)}</font>'
    if title:
        label = f"<b>{html.escape(title)}</b><br/>{label}"
    attrs = {"label": f"<{label}>", "fillcolor": FILL.get(op, "#f3f3f3"), "tooltip": tip}
    if op == "input":
        attrs.update(shape="box", style="rounded,filled,bold")
    if op == "concat":
        attrs["ordering"] = "in"  # the branches side by side, in their input order
    return attrs


# ---- Graphviz -----------------------------------------------------------------------------


def to_dot(graph: nx.MultiDiGraph, depth: int | str | None = "auto", direction: str = "TB", fold: bool = True,
           links: bool = False) -> str:
    """The drawing as Graphviz dot source. `depth`: an int, None (every layer) or "auto"."""
    import graphviz

    if depth == "auto":
        depth = auto_depth(graph, fold=fold)
    view = make_view(graph, depth, fold)
    deeper = _levels(graph, fold) if links else []
    params, macs = _stats(graph, list(graph.nodes))
    dot = graphviz.Digraph(name=graph.graph["name"])
    title = (f'<<b>{html.escape(graph.graph["name"])}</b><br/><font point-size="10" color="#555555">'
             f"{params:,} params · {scaled(macs)} MACs</font>>")
    dot.attr(rankdir=direction, fontname=FONT, label=title, labelloc="t", nodesep="0.25", ranksep="0.3",
             newrank="true", tooltip=graph.graph["name"])
    dot.attr("node", shape="box", style="rounded,filled", fontname=FONT, fontsize="11", penwidth="0.8",
             color="#555555", margin="0.12,0.04", height="0.3")
    dot.attr("edge", fontname=FONT, fontsize="8", fontcolor="#666666", color="#888888", arrowsize="0.6")

    clusters = view.clusters()
    order = {n: i for i, n in enumerate(graph.nodes)}
    children: dict[str, list[tuple[int, str, str]]] = {}
    for c in clusters:
        first = min(order[n] for n in graph.nodes if n.startswith(c + "."))
        children.setdefault(c.rpartition(".")[0], []).append((first, "cluster", c))
    placed = view.placement()
    for box in view.boxes.values():
        children.setdefault(placed[box.key][0], []).append((order[box.nodes[0]], "box", box.key))

    def next_level(key: str) -> str | None:
        if not links:
            return None
        here = len(key.split("."))
        later = [d for d in deeper if d is None or d > here]
        if not later:
            return None
        return f"#depth={later[0] if later[0] is not None else 'all'}/{quote(key)}"

    def emit(container, prefix: str, level: int) -> None:
        for _, kind, key in sorted(children.get(prefix, [])):
            if kind == "box":
                container.node(key, **box_attrs(view, view.boxes[key], next_level(key), placed[key][1], prefix))
                continue
            with container.subgraph(name=f"cluster_{key}") as sub:
                members = [n for n in graph.nodes if n.startswith(key + ".")]
                p, _ = _stats(graph, members)
                shape = fmt_shape(graph.nodes[members[-1]]["shape"])
                sub.attr(label=f'<<b>{html.escape(_short(key, prefix))}</b> <font point-size="9" color="#555555">'
                               f"{shape} · {_compact(p)} params</font>>",
                         style="rounded,filled", fillcolor=CLUSTER_FILLS[level % 2], color="#aaaaaa",
                         fontname=FONT, fontsize="11", labeljust="l", tooltip=key)
                emit(sub, key, level + 1)

    emit(dot, "", 0)
    for a, b, shape in view.edges:
        dot.edge(a, b, label=f" {shape}")
    outs = graph.graph["outputs"]
    for i, out in enumerate(outs):
        name = f"__output{i}"
        dot.node(name, "output" if len(outs) == 1 else f"output {i}", shape="box", style="rounded,filled,bold",
                 fillcolor=OUTPUT_FILL)
        dot.edge(view.owner[out], name, label=f" {fmt_shape(graph.nodes[out]['shape'])}")
    return dot.source


def _levels(graph: nx.MultiDiGraph, fold: bool = True) -> list[int | None]:
    """The depths that draw different pictures, shallowest first; None is every layer."""
    out: list[int | None] = []
    last = -1
    deepest = max_depth(graph)
    for depth in range(1, deepest + 1):
        n = len(make_view(graph, depth, fold).boxes)
        if n != last:
            out.append(depth if depth < deepest else None)
            last = n
        elif depth == deepest:
            out[-1] = None
    return out


def render(graph: nx.MultiDiGraph, fmt: str, depth: int | str | None = "auto", direction: str = "TB",
           fold: bool = True) -> bytes:
    """The drawing as `fmt`: dot, svg, png, pdf (Graphviz's `dot` program) or html."""
    if fmt == "html":
        return to_html(graph, depth, direction, fold).encode("utf-8")
    source = to_dot(graph, depth, direction, fold)
    if fmt == "dot":
        return source.encode("utf-8")
    return _pipe(source, fmt)


def _pipe(source: str, fmt: str) -> bytes:
    import graphviz

    if fmt == "png":
        source = source.replace("{\n", "{\n\tdpi=144\n", 1)
    return graphviz.Source(source).pipe(format=fmt)


# ---- HTML ---------------------------------------------------------------------------------

HTML_STYLE = """
body { font-family: Helvetica, Arial, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .2em; } .stats { color: #555; margin-bottom: .8em; }
.bar button { font: inherit; margin: 0 .3em .3em 0; padding: .25em .8em; border: 1px solid #999;
  border-radius: 4px; background: #f4f4f4; cursor: pointer; }
.bar button.on { background: #5b3f8c; border-color: #5b3f8c; color: white; }
.level { display: none; overflow: auto; } .level.on { display: block; }
.level svg { max-width: 100%; height: auto; }
.hint { color: #666; font-size: .9em; }
g.cluster.hl > path, g.cluster.hl > g > a > path { stroke: #5b3f8c; stroke-width: 3px; }
details { margin-left: 1.2em; } summary { cursor: pointer; padding: .1em 0; }
summary .s, .layer .s { color: #666; font-size: .9em; } .layer { margin-left: 2.4em; font-family: monospace; }
"""

HTML_SCRIPT = """
function show(level) {
  document.querySelectorAll('.level').forEach(e => e.classList.toggle('on', e.dataset.level === level));
  document.querySelectorAll('.bar button').forEach(b => b.classList.toggle('on', b.dataset.level === level));
}
function fromHash() {
  const m = location.hash.match(/^#depth=(\\w+)(?:\\/(.+))?$/);
  if (!m || !document.querySelector('.level[data-level="' + m[1] + '"]')) return;
  show(m[1]);
  document.querySelectorAll('g.cluster.hl').forEach(g => g.classList.remove('hl'));
  if (!m[2]) return;
  const name = 'cluster_' + decodeURIComponent(m[2]);
  for (const t of document.querySelectorAll('.level.on g.cluster > title')) {
    if (t.textContent === name) {
      t.parentNode.classList.add('hl');
      t.parentNode.scrollIntoView({block: 'center'});
      break;
    }
  }
}
document.querySelectorAll('.bar button').forEach(b => b.addEventListener('click', () => {
  history.replaceState(null, '', '#depth=' + b.dataset.level); show(b.dataset.level);
}));
window.addEventListener('hashchange', fromHash);
show(START); fromHash();
"""


def _tree_html(graph: nx.MultiDiGraph) -> str:
    """The blocks as nested <details> (closed), each listing its layers."""
    lines: list[str] = []
    open_: list[str] = []  # the prefixes of the <details> now open

    def label(prefix: str) -> str:
        members = [n for n in graph.nodes if n == prefix or n.startswith(prefix + ".")]
        params, macs = _stats(graph, members)
        shape = fmt_shape(graph.nodes[members[-1]]["shape"])
        return (f"<summary><b>{html.escape(prefix)}</b> <span class=s>{shape} · {params:,} params · "
                f"{macs:,} MACs · {len(members)} layers</span></summary>")

    for node in graph.nodes:
        parts = node.split(".")
        parents = [".".join(parts[:i]) for i in range(1, len(parts))]
        while open_ and open_[-1] not in parents:
            open_.pop()
            lines.append("</details>")
        for p in parents[len(open_):]:
            lines.append(f'<details data-block="{html.escape(p)}">{label(p)}')
            open_.append(p)
        s = node_stats(graph, node)
        lines.append(f'<div class=layer>{html.escape(node)} <span class=s>{html.escape(op_label(graph, node))} → '
                     f"{fmt_shape(graph.nodes[node]['shape'])}, {s.params + s.fixed_params:,} params</span></div>")
    lines += ["</details>"] * len(open_)
    return "\n".join(lines)


def to_html(graph: nx.MultiDiGraph, depth: int | str | None = "auto", direction: str = "TB", fold: bool = True) -> str:
    """A self-contained page: one SVG per depth (buttons; a click on a block opens it) and the block tree."""
    if depth == "auto":
        depth = auto_depth(graph, fold=fold)
    levels = _levels(graph, fold)
    if depth not in levels:  # a depth that draws the same picture as a listed one
        depth = next((d for d in levels if d is not None and d >= depth), None) if depth is not None else None
    name = graph.graph["name"]
    params, macs = _stats(graph, list(graph.nodes))
    buttons, panes = [], []
    for level in levels:
        key = "all" if level is None else str(level)
        n = len(make_view(graph, level, fold).boxes)
        title = "every layer" if level is None else f"depth {level}"
        buttons.append(f'<button data-level="{key}" title="{n} boxes">{title}</button>')
        svg = _pipe(to_dot(graph, level, direction, fold, links=True), "svg").decode("utf-8")
        svg = svg[svg.index("<svg"):]
        panes.append(f'<div class="level" data-level="{key}">\n{svg}</div>')
    start = json.dumps("all" if depth is None else str(depth))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(name)} (cnndsl)</title>
<style>{HTML_STYLE}</style>
</head>
<body>
<h1>{html.escape(name)}</h1>
<div class="stats">{params:,} parameters · {scaled(macs)} MACs · {graph.number_of_nodes()} layers</div>
<div class="bar">{"".join(buttons)}</div>
<p class="hint">Click a purple block to open it (the next depth, with that block marked); hover a box for its name, parameters and MACs.</p>
{chr(10).join(panes)}
<h2>Blocks</h2>
{_tree_html(graph)}
<script>const START = {start};{HTML_SCRIPT}</script>
</body>
</html>
"""


# ---- the command ------------------------------------------------------------------------


def _depth(text: str) -> int | str | None:
    if text == "auto":
        return "auto"
    if text == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, `auto` or `all`, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"depth must be at least 1, got {n}")
    return n


def add_command(subparsers, common) -> None:
    p = subparsers.add_parser(
        "graph", help="draw the network with Graphviz (svg, png, pdf, dot, or an html page)",
        description="Draw FILE's network: layers labelled with their op, edges with shapes, blocks as "
                    "clusters. The format comes from -o's extension: .svg, .png, .pdf, .dot/.gv or .html "
                    "(a page whose blocks open and close). Without -o, print the dot source.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--output", metavar="PATH", help="write the drawing to PATH (.svg .png .pdf .dot .gv .html)")
    p.add_argument("--depth", type=_depth, default="auto", metavar="N",
                   help="draw blocks deeper than N components as one box each; `all` draws every layer; "
                        f"default `auto`: the deepest level with at most {AUTO_BOXES} boxes")
    p.add_argument("--direction", choices=["TB", "LR"], default="TB", help="top to bottom (default) or left to right")
    p.add_argument("--no-fold", dest="fold", action="store_false",
                   help="draw batch norms and activations as boxes of their own")
    common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    fmt = "dot"
    if args.output:
        fmt = FORMATS.get(Path(args.output).suffix.lower())
        if fmt is None:
            known = ", ".join(FORMATS)
            print(f"cnndsl graph: error: cannot tell the format of {args.output!r} from its extension "
                  f"(use one of {known})", file=sys.stderr)
            return 2
    net = compile_for(args, args.file)
    try:
        import graphviz
    except ImportError:
        print("cnndsl graph: error: the `graphviz` Python package is needed (pip install graphviz)", file=sys.stderr)
        return 1
    try:
        data = render(net.graph, fmt, args.depth, args.direction, args.fold)
    except graphviz.ExecutableNotFound:
        print(f"cnndsl graph: error: Graphviz's `dot` program is needed for {fmt} output and was not found "
              "(Debian/Ubuntu: apt-get install graphviz; or write a .dot file)", file=sys.stderr)
        return 1
    except graphviz.CalledProcessError as err:
        detail = (err.stderr or b"").decode("utf-8", "replace").strip()
        print(f"cnndsl graph: error: Graphviz failed: {detail or err}", file=sys.stderr)
        return 1
    if not args.output:
        sys.stdout.write(data.decode("utf-8"))
        return 0
    Path(args.output).write_bytes(data)
    print(f"wrote {args.output} ({fmt}, {len(data):,} bytes)")
    return 0
