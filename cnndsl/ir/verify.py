"""The IR verifier: what every graph, elaborated or rewritten by a pass, must satisfy.

    verify(graph)  -> None, or raise IRError listing every broken rule

- every node's op is in the registry, and its inputs fit the op's arity;
- the in-edges of a node carry the ports 0, 1, …, n−1, once each;
- the node order is an execution order (every edge runs from an earlier node to a later one);
- every node's shape is what its op's shape rule gives on its inputs' shapes;
- the graph's `inputs` are `input` nodes and its `outputs` are nodes of the graph.

The pass driver runs it after every pass in the tests and under `CNNDSL_VERIFY=1` (or
`optimize(verify=True)`), so a pass that breaks the IR is named where it does.
"""

from __future__ import annotations

import networkx as nx

from cnndsl.ir.graph import in_shapes
from cnndsl.ir.opdef import ArgError, ShapeError, fmt_shape
from cnndsl.ir.registry import REGISTRY


class IRError(Exception):
    """A graph that breaks the IR's rules; `problems` lists each (node: what is wrong)."""

    def __init__(self, problems: list[str], where: str = "") -> None:
        self.problems = problems
        head = f"invalid IR{f' after {where}' if where else ''}: {len(problems)} problem(s)"
        super().__init__(head + "".join(f"\n  - {p}" for p in problems[:20]))


def problems(graph: nx.MultiDiGraph) -> list[str]:
    """Every rule `graph` breaks, one line each (empty: the graph is valid)."""
    out: list[str] = []
    position = {node: i for i, node in enumerate(graph.nodes)}
    for node, data in graph.nodes(data=True):
        op = REGISTRY.get(data.get("op"))
        if op is None:
            out.append(f"{node}: unknown op {data.get('op')!r}")
            continue
        ports = sorted(port for _, _, port in graph.in_edges(node, data="port"))
        if ports != list(range(len(ports))):
            out.append(f"{node}: input ports {ports}, expected 0..{len(ports) - 1} once each")
            continue
        n = len(ports)
        least = 2 if op.user else 1  # a fused conv/fc reads 1 input, or 2 with a residual
        if (op.arity is None and n < least) or (op.arity is not None and n != op.arity):
            expected = f"{least} or more" if op.arity is None else str(op.arity)
            out.append(f"{node}: {op.name} has {n} input(s), expected {expected}")
            continue
        late = [src for src, _ in graph.in_edges(node) if position[src] > position[node]]
        if late:
            out.append(f"{node}: reads {', '.join(late)}, which come(s) later in the node order")
            continue
        try:
            shape = tuple(op.shape(data["attrs"], in_shapes(graph, node)))
        except (ShapeError, ArgError, KeyError, TypeError, ValueError) as err:
            out.append(f"{node}: {op.name}'s shape rule refuses its inputs ({err})")
            continue
        if shape != tuple(data.get("shape", ())):
            out.append(f"{node}: shape {fmt_shape(tuple(data.get('shape', ())))}, but {op.name}'s rule gives "
                       f"{fmt_shape(shape)}")
    for node in graph.graph.get("inputs", []):
        if node not in graph or graph.nodes[node]["op"] != "input":
            out.append(f"graph input {node!r} is not an input node of the graph")
    for node in graph.graph.get("outputs", []):
        if node not in graph:
            out.append(f"graph output {node!r} is not a node of the graph")
    return out


def dangling(graph: nx.MultiDiGraph) -> int:
    """How many nodes nothing reads and that are not network outputs (side chains left unused)."""
    outputs = set(graph.graph.get("outputs", []))
    return sum(1 for node in graph.nodes if graph.out_degree(node) == 0 and node not in outputs)


def verify(graph: nx.MultiDiGraph, where: str = "") -> None:
    """Raise `IRError` naming every broken rule (`where`: the pass that ran last)."""
    found = problems(graph)
    if found:
        raise IRError(found, where)
