"""What a network will allocate, known from the IR before anything is allocated.

`conv 3x3 1000000000` is a well-formed program whose weights need terabytes; a backend that
simply builds it dies in the allocator with a traceback. The summary already knows every
layer's parameters and output shape, so the bytes that building (parameters), running
(plus the activations of a batch) or training (plus gradients and optimiser state) will take
are summed here in node order, and the layer at which the sum crosses the limit is where the
error points.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import networkx as nx

from cnndsl.diagnostics import CompileError, Diagnostic
from cnndsl.ir.infer import node_stats
from cnndsl.ir.opdef import fmt_shape

GiB = 2**30
WARN_WEIGHTS_BYTES = 4 * GiB  # `check` and `summary` warn above this (fp32 weights)
TRAINING_COPIES = 4  # weights, gradients and Adam's two moments


def default_memory_mib() -> int:
    """Half of this machine's physical memory, in MiB (8 GiB where it cannot be read)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 * GiB
    return max(1, total // 2 // 2**20)


def _size(n: int | float) -> str:
    return f"{n / GiB:,.1f} GiB" if n >= GiB / 10 else f"{n / 2**20:,.1f} MiB"


def _layers(graph: nx.MultiDiGraph, per_param: int, per_value: int) -> Iterator[tuple[str, dict, int, int]]:
    """(node, data, parameter bytes, activation bytes) of each layer, in node order."""
    for node, data in graph.nodes(data=True):
        stats = node_stats(graph, node)
        yield node, data, (stats.params + stats.fixed_params) * per_param, math.prod(data["shape"]) * per_value


def check_memory(graph: nx.MultiDiGraph, limit_mib: int, what: str, batch: int = 0, training: bool = False,
                 itemsize: int = 4) -> None:
    """Raise a `CompileError` at the first layer where `what` (e.g. "building the torch module")
    would need more than `limit_mib` MiB: every parameter (`TRAINING_COPIES` times when
    `training`) plus, for a `batch` > 0, every layer's output for that batch (and its gradient
    when training)."""
    limit = limit_mib * 2**20
    per_param = itemsize * (TRAINING_COPIES if training else 1)
    per_value = itemsize * batch * (2 if training else 1)
    params = values = 0
    for node, data, p, v in _layers(graph, per_param, per_value):
        params, values = params + p, values + v
        if params + values > limit:
            need = sum(p + v for _, _, p, v in _layers(graph, per_param, per_value))
            parts = f"{_size(params)} of parameters" + (f" and {_size(values)} of activations (batch {batch})"
                                                          if batch else "")
            raise CompileError(
                f"{what} would need about {_size(need)}, more than the memory limit of {_size(limit)}: "
                f"{parts} by `{node}` ({data['op']}, output {fmt_shape(tuple(data['shape']))})",
                data.get("span"),
                hint="make the network smaller, or raise the limit with --limit memory=MiB",
            )


def large_weights(graph: nx.MultiDiGraph, itemsize: int = 4) -> list[Diagnostic]:
    """A warning where the weights pass `WARN_WEIGHTS_BYTES`: the program is valid, but building it
    will take that much memory."""
    total = 0
    for node, data, p, _ in _layers(graph, itemsize, 0):
        total += p
        if total > WARN_WEIGHTS_BYTES:
            weights = sum(p for _, _, p, _ in _layers(graph, itemsize, 0))
            return [Diagnostic(f"the weights take {_size(weights)} in fp32 (more than {_size(WARN_WEIGHTS_BYTES)} by "
                               f"`{node}`) [large-weights]", data.get("span"), severity="warning",
                               code="large-weights",
                               hint="building, exporting or training it needs at least that much memory")]
    return []
