"""Checks shared by the pass tests: does a transformed IR compute what the original computes,
is its node order topological, does its buffer plan keep live tensors apart."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

import cnndsl
from cnndsl.backends.torch.lower import to_torch
from cnndsl.ir.graph import inputs_of, to_json
from cnndsl.ir.infer import infer_shapes
from cnndsl.passes import optimize
from cnndsl.passes.concat_elim import routed_by
from cnndsl.passes.plan_buffers import storage_of
from tests.conftest import torch_reference as reference

ZOO = Path(__file__).resolve().parents[1] / "zoo"


def compile_net(text: str, **kw: Any):
    return cnndsl.compile_source(text, search=[str(ZOO)], **kw).graph


def run(module: nn.Module, graph, batch: int = 2, seed: int = 1) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    xs = [torch.randn(batch, *graph.nodes[n]["shape"], generator=gen) for n in graph.graph["inputs"]]
    with torch.no_grad():
        out = module(*xs)
    return out if isinstance(out, tuple) else (out,)


def load(graph, weights) -> nn.Module:
    module = to_torch(graph)
    module.load_state_dict(weights, strict=True)
    return module.eval()


def snapshot(graph) -> tuple:
    return to_json(graph), copy.deepcopy(graph.graph), [tuple(e) for e in graph.edges(keys=True, data="port")]


def assert_same_function(graph, transform, batch: int = 2, atol: float = 1e-4):
    """transform(graph, weights) -> (graph, weights): same outputs, inputs left untouched."""
    ref = reference(graph)
    weights = ref.state_dict()
    saved = {k: v.clone() for k, v in weights.items()}
    before = snapshot(graph)
    new_graph, new_weights = transform(graph, weights)
    assert snapshot(graph) == before, "the pass changed its input graph"
    assert weights.keys() == saved.keys() and all(torch.equal(weights[k], saved[k]) for k in saved), \
        "the pass changed its input weights"
    assert not infer_shapes(new_graph), "the pass left stale shapes"
    check_order(new_graph)
    expected = run(ref, graph, batch)
    got = run(load(new_graph, new_weights), new_graph, batch)
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, atol=atol, rtol=1e-4)
    return new_graph, new_weights


def check_order(graph) -> None:
    """Node order is a topological order; every output exists; ports are 0..n-1."""
    seen = set()
    for node in graph.nodes:
        ins = inputs_of(graph, node)
        assert all(src in seen for src in ins), f"{node} comes before one of its inputs"
        ports = sorted(p for _, _, p in graph.in_edges(node, data="port"))
        assert ports == list(range(len(ports))), f"{node}: ports {ports}"
        seen.add(node)
    assert all(o in graph for o in graph.graph["outputs"])


def ops(graph) -> list[str]:
    return [op for _, op in graph.nodes(data="op")]


def pipeline(graph, weights):
    g, w, _ = optimize(graph, weights)
    return g, w


def check_plan(graph) -> None:
    """No two tensors that are live at once share a buffer (by the plan's own rules)."""
    order = list(graph.nodes)
    pos = {n: i for i, n in enumerate(order)}
    owner = storage_of(graph)
    live: dict[str, list[int]] = {}
    for node in order:
        root = owner[node]
        writer = routed_by(graph, node) or node  # a routed slice is written by its convolution
        last = max([pos[d] for _, d in graph.out_edges(node)] + [pos[node]])
        if node in graph.graph["outputs"]:
            last = len(order)
        lo, hi = live.get(root, [pos[writer], last])
        live[root] = [min(lo, pos[writer]), max(hi, last)]
    sizes = graph.graph["buffers"]
    by_buffer: dict[int, list[tuple[int, int, str]]] = {}
    for root, (lo, hi) in live.items():
        buf = graph.nodes[root]["attrs"]["buffer"]
        need = math.prod(graph.nodes[root]["shape"]) * graph.graph["buffer_plan"]["batch"] \
            * graph.graph["buffer_plan"]["itemsize"]
        assert sizes[buf] >= need, f"{root} does not fit buffer {buf}"
        by_buffer.setdefault(buf, []).append((lo, hi, root))
    for buf, spans in by_buffer.items():
        spans.sort()
        for (_, hi, a), (lo, _, b) in zip(spans, spans[1:]):
            assert hi < lo, f"buffer {buf}: {a} is still live when {b} is written"
    for node in order:
        assert graph.nodes[node]["attrs"]["buffer"] == graph.nodes[owner[node]]["attrs"]["buffer"]
