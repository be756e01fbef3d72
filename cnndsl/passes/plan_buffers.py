"""Liveness-based activation buffer planning over the IR's node order.

    plan_buffers(graph, batch=1, itemsize=2) -> (graph, BufferReport)

Execution order is the node order. Each node's output lives in a *storage*:

- `flatten`, `dropout` and the no-ops drop_noops left (identity at inference) and `slice` (a channel range) are views:
  they share their input's storage;
- a node with `out_slice` (concat_elim) lives in the storage of the outermost concat of its
  `out_slice` chain (a `slice` with `out_slice` too: it is then materialised there, by a copy
  at its own step or, when its convolution `route`s it, at the convolution's step);
- every other node (inputs included) has a storage of its own, of
  prod(shape)·batch·itemsize bytes.

A storage is live from the first step at which any node writes into it to the last step at
which any node mapped to it is read (network outputs: to the end). At each step, storages
that start there are allocated first and storages whose last reader is that step are freed
after, so no op writes over its own inputs. Allocation is best fit among the free buffers
(the smallest that is large enough; if none is, the largest free buffer grows; if none is
free, a new buffer). Network inputs get buffers that are never reused (the caller owns them).

Results, in the returned copy of the graph:

- every node's attrs get `buffer`: the id (0, 1, …) of the buffer its output lives in (views
  and concat slices share their storage's id; a slice's channel offset is its `start`, an
  out_slice's offset its `out_slice`, resolved with `concat_elim.resolve_slice`);
- `graph.graph["buffers"]`: the size in bytes of each buffer, by id;
- `graph.graph["buffer_plan"]`: {"batch": …, "itemsize": …} the sizes were planned for.

The report gives `planned_bytes` (the sum of the buffers: the activation memory this plan
needs), `peak_live_bytes` (the most bytes live at one step: what any plan for this order
needs at least) and `naive_bytes` (every node's output in a buffer of its own, none freed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx

from cnndsl.ir.graph import inputs_of
from cnndsl.ir.registry import ops_with
from cnndsl.passes.common import clone, out_edges
from cnndsl.passes.concat_elim import resolve_slice, routed_by

VIEW_OPS = ("flatten", "dropout", "slice", *ops_with("noop"))


@dataclass(frozen=True)
class BufferReport:
    batch: int
    itemsize: int
    buffers: tuple[int, ...]
    planned_bytes: int
    peak_live_bytes: int
    naive_bytes: int
    storages: int

    def __str__(self) -> str:
        return (f"{len(self.buffers)} buffers for {self.storages} tensors: {_mib(self.planned_bytes)} planned "
                f"(peak live {_mib(self.peak_live_bytes)}) vs {_mib(self.naive_bytes)} naive "
                f"(batch {self.batch}, {self.itemsize}-byte elements)")


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def storage_of(graph: nx.MultiDiGraph) -> dict[str, str]:
    """For each node, the node that owns the storage its output lives in."""
    owner: dict[str, str] = {}
    for node, data in graph.nodes(data=True):
        loc = resolve_slice(graph, node)
        if loc is not None:
            owner[node] = loc[0]
        elif data["op"] in VIEW_OPS:
            owner[node] = owner[inputs_of(graph, node)[0]]
        else:
            owner[node] = node
    return owner


def plan_buffers(graph: nx.MultiDiGraph, batch: int = 1, itemsize: int = 2) -> tuple[nx.MultiDiGraph, BufferReport]:
    """Assign buffers by liveness (see the module docstring)."""
    g = clone(graph)
    order = list(g.nodes)
    pos = {n: i for i, n in enumerate(order)}
    end_of_run = len(order)
    owner = storage_of(g)

    def nbytes(node: str) -> int:
        return math.prod(g.nodes[node]["shape"]) * batch * itemsize

    start: dict[str, int] = {}
    end: dict[str, int] = {}
    for node in order:
        root = owner[node]
        i = pos[node]
        last = max([pos[d] for d, _ in out_edges(g, node)] + [i])
        writer = routed_by(g, node)
        if writer is not None:
            i = pos[writer]  # the convolution writes this slice's channels into the concat
        if node in g.graph["outputs"]:
            last = end_of_run
        start[root] = min(start.get(root, i), i)
        end[root] = max(end.get(root, i), last)
    pinned = {owner[n] for n in g.graph["inputs"]}

    starting: dict[int, list[str]] = {}
    ending: dict[int, list[str]] = {}
    for root in start:
        starting.setdefault(start[root], []).append(root)
        ending.setdefault(end[root], []).append(root)

    sizes: list[int] = []
    free: set[int] = set()
    buffer_of: dict[str, int] = {}
    live = peak = 0
    for step in range(end_of_run):
        for root in starting.get(step, []):
            need = nbytes(root)
            fits = [b for b in free if sizes[b] >= need and root not in pinned]
            if fits:
                buf = min(fits, key=lambda b: (sizes[b], b))
            elif free and root not in pinned:
                buf = max(free, key=lambda b: (sizes[b], -b))
                sizes[buf] = need
            else:
                buf = len(sizes)
                sizes.append(need)
            free.discard(buf)
            buffer_of[root] = buf
            live += need
        peak = max(peak, live)
        for root in ending.get(step, []):
            live -= nbytes(root)
            if root not in pinned:
                free.add(buffer_of[root])

    for node in order:
        g.nodes[node]["attrs"]["buffer"] = buffer_of[owner[node]]
    g.graph["buffers"] = list(sizes)
    g.graph["buffer_plan"] = {"batch": batch, "itemsize": itemsize}
    report = BufferReport(
        batch=batch,
        itemsize=itemsize,
        buffers=tuple(sizes),
        planned_bytes=sum(sizes),
        peak_live_bytes=peak,
        naive_bytes=sum(nbytes(n) for n in order),
        storages=len(start),
    )
    return g, report
