"""Special layers as the standard ones the later passes and kernels take (LeNet-5's, ConvNeXt's, ShuffleNetV2's).

    densify(graph, weights=None) -> (graph, weights)

- A `subsample` node (window k, stride s; y = (Σ window)·w[c] + b[c]) becomes a depthwise
  `conv`: kernel k, stride s, no padding, groups = out = its channels, with a bias. Its weight
  `[C]` becomes `[C, 1, kh, kw]` with every tap of channel c equal to w[c]; the bias is kept.
- A `conv` with a connection `table` (LeNet's C3: output o reads the input maps table[o])
  becomes a dense `conv` (table None) whose weights are zero where the table has no
  connection: the torch backend's packed `[connections, kh, kw]` weight (output-major, in
  table order) is scattered into `[out, in, kh, kw]`.

- A `channel_linear` (weight `[out, C]`, nn.Linear's layout) becomes a `conv 1x1` on a map, its
  weight viewed as `[out, C, 1, 1]`, or an `fc` on a flat tensor (the same weight).
- A `channel_slice` becomes the passes' own `slice` (the same `start`, `stop`), which the
  later passes, the buffer planner and the kernels already treat as a view or route into a concat.

All keep their node names, so the bias keys stay. The result computes the same function
(the zero weights add nothing); parameter counts of the rewritten graph count the zeros and
the repeated taps, so run it only on the way to a backend (it is the first pass of
`optimize`), never before `summary`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np

from cnndsl.passes.common import Weights, clone, copy_weights, get, like, to_array


def _conv_attrs(kernel: tuple[int, int], out: int, stride: tuple[int, int], groups: int) -> dict[str, Any]:
    return {"kernel": tuple(kernel), "out": out, "stride": tuple(stride), "pad": (0, 0), "dilation": (1, 1),
            "groups": groups, "bias": True, "bias_init": None, "table": None}


def densify(graph: nx.MultiDiGraph, weights: Mapping[str, Any] | None = None) -> tuple[nx.MultiDiGraph, Weights | None]:
    """Rewrite subsampling and connection-table convolutions (see the module docstring)."""
    g = clone(graph)
    w = copy_weights(weights)
    for node, data in g.nodes(data=True):
        attrs = data["attrs"]
        if data["op"] == "subsample":
            channels = data["shape"][0]
            kh, kw = attrs["kernel"]
            data["op"], data["attrs"] = "conv", _conv_attrs((kh, kw), channels, attrs["stride"], channels)
            if w is not None:
                ref = get(w, f"{node}.weight", f"rewriting subsample `{node}` as a convolution")
                taps = np.broadcast_to(to_array(ref).reshape(channels, 1, 1, 1), (channels, 1, kh, kw))
                w[f"{node}.weight"] = like(ref, np.ascontiguousarray(taps))
        elif data["op"] == "channel_linear":
            if len(data["shape"]) == 3:
                data["op"], data["attrs"] = "conv", {**_conv_attrs((1, 1), attrs["out"], (1, 1), 1), "bias": attrs["bias"]}
                if w is not None:
                    ref = get(w, f"{node}.weight", f"rewriting channel_linear `{node}` as a 1x1 convolution")
                    matrix = to_array(ref)
                    w[f"{node}.weight"] = like(ref, matrix.reshape(*matrix.shape, 1, 1))
            else:
                data["op"], data["attrs"] = "fc", {"out": attrs["out"], "bias": attrs["bias"], "bias_init": None}
        elif data["op"] == "channel_slice":
            data["op"] = "slice"
        elif data["op"] == "conv" and attrs.get("table") is not None:
            table = attrs["table"]
            cin = g.nodes[next(iter(g.predecessors(node)))]["shape"][0]
            if w is not None:
                ref = get(w, f"{node}.weight", f"rewriting the table convolution `{node}` as a dense one")
                packed = to_array(ref)
                dense = np.zeros((len(table), cin, *packed.shape[1:]), dtype=packed.dtype)
                k = 0
                for o, inputs in enumerate(table):
                    for i in inputs:
                        dense[o, i] = packed[k]
                        k += 1
                w[f"{node}.weight"] = like(ref, dense)
            data["attrs"] = {**attrs, "table": None}
    return g, w
