"""Fuse what follows a conv or fc (activation, residual add, activation; a highway gate) into it.

    fuse_epilogue(graph, weights=None) -> (graph, weights)

Two rewrites, both producing the internal ops of `cnndsl/ir/ops/fused.py` (whose docstring
gives their exact semantics):

1. Highway gates. A `highway` node (inputs H, T, x at ports 0, 1, 2) whose H and T are each
   `layer` or `layer -> activation`, the two layers of one kind and reading one tensor (two
   convs without a table, with equal kernel/out/stride/pad/dilation and groups = 1, or two
   fcs with equal `out`), every intermediate output feeding only the next node, becomes a `highway_conv` /
   `highway_fc` node *under the highway node's name and at its place*:
   port 0 = the layers' common input, port 1 = x (the carried input); attrs = the conv's
   kernel/out/stride/pad/dilation/groups (or fc's out), `bias` (true if either layer had
   one), `act`/`act_a`/`act_s` (H's activation), `gate_act`/`gate_a`/`gate_s` (T's), and
   `fused` (the absorbed node names). Weights: `<highway>.weight` = [W_H; W_T] stacked along
   the output channels (2·out rows, H's first), `<highway>.bias` likewise (zeros where a layer
   had no bias); the two layers' keys are removed.

2. Conv/fc epilogues. Every remaining `conv` (without a connection table) and every `fc`
   becomes a `fused_conv` / `fused_fc` node that keeps the layer's name (so its weights keep
   their keys: nothing to rewrite). Following the layer, as long as each output feeds only
   the next node and is not a network output, it absorbs:
     - an activation (relu, sigmoid, tanh, stanh) → `act`, `act_a`, `act_s`;
     - a two-operand `add` → `residual`="add", `scale` = the add's scale, port 1 = the other
       operand. The layer's chain must enter the add at port 0 (the scaled operand) unless
       the scale is 1. If the other operand is a `zeropad` node feeding only this add (a
       conv layer only), the zeropad is absorbed too: `residual`="zeropad", `res_stride` =
       its stride, port 1 = the zeropad's input;
     - after an add, an activation → `post_act`, `post_a`, `post_s`.
   When the layer's output feeds only `slice` nodes (a merged 1x1 conv of fuse_1x1), each of
   which feeds only an activation, all the same, that activation moves into the layer
   (`act`) and the slices feed the activations' consumers.
   The fused node is placed where the last absorbed node was (the residual operand may be
   computed after the layer), so node order stays a topological order; the consumers of the
   last absorbed node read the fused node (ports kept, network outputs renamed).
   `fused` lists the absorbed node names. A layer with nothing to absorb still becomes a
   fused op (act "none"), so a backend sees one conv kind.

Weights pass through unchanged except for highway layers; `weights=None` is allowed (then a
highway fusion has no weights to stack, and the graph is transformed alone).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np

from cnndsl.ir.graph import inputs_of
from cnndsl.passes.common import (
    ACT_OPS,
    LAYER_PARAMS,
    Weights,
    act_of,
    clone,
    copy_weights,
    drop,
    get,
    is_output,
    layer_kind,
    like,
    only_input,
    out_edges,
    redirect,
    reorder,
    set_inputs,
    sole_consumer,
    to_array,
)

CONV_KEYS = ("kernel", "out", "stride", "pad", "dilation", "groups", "bias")
FC_KEYS = ("out", "bias")
NO_ACT = ("none", 1.0, 1.0)


# ---- highway ----------------------------------------------------------------------------


def _highway_branch(graph: nx.MultiDiGraph, hw: str, port: int) -> tuple[str, tuple, list[str]] | None:
    """(layer, activation, absorbed nodes) of the chain feeding `hw` at `port`, if it fuses."""
    ins = inputs_of(graph, hw)
    end = ins[port]
    if sole_consumer(graph, end) != (hw, port):
        return None
    data = graph.nodes[end]
    if data["op"] in ACT_OPS:
        layer = only_input(graph, end)
        if layer is None or sole_consumer(graph, layer) != (end, 0):
            return None
        act, nodes = act_of(data), [layer, end]
    else:
        layer, act, nodes = end, NO_ACT, [end]
    if layer_kind(graph.nodes[layer]) is None or only_input(graph, layer) is None:
        return None
    return layer, act, nodes


def _fuse_highway(graph: nx.MultiDiGraph, weights: Weights | None, hw: str) -> bool:
    ins = inputs_of(graph, hw)
    if len(ins) != 3:
        return False
    h, t = _highway_branch(graph, hw, 0), _highway_branch(graph, hw, 1)
    if h is None or t is None:
        return False
    (hl, h_act, h_nodes), (tl, t_act, t_nodes) = h, t
    hd, td = graph.nodes[hl], graph.nodes[tl]
    src = only_input(graph, hl)
    kind = layer_kind(hd)
    if hd["op"] != td["op"] or src != only_input(graph, tl):
        return False
    keys = CONV_KEYS if kind == "conv" else FC_KEYS
    same = [k for k in keys if k != "bias"]
    if any(hd["attrs"][k] != td["attrs"][k] for k in same):
        return False
    if kind == "conv" and hd["attrs"]["groups"] != 1:
        return False
    out = hd["attrs"]["out"]
    has_bias = bool(hd["attrs"]["bias"] or td["attrs"]["bias"])
    if weights is not None:
        why = f"fusing the highway layer `{hw}`"
        ref = get(weights, f"{hl}.weight", why)
        ws = [to_array(get(weights, f"{layer}.weight", why)) for layer in (hl, tl)]
        bs = [to_array(weights[f"{layer}.bias"]) if graph.nodes[layer]["attrs"]["bias"] else np.zeros(out)
              for layer in (hl, tl)]
        for layer in (hl, tl):
            drop(weights, layer, LAYER_PARAMS)
        weights[f"{hw}.weight"] = like(ref, np.concatenate(ws, axis=0))
        if has_bias:
            weights[f"{hw}.bias"] = like(ref, np.concatenate(bs))
    attrs: dict[str, Any] = {k: hd["attrs"][k] for k in keys}
    attrs.update(bias=has_bias, act=h_act[0], act_a=h_act[1], act_s=h_act[2],
                 gate_act=t_act[0], gate_a=t_act[1], gate_s=t_act[2], fused=tuple(h_nodes + t_nodes))
    carry = ins[2]
    set_inputs(graph, hw, [src, carry])
    graph.nodes[hw]["op"] = "highway_conv" if kind == "conv" else "highway_fc"
    graph.nodes[hw]["attrs"] = attrs
    graph.remove_nodes_from(h_nodes + t_nodes)
    return True


# ---- conv / fc epilogues ----------------------------------------------------------------


def _slice_act(graph: nx.MultiDiGraph, layer: str) -> tuple | None:
    """The common activation after every slice of a merged conv, or None."""
    edges = out_edges(graph, layer)
    if not edges or is_output(graph, layer) or any(graph.nodes[d]["op"] != "slice" for d, _ in edges):
        return None
    acts = set()
    for dst, _ in edges:
        nxt = sole_consumer(graph, dst)
        if nxt is None or graph.nodes[nxt[0]]["op"] not in ACT_OPS:
            return None
        acts.add(act_of(graph.nodes[nxt[0]]))
    return acts.pop() if len(acts) == 1 else None


def _fuse_layer(graph: nx.MultiDiGraph, layer: str) -> str | None:
    """Turn `layer` into its fused op; return the last absorbed node (where it must go)."""
    data = graph.nodes[layer]
    kind = layer_kind(data)
    absorbed: list[str] = []
    act, post = NO_ACT, NO_ACT
    residual, scale, res_stride, operand = "none", 1.0, (1, 1), None
    tail = layer
    nxt = sole_consumer(graph, tail)
    if nxt is not None and graph.nodes[nxt[0]]["op"] in ACT_OPS:
        act = act_of(graph.nodes[nxt[0]])
        tail = nxt[0]
        absorbed.append(tail)
        nxt = sole_consumer(graph, tail)
    elif nxt is None or graph.nodes[nxt[0]]["op"] == "slice":
        common = _slice_act(graph, layer)
        if common is not None:
            act = common
            for s, _ in out_edges(graph, layer):
                (a, _), = out_edges(graph, s)
                redirect(graph, a, s)
                graph.remove_node(a)
                absorbed.append(a)
            nxt = None
    if nxt is not None and graph.nodes[nxt[0]]["op"] == "add":
        add, port = nxt
        ins = inputs_of(graph, add)
        add_scale = float(graph.nodes[add]["attrs"]["scale"])
        if len(ins) == 2 and (port == 0 or add_scale == 1.0):
            other = ins[1 - port]
            scale = add_scale
            od = graph.nodes[other]
            if kind == "conv" and od["op"] == "zeropad" and sole_consumer(graph, other) == (add, 1 - port):
                residual, res_stride, operand = "zeropad", tuple(od["attrs"]["stride"]), only_input(graph, other)
                absorbed.append(other)
            else:
                residual, operand = "add", other
            tail = add
            absorbed.append(add)
            nxt = sole_consumer(graph, add)
            if nxt is not None and graph.nodes[nxt[0]]["op"] in ACT_OPS:
                post = act_of(graph.nodes[nxt[0]])
                tail = nxt[0]
                absorbed.append(tail)
    keys = CONV_KEYS if kind == "conv" else FC_KEYS
    attrs: dict[str, Any] = {k: data["attrs"][k] for k in keys}
    attrs.update(act=act[0], act_a=act[1], act_s=act[2], residual=residual, scale=scale, res_stride=res_stride,
                 post_act=post[0], post_a=post[1], post_s=post[2], fused=tuple(absorbed))
    data["op"] = "fused_conv" if kind == "conv" else "fused_fc"
    data["attrs"] = attrs
    if operand is not None:
        graph.add_edge(operand, layer, port=1)
    if tail == layer:
        return None
    redirect(graph, tail, layer)
    graph.remove_nodes_from([n for n in absorbed if n in graph])
    return tail


def fuse_epilogue(graph: nx.MultiDiGraph, weights: Mapping[str, Any] | None = None
                  ) -> tuple[nx.MultiDiGraph, Weights | None]:
    """Fuse highway gates and conv/fc epilogues (see the module docstring)."""
    g = clone(graph)
    w = copy_weights(weights)
    order = list(g.nodes)
    for node in order:
        if node in g and g.nodes[node]["op"] == "highway":
            _fuse_highway(g, w, node)
    place: dict[str, str] = {}  # removed tail -> fused layer that takes its place
    for node in order:
        if node in g and layer_kind(g.nodes[node]) is not None:
            tail = _fuse_layer(g, node)
            if tail is not None:
                place[tail] = node
    if place:
        moved = set(place.values())
        final = [place.get(n, n) for n in order if n in place or (n in g and n not in moved)]
        g = reorder(g, final)
    return g, w
