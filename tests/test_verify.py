"""The IR verifier (cnndsl/ir/verify.py): every zoo network verifies as elaborated and after
every pass of the pipeline; each rule it checks refuses a graph that breaks it."""

from __future__ import annotations

import copy
import os

import pytest

import cnndsl
from cnndsl.ir.verify import IRError, problems, verify
from cnndsl.passes import pipeline
from cnndsl.passes.pipeline import PASSES, PIPELINE, Pass, run_passes
from tests.hypothesis_setup import ZOO, ZOO_FILES


def test_the_suite_verifies_after_every_pass():
    assert os.environ.get("CNNDSL_VERIFY") == "1"  # tests/conftest.py: every optimize() call verifies


@pytest.mark.parametrize("path", ZOO_FILES, ids=lambda p: str(p.relative_to(ZOO)))
def test_zoo_network_verifies_after_every_pass(path):
    graph = cnndsl.compile_file(path).graph
    verify(graph, where="elaboration")
    new, _, trace = run_passes(graph, verify=True)
    assert list(trace.counts) == list(PIPELINE)
    assert not problems(new)


def small():
    return cnndsl.compile_source("""
network n {
  input 3x8x8
  conv 3x3 4 pad=1 -> bn -> relu
  residual { conv 3x3 4 pad=1 -> bn }
  avgpool global -> fc 2
}""").graph


def test_a_valid_graph_has_no_problems():
    assert problems(small()) == []


@pytest.mark.parametrize("breakage, message", [
    (lambda g: g.nodes["conv1"].update(shape=(5, 8, 8)), "conv1: shape 5x8x8, but conv's rule gives 4x8x8"),
    (lambda g: g.nodes["relu1"].update(op="nope"), "unknown op 'nope'"),
    (lambda g: g.remove_edge("relu1", "add1"), "add has 1 input(s), expected 2 or more"),
    (lambda g: g.graph["outputs"].append("ghost"), "graph output 'ghost' is not a node"),
    (lambda g: g.nodes["conv1"]["attrs"].update(groups=3), "conv's shape rule refuses its inputs"),
])
def test_each_rule_refuses_a_graph_that_breaks_it(breakage, message):
    g = copy.deepcopy(small())
    breakage(g)
    with pytest.raises(IRError, match="invalid IR after test") as err:
        verify(g, where="test")
    assert any(message in p for p in err.value.problems), err.value.problems


def test_ports_and_order_are_checked():
    g = copy.deepcopy(small())
    (key,) = [k for _, _, k in g.in_edges("fc1", keys=True)]
    g.edges["avgpool1", "fc1", key]["port"] = 3
    assert any("input ports [3]" in p for p in problems(g))
    late = copy.deepcopy(small())
    order = list(late.nodes)
    late2 = type(late)(**late.graph)
    for node in [order[0], order[2], order[1], *order[3:]]:
        late2.add_node(node, **late.nodes[node])
    late2.add_edges_from(late.edges(data=True))
    assert any("bn1: reads conv1, which come(s) later" in p for p in problems(late2))


def test_a_broken_pass_is_named(monkeypatch):
    def corrupt(g, w, o):
        g = copy.deepcopy(g)
        g.nodes["conv1"]["shape"] = (1, 1, 1)
        return g, w, None

    broken = tuple(Pass(p.name, p.doc, corrupt) if p.name == "fuse_1x1" else p for p in PASSES)
    monkeypatch.setattr(pipeline, "PASSES", broken)
    with pytest.raises(IRError, match="after fuse_1x1"):
        run_passes(small(), verify=True)
    run_passes(small(), verify=False)  # the check is the verifier's, not the pass's


def test_a_pass_that_leaves_nodes_unread_is_refused(monkeypatch):
    def orphan(g, w, o):
        g = copy.deepcopy(g)
        g.add_node("stray", op="relu", attrs={}, shape=tuple(g.nodes["conv1"]["shape"]), span=None)
        g.add_edge("conv1", "stray", port=0)
        return g, w, None

    monkeypatch.setattr(pipeline, "PASSES", (Pass("orphan", "", orphan),))
    monkeypatch.setattr(pipeline, "PIPELINE", ("orphan",))
    with pytest.raises(IRError, match="nothing reads"):
        run_passes(small(), passes=("orphan",), verify=True)
