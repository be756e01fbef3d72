"""Fold batch norm (and the channel-wise `scale` and `layerscale` ops) into the conv or fc that feeds it.

    fold_bn(graph, weights=None) -> (graph, weights)

A `bn` or `scale` node is folded when its input is a `conv` (without a connection table) or
an `fc` whose output has no other consumer and is not a network output. With
s = γ / √(running_var + eps) (bn) or s = γ (scale, layerscale), and t = β − running_mean·s (bn)
or β (scale; 0 without bias and for layerscale):

    W'[o, …] = W[o, …]·s[o]        b'[o] = b[o]·s[o] + t[o]      (b = 0 when the layer had none)

The layer node keeps its name and gets `bias=True`; the bn/scale node is removed and its
consumers read the layer instead (ports kept; a network output naming it names the layer).
Chains fold in node order, so `conv -> bn -> scale` (Caffe) folds both. Nothing else changes:
no attrs are added, and bn/scale nodes that cannot fold (pre-activation bn, bn after an add
or a pool) stay as they are.

The result computes what the input graph computes in eval mode (running statistics).

Weights: the torch backend's `state_dict()` keys. The layer's `<layer>.weight` and
`<layer>.bias` are replaced (the bias created if absent), and the folded node's keys
(`weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked`) removed; every other
value is passed through as is. Values come back as the kind they came in (torch tensors of
the same dtype and device, or numpy arrays). `weights=None` transforms the graph only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np

from cnndsl.passes.common import (
    BN_PARAMS,
    NORM_OPS,
    Weights,
    clone,
    copy_weights,
    drop,
    get,
    layer_kind,
    like,
    only_input,
    redirect,
    sole_consumer,
    to_array,
)


def foldable_into(graph: nx.MultiDiGraph, layer: str, node: str) -> bool:
    """Whether `node` (bn/scale) can fold into `layer`: a plain conv or fc that feeds only it."""
    return layer_kind(graph.nodes[layer]) is not None and sole_consumer(graph, layer) == (node, 0)


def affine(graph: nx.MultiDiGraph, node: str, weights: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The per-channel (s, t) of y = x·s + t that a bn, scale or layerscale node computes."""
    data = graph.nodes[node]
    why = f"folding {data['op']} `{node}`"
    if data["op"] == "bn":
        mean = to_array(get(weights, f"{node}.running_mean", why))
        var = to_array(get(weights, f"{node}.running_var", why))
        if data["attrs"].get("affine", True):
            gamma, beta = to_array(get(weights, f"{node}.weight", why)), to_array(get(weights, f"{node}.bias", why))
        else:  # affine=false: γ = 1, β = 0
            gamma, beta = np.ones_like(mean), np.zeros_like(mean)
        s = gamma / np.sqrt(var + data["attrs"]["eps"])
        return s, beta - mean * s
    gamma = to_array(get(weights, f"{node}.weight", why)).reshape(-1)  # layerscale's γ is C×1×1
    beta = to_array(get(weights, f"{node}.bias", why)) if data["attrs"].get("bias") else np.zeros_like(gamma)
    return gamma, beta


def fold_bn(graph: nx.MultiDiGraph, weights: Mapping[str, Any] | None = None) -> tuple[nx.MultiDiGraph, Weights | None]:
    """Fold every foldable bn/scale into its conv/fc (see the module docstring)."""
    g = clone(graph)
    w = copy_weights(weights)
    for node in list(g.nodes):
        op = g.nodes[node]["op"]
        if op not in NORM_OPS:
            continue
        layer = only_input(g, node)
        if layer is None or not foldable_into(g, layer, node):
            continue
        if w is not None:
            s, t = affine(g, node, w)
            why = f"folding `{node}` into `{layer}`"
            w_ref = get(w, f"{layer}.weight", why)
            weight = to_array(w_ref)
            bias_key = f"{layer}.bias"
            bias = to_array(w[bias_key]) if g.nodes[layer]["attrs"]["bias"] else np.zeros(weight.shape[0])
            w[f"{layer}.weight"] = like(w_ref, weight * s.reshape(-1, *([1] * (weight.ndim - 1))))
            w[bias_key] = like(w.get(bias_key, w_ref), bias * s + t)
            drop(w, node, BN_PARAMS)
        g.nodes[layer]["attrs"]["bias"] = True
        redirect(g, node, layer)
        g.remove_node(node)
    return g, w
