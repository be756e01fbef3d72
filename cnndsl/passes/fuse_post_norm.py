"""A batch norm (or `scale`) after a fused residual add moves into that layer's epilogue.

    fuse_post_norm(graph, weights=None) -> (graph, weights)

A pre-activation network (ResNet v2) ends with `add -> bn -> relu -> pool`: the bn reads a
residual sum, so fold_bn cannot fold it into a layer's weights (the shortcut would need the
scaling too), and its reader is a pool, so fuse_prologue cannot take it either. Once
fuse_epilogue has fused the add into the conv (or fc) that feeds it, the bn is a per-channel
affine map of that layer's output, which its epilogue can apply after the residual:

A `bn` or `scale` node B whose only input is a `fused_conv` / `fused_fc` F with a residual and
no `post_act` yet, that is F's only reader (F no network output), is fused: F gets
`post_norm = True` and, when B's only reader is an activation A (relu, sigmoid, tanh, stanh;
no network output), `post_act` = A's kind (`post_a`, `post_s`). With (s, t) B's affine map (as
in fold_bn), F's epilogue becomes `y = post_act((scale·act(conv(x) + b) + r)·s + t)`.

Weights: `<F>.post_scale` = s and `<F>.post_shift` = t (F's output channels); B's keys are
removed. B (and A) are removed, their readers read F, and F's `fused` lists them. Run after
fuse_epilogue and before fuse_prologue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx

from cnndsl.passes.common import (
    ACT_OPS,
    BN_PARAMS,
    NORM_OPS,
    Weights,
    act_of,
    clone,
    copy_weights,
    drop,
    get,
    like,
    only_input,
    redirect,
    sole_consumer,
)
from cnndsl.passes.fold_bn import affine

LAYERS = ("fused_conv", "fused_fc")


def _target(graph: nx.MultiDiGraph, node: str) -> str | None:
    """The fused layer whose epilogue can take bn/scale `node`, or None."""
    if graph.nodes[node]["op"] not in NORM_OPS:
        return None
    layer = only_input(graph, node)
    if layer is None or graph.nodes[layer]["op"] not in LAYERS:
        return None
    attrs = graph.nodes[layer]["attrs"]
    if attrs.get("residual", "none") == "none" or attrs.get("post_act", "none") != "none" or attrs.get("post_norm"):
        return None
    return layer if sole_consumer(graph, layer) == (node, 0) else None


def fuse_post_norm(graph: nx.MultiDiGraph, weights: Mapping[str, Any] | None = None
                   ) -> tuple[nx.MultiDiGraph, Weights | None]:
    """Fuse every bn/scale that follows a fused residual add into that layer (see the docstring)."""
    g = clone(graph)
    w = copy_weights(weights)
    for node in list(g.nodes):
        layer = _target(g, node) if node in g else None
        if layer is None:
            continue
        if w is not None:
            s, t = affine(g, node, w)
            ref = get(w, f"{node}.weight", f"fusing `{node}` into `{layer}`")
            w[f"{layer}.post_scale"] = like(ref, s)
            w[f"{layer}.post_shift"] = like(ref, t)
            drop(w, node, BN_PARAMS)
        attrs = g.nodes[layer]["attrs"]
        attrs["post_norm"] = True
        absorbed = [node]
        nxt = sole_consumer(g, node)
        if nxt is not None and nxt[1] == 0 and g.nodes[nxt[0]]["op"] in ACT_OPS:
            kind, a, s_ = act_of(g.nodes[nxt[0]])
            attrs.update(post_act=kind, post_a=a, post_s=s_)
            absorbed.append(nxt[0])
        attrs["fused"] = (*attrs.get("fused", ()), *absorbed)
        redirect(g, absorbed[-1], layer)
        g.remove_nodes_from(absorbed)
    return g, w
