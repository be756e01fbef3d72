"""IR passes (cnndsl/passes): each transformed IR computes what the original computes.

For every pass: hand-made graphs, hypothesis-generated networks and zoo models at small
inputs. The check builds the torch module of the original graph (random batch-norm
statistics so that folding matters), runs it in eval mode, transforms the graph and its
`state_dict()`, builds the transformed graph's module, loads the transformed weights
(strictly: every key must match) and compares the outputs. Passes must not change their
inputs, and the fused ops' registry entries must agree with their torch lowerings.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import cnndsl
from cnndsl.backends.torch.lower import LOWERINGS, to_torch
from cnndsl.ir.graph import from_json, inputs_of, to_json
from cnndsl.ir.infer import infer_shapes, node_stats
from cnndsl.ir.registry import REGISTRY, ShapeError
from cnndsl.passes import concat_elim, fold_bn, fuse_1x1, fuse_epilogue, optimize, plan_buffers
from cnndsl.passes.concat_elim import resolve_slice
from cnndsl.passes.plan_buffers import storage_of
from tests.conftest import torch_reference as reference

ZOO = Path(__file__).resolve().parents[1] / "zoo"

FUSED_OPS = ("fused_conv", "fused_fc", "highway_conv", "highway_fc", "slice")


pytestmark = pytest.mark.usefixtures("one_thread")


# ---- helpers ----------------------------------------------------------------------------


def compile_net(text: str, **kw: Any):
    return cnndsl.compile_source(text, path=[str(ZOO)], **kw).graph




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
        last = max([pos[d] for _, d in graph.out_edges(node)] + [pos[node]])
        if node in graph.graph["outputs"]:
            last = len(order)
        lo, hi = live.get(root, [pos[node], last])
        live[root] = [min(lo, pos[node]), max(hi, last)]
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


# ---- fold_bn ------------------------------------------------------------------------------

FOLD = """
network fold {
  input 3x6x6
  conv 3x3 8 pad=1 bias=false -> bn -> relu
  conv 3x3 8 pad=1 -> bn eps=0.001 -> scale -> relu
  conv 1x1 4 -> scale bias=false
  a = conv 1x1 4 -> relu
  @a -> bn -> relu
  s = @a -> conv 1x1 4 bias=false
  @s -> bn
  avgpool global -> fc 5 bias=false -> bn -> relu -> fc 3 -> bn
  output
  output @s
}
"""


def test_fold_bn_folds_into_conv_and_fc():
    graph = compile_net(FOLD)
    new, weights = assert_same_function(graph, fold_bn)
    left = [n for n, op in new.nodes(data="op") if op in ("bn", "scale")]
    assert left == ["bn3", "bn4"]  # bn3 follows a relu; bn4's conv (`s`) is also a network output
    for node, data in new.nodes(data=True):
        if data["op"] in ("conv", "fc") and node != "conv5":
            assert data["attrs"]["bias"] is True
    assert "conv1.bias" in weights and not any(k.startswith("bn1.") for k in weights)


def test_fold_bn_keeps_a_layer_with_other_consumers():
    graph = compile_net(FOLD)
    new, _ = fold_bn(graph)
    # conv5 (`s`) is a network output and feeds bn4, so bn4 stays; bn5/bn6 fold into the fcs
    assert new.nodes["bn4"]["op"] == "bn" and inputs_of(new, "bn4") == ["conv5"]
    assert new.nodes["conv5"]["attrs"]["bias"] is False
    assert new.graph["outputs"] == ["fc2", "conv5"]


def test_fold_bn_numpy_weights_and_dtypes():
    graph = compile_net("network n {\n input 2x4x4\n conv 3x3 3 bias=false -> bn\n}")
    ref = reference(graph)
    sd = ref.state_dict()
    as_numpy = {k: v.numpy() for k, v in sd.items()}
    _, w_np = fold_bn(graph, as_numpy)
    assert isinstance(w_np["conv1.weight"], np.ndarray) and w_np["conv1.weight"].dtype == np.float32
    as_double = {k: v.double() if v.is_floating_point() else v for k, v in sd.items()}
    _, w_64 = fold_bn(graph, as_double)
    assert w_64["conv1.bias"].dtype == torch.float64
    torch.testing.assert_close(torch.from_numpy(w_np["conv1.weight"]), w_64["conv1.weight"].float())
    assert set(w_64) == {"conv1.weight", "conv1.bias"}


def test_fold_bn_without_weights_and_missing_weights():
    graph = compile_net("network n {\n input 2x4x4\n conv 3x3 3 bias=false -> bn\n}")
    new, w = fold_bn(graph)
    assert w is None and ops(new) == ["input", "conv"] and new.graph["outputs"] == ["conv1"]
    with pytest.raises(KeyError, match="bn1.running_var"):
        fold_bn(graph, {"conv1.weight": np.ones((3, 2, 3, 3)), "bn1.weight": np.ones(3), "bn1.bias": np.ones(3),
                        "bn1.running_mean": np.zeros(3)})


def test_fold_bn_skips_connection_tables():
    graph = compile_net("network n {\n input 3x6x6\n conv 3x3 2 table=((0, 1), (2,)) -> bn\n}")
    new, _ = assert_same_function(graph, fold_bn)
    assert ops(new) == ["input", "conv", "bn"]


# ---- fuse_1x1 -----------------------------------------------------------------------------

INCEPTION = """
use "lib/inception_bn.cnn"
network mini {
  input 6x5x5
  m1: inception_bn(4, 3, 5, 2, 3, 2)
  m2: concat {
    conv 1x1 3 /2
    conv 1x1 4 /2 bias=false
    conv 1x1 2 -> relu -> maxpool 2x2 /2 ceil=true
  }
  conv 1x1 4 -> relu
}
"""


def test_fuse_1x1_merges_inception_reduces():
    graph = compile_net(INCEPTION)
    new, weights = assert_same_function(graph, lambda g, w: fuse_1x1(*fold_bn(g, w)))
    merged = [n for n in new if n.endswith("fused_1x1")]
    assert merged == ["m1.fused_1x1", "m2.fused_1x1"]
    assert new.nodes["m1.fused_1x1"]["attrs"]["out"] == 4 + 3 + 2
    assert weights["m1.fused_1x1.weight"].shape == (9, 6, 1, 1)
    slices = {n: d["attrs"] for n, d in new.nodes(data=True) if d["op"] == "slice"}
    assert slices["m1.branch1.conv"] == {"start": 0, "stop": 4}
    assert slices["m1.branch3.0.conv"] == {"start": 7, "stop": 9}
    assert slices["m2.conv2"] == {"start": 3, "stop": 7}  # the stride-2 pair; conv3 (/1) is alone
    assert new.nodes["m2.conv3"]["op"] == "conv"
    assert "m1.branch1.conv.weight" not in weights


def test_fuse_1x1_needs_siblings_with_one_epilogue():
    text = """
network n {
  input 4x4x4
  a = conv 1x1 4 -> relu
  b = @a -> conv 1x1 4 -> sigmoid
  c = @a -> conv 1x1 4 -> relu
  r = @a -> residual {
    conv 1x1 4
    shortcut { conv 1x1 4 }
  }
  concat @b @c @r
}
"""
    graph = compile_net(text)
    new, _ = assert_same_function(graph, fuse_1x1)
    assert sum(op == "slice" for op in ops(new)) == 0  # different acts; convs that feed an add stay
    assert ops(fuse_1x1(graph)[0]) == ops(graph)


# ---- fuse_epilogue ------------------------------------------------------------------------

RESIDUALS = """
use "lib/resnet.cnn"
network res {
  input 4x6x6
  basic(4)
  basic(6, stride=2, shortcut=project)
  basic(8, shortcut=zeropad)
  basic(10, stride=2, shortcut=zeropad)
  residual { conv 3x3 10 pad=1 -> stanh } scale=0.3 -> tanh
  residual {
    conv 3x3 10 pad=1
    shortcut { conv 1x1 10 -> sigmoid }
  } scale=0.5
  x = conv 1x1 10
  add @x @x
  avgpool global -> fc 10 -> relu
  residual { fc 10 -> bn -> relu }
}
"""


def test_fuse_epilogue_residuals():
    graph = compile_net(RESIDUALS)
    new, _ = assert_same_function(graph, lambda g, w: fuse_epilogue(*fold_bn(g, w)))
    fused = {n: d["attrs"] for n, d in new.nodes(data=True) if d["op"] in ("fused_conv", "fused_fc")}
    assert fused["basic1.conv1"]["act"] == "relu" and fused["basic1.conv1"]["fused"] == ("basic1.relu1",)
    assert fused["basic1.conv2"]["residual"] == "add" and fused["basic1.conv2"]["post_act"] == "relu"
    assert inputs_of(new, "basic1.conv2") == ["basic1.conv1", "input"]  # identity shortcut at port 1
    assert inputs_of(new, "basic2.conv2") == ["basic2.conv1", "basic2.shortcut1.conv1"]  # projection
    assert fused["basic3.conv2"]["residual"] == "zeropad" and fused["basic3.conv2"]["res_stride"] == (1, 1)
    assert fused["basic4.conv2"]["fused"] == ("basic4.shortcut1", "basic4.add1", "basic4.relu2")
    assert fused["basic4.conv2"]["res_stride"] == (2, 2)
    assert inputs_of(new, "basic4.conv2") == ["basic4.conv1", "basic3.conv2"]  # the zeropad's input
    c = fused["conv1"]
    assert (c["act"], c["residual"], c["scale"], c["post_act"]) == ("stanh", "add", 0.3, "tanh")
    assert c["act_a"] == pytest.approx(1.7159) and c["act_s"] == pytest.approx(2 / 3)
    # scale 0.5 multiplies the body (port 0); the shortcut's conv is placed before the body's
    assert fused["conv2"]["scale"] == 0.5 and inputs_of(new, "conv2") == ["conv1", "shortcut1.conv1"]
    assert list(new).index("shortcut1.conv1") < list(new).index("conv2")
    assert fused["shortcut1.conv1"]["act"] == "sigmoid" and fused["conv3"]["fused"] == ()
    assert inputs_of(new, "add3") == ["conv3", "conv3"]  # add @x @x: one producer twice, not fused
    assert fused["fc2"]["act"] == "relu" and fused["fc2"]["residual"] == "add"
    assert not {"relu", "bn", "zeropad", "sigmoid", "stanh", "tanh"} & set(ops(new))


def test_fuse_epilogue_port_one_needs_unit_scale():
    text = """
network n {
  input 4x4x4
  x = conv 3x3 4 pad=1
  y = @x -> conv 3x3 4 pad=1 -> relu
  add @x @y scale=0.5
}
"""
    graph = compile_net(text)
    new, _ = assert_same_function(graph, fuse_epilogue)
    # conv2's relu enters port 1 of a scaled add: not fused; conv1 feeds two nodes
    assert ops(new) == ["input", "fused_conv", "fused_conv", "add"]
    assert new.nodes["conv2"]["attrs"]["act"] == "relu"


def test_fuse_epilogue_stops_at_network_outputs():
    text = """
network n {
  input 4x4x4
  conv 3x3 4 pad=1
  output
  relu
  output
}
"""
    graph = compile_net(text)
    new, _ = assert_same_function(graph, fuse_epilogue)
    assert ops(new) == ["input", "fused_conv", "relu"] and new.graph["outputs"] == ["conv1", "relu1"]


HIGHWAY = """
network hw {
  input 4x5x5
  conv 3x3 6 pad=1 -> relu
  h1: highway {
    conv 3x3 6 pad=1 -> bn -> relu
    gate bias=-2 { conv 3x3 6 pad=1 -> sigmoid }
  }
  h2: highway {
    conv 1x1 6 bias=false -> stanh
    gate { conv 1x1 6 -> sigmoid }
  }
  h3: highway {
    conv 3x3 6 pad=1 -> relu
    gate { conv 1x1 6 -> sigmoid }
  }
  avgpool global -> fc 6 -> relu
  h4: highway {
    fc 6 -> tanh
    gate bias=-1 { fc 6 -> sigmoid }
  }
  fc 3
}
"""


def test_fuse_epilogue_highway():
    graph = compile_net(HIGHWAY)
    new, weights = assert_same_function(graph, lambda g, w: fuse_epilogue(*fold_bn(g, w)))
    kinds = {n: d["op"] for n, d in new.nodes(data=True)}
    assert kinds["h1.highway1"] == kinds["h2.highway1"] == "highway_conv"
    assert kinds["h3.highway1"] == "highway"  # H 3x3, T 1x1: not stackable
    assert kinds["h4.highway1"] == "highway_fc"
    a = new.nodes["h2.highway1"]["attrs"]
    assert (a["act"], a["gate_act"], a["bias"]) == ("stanh", "sigmoid", True)
    assert weights["h1.highway1.weight"].shape == (12, 6, 3, 3) and weights["h4.highway1.bias"].shape == (12,)
    assert inputs_of(new, "h1.highway1") == ["conv1", "conv1"]


def test_pipeline_keeps_highway_and_residual_convs_out_of_1x1_fusion():
    text = """
network n {
  input 4x3x3
  highway {
    conv 1x1 4 -> sigmoid
    gate { conv 1x1 4 -> sigmoid }
  }
  residual {
    conv 1x1 4 -> relu
    shortcut { conv 1x1 4 -> relu }
  }
}
"""
    graph = compile_net(text)
    new, _ = assert_same_function(graph, pipeline)
    assert ops(new) == ["input", "highway_conv", "fused_conv", "fused_conv"]


def test_fuse_epilogue_after_fuse_1x1_moves_the_shared_activation():
    graph = compile_net(INCEPTION)
    new, _ = assert_same_function(graph, lambda g, w: fuse_epilogue(*fuse_1x1(*fold_bn(g, w))))
    merged = new.nodes["m1.fused_1x1"]
    assert merged["op"] == "fused_conv" and merged["attrs"]["act"] == "relu"
    assert "relu" not in ops(new)


# ---- concat_elim --------------------------------------------------------------------------

CONCATS = """
network c {
  x = input 4x4x4
  m1: concat {
    conv 1x1 2 -> relu
    conv 3x3 3 pad=1
    branch { concat {
      conv 1x1 2
      maxpool 3x3 /1 pad=1
    } }
  }
  a = conv 1x1 2
  v2 = m2: concat @a @a
  b = conv 1x1 3
  v3 = m3: concat @b @a
  v4 = m4: concat @x @b
  concat @v2 @v3 @v4
}
"""


def test_concat_elim():
    graph = compile_net(CONCATS)
    new = concat_elim(fuse_epilogue(graph)[0])
    before = snapshot(graph)
    new2, _ = assert_same_function(graph, lambda g, w: (concat_elim(g), w))
    assert snapshot(graph) == before
    elim = {n for n, d in new.nodes(data=True) if d["op"] == "concat" and d["attrs"].get("eliminated")}
    assert elim == {"m1.concat1", "m1.branch1.concat1"}  # m2: `a` twice; m3: `a` read elsewhere; m4: an input
    assert new.nodes["m1.conv2"]["attrs"]["out_slice"] == ("m1.concat1", 2)
    assert new.nodes["m1.branch1.concat1"]["attrs"]["out_slice"] == ("m1.concat1", 5)
    assert new.nodes["m1.branch1.maxpool1"]["attrs"]["out_slice"] == ("m1.branch1.concat1", 2)
    assert resolve_slice(new, "m1.branch1.maxpool1") == ("m1.concat1", 7)
    assert "out_slice" not in new.nodes["conv1"]["attrs"]  # `a`
    # the annotations survive the JSON round trip and the torch backend ignores them
    assert to_json(from_json(to_json(new))) == to_json(new)
    assert to_torch(new) is not None


# ---- plan_buffers -------------------------------------------------------------------------


def test_plan_buffers_chain():
    text = "network n {\n input 1x4x4\n conv 3x3 2 pad=1 -> relu -> conv 3x3 2 pad=1 -> relu -> flatten -> fc 3\n}"
    graph = compile_net(text)
    before = snapshot(graph)
    new, report = plan_buffers(graph, batch=2, itemsize=4)
    assert snapshot(graph) == before
    check_plan(new)
    # the input (pinned, 128 B), then two 256 B buffers ping-pong; fc's 24 B output reuses one
    assert report.buffers == (128, 256, 256)
    assert report.naive_bytes == 2 * 4 * (16 + 4 * 32 + 32 + 3)
    assert report.peak_live_bytes == 256 + 256  # two maps; the input is dead after conv1
    assert new.nodes["flatten1"]["attrs"]["buffer"] == new.nodes["relu2"]["attrs"]["buffer"]
    assert new.nodes["fc1"]["attrs"]["buffer"] != new.nodes["relu2"]["attrs"]["buffer"]
    assert new.graph["buffer_plan"] == {"batch": 2, "itemsize": 4}


def test_plan_buffers_concat_slices_share_the_concat_buffer():
    graph = concat_elim(fuse_epilogue(compile_net(CONCATS))[0])
    new, report = plan_buffers(graph)
    check_plan(new)
    buf = new.nodes["m1.concat1"]["attrs"]["buffer"]
    for node in ("m1.conv1", "m1.conv2", "m1.branch1.conv1", "m1.branch1.maxpool1", "m1.branch1.concat1"):
        assert new.nodes[node]["attrs"]["buffer"] == buf
    assert report.planned_bytes >= report.peak_live_bytes and report.planned_bytes < report.naive_bytes


# ---- the pipeline on the zoo --------------------------------------------------------------

COUNTS = {  # file: (convs, conv kernels, bn folded of, residual adds fused, concats eliminated of)
    "resnet18.cnn": (20, 20, (20, 20), 8, (0, 0)),
    "resnet50.cnn": (53, 53, (53, 53), 16, (0, 0)),
    "googlenet.cnn": (59, 41, (0, 0), 0, (9, 9)),
    "variants/googlenet_torchvision.cnn": (59, 41, (59, 59), 0, (9, 9)),
    "inception_v3.cnn": (96, 77, (96, 96), 0, (15, 15)),
}


@pytest.mark.parametrize("file", sorted(COUNTS))
def test_zoo_counts(file):
    graph = cnndsl.compile_file(ZOO / file).graph
    before = snapshot(graph)
    new, weights, report = optimize(graph)
    assert snapshot(graph) == before and weights is None
    convs, kernels, (folded, bns), adds, (elim, concats) = COUNTS[file]
    assert (report.convs, report.conv_kernels) == (convs, kernels)
    assert (report.bns_folded, report.bns) == (folded, bns)
    assert report.residual_adds_fused == adds
    assert (report.concats_eliminated, report.concats) == (elim, concats)
    assert not {"bn", "relu"} & set(ops(new))
    check_order(new)
    check_plan(new)
    assert not infer_shapes(new)
    assert to_json(from_json(to_json(new))) == to_json(new)  # fused ops and annotations survive JSON
    assert str(report).startswith(graph.graph["name"] + f": {convs} convolutions → {kernels} conv kernels")


INCEPTION_V3_MAIN = """
use "lib/inception_v3.cnn"
network inception_v3_main(classes = 10) {
  input 3x75x75
  Conv2d_1a_3x3: basic_conv(3x3, 32, stride=2)
  Conv2d_2a_3x3: basic_conv(3x3, 32)
  Conv2d_2b_3x3: basic_conv(3x3, 64, pad=1)
  maxpool1: maxpool 3x3 /2
  Conv2d_3b_1x1: basic_conv(1x1, 80)
  Conv2d_4a_3x3: basic_conv(3x3, 192)
  maxpool2: maxpool 3x3 /2
  Mixed_5b: inception_a(32)
  Mixed_5c: inception_a(64)
  Mixed_5d: inception_a(64)
  Mixed_6a: inception_b()
  Mixed_6b: inception_c(128)
  Mixed_6c: inception_c(160)
  Mixed_6d: inception_c(160)
  Mixed_6e: inception_c(192)
  Mixed_7a: inception_d()
  Mixed_7b: inception_e()
  Mixed_7c: inception_e()
  avgpool: avgpool global -> dropout: dropout 0.5 -> fc: fc classes
}
"""


@pytest.mark.parametrize(("name", "graph_of"), [
    ("resnet18@32", lambda: cnndsl.compile_file(ZOO / "resnet18.cnn", input="3x32x32", set={"classes": 10}).graph),
    ("googlenet_torchvision@64", lambda: cnndsl.compile_file(ZOO / "variants/googlenet_torchvision.cnn",
                                                             input="3x64x64", set={"classes": 10}).graph),
    ("inception_v3_main@75", lambda: compile_net(INCEPTION_V3_MAIN)),
])
def test_zoo_pipeline_computes_the_same_function(name, graph_of):
    graph = graph_of()
    new, _ = assert_same_function(graph, pipeline, batch=1)
    check_plan(new)
    module = to_torch(new)
    assert module.code and any(type(m).__name__ == "FusedConv2d" for m in module.modules())
    assert "act=relu" in repr(module)


def test_resnet18_report():
    graph = cnndsl.compile_file(ZOO / "resnet18.cnn", input="3x32x32").graph
    _, _, report = optimize(graph)
    assert (report.convs, report.conv_kernels, report.bns_folded, report.residual_adds_fused) == (20, 20, 20, 8)
    assert report.acts_fused == 17 and report.kernels == 23  # 20 convs, maxpool, avgpool, fc


# ---- random networks ----------------------------------------------------------------------

ACTS = ["relu", "sigmoid", "tanh", "stanh", "stanh a=1.5 s=0.5"]


@st.composite
def conv_unit(draw, width: int, stride: int = 1) -> str:
    k = draw(st.sampled_from([1, 3]))
    parts = [f"conv {k}x{k} {width}" + (f" /{stride}" if stride > 1 else "") + f" pad={k // 2}"
             + draw(st.sampled_from(["", " bias=false"]))]
    norm = draw(st.sampled_from(["", "", "bn", "scale", "bn -> scale", "scale bias=false"]))
    if norm:
        parts.append(norm)
    act = draw(st.sampled_from(ACTS + ["", "relu"]))
    if act:
        parts.append(act)
    return " -> ".join(parts)


@st.composite
def networks(draw) -> str:
    c = draw(st.integers(1, 4))
    h = draw(st.sampled_from([3, 4, 5]))
    lines = [f"input {c}x{h}x{h}"]
    mid_output = False
    widths = st.integers(1, 5)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["chain", "residual", "residual", "concat", "highway", "pool"]))
        if kind == "chain":
            c = draw(widths)
            lines.append(draw(conv_unit(c)))
        elif kind == "residual":
            shortcut = draw(st.sampled_from(["identity", "project", "zeropad"]))
            stride = 1 if shortcut == "identity" else draw(st.sampled_from([1, 2]))
            w = c if shortcut == "identity" else c + draw(st.integers(0, 3))
            body = [draw(conv_unit(w, stride))]
            if draw(st.booleans()):
                body.append(draw(conv_unit(w)))
            extra = draw(st.sampled_from(["", " scale=0.5"])) + draw(st.sampled_from(["", " -> relu", " -> bn"]))
            lines += ["residual {", *body, f"}} shortcut={shortcut}{extra}"]
            c, h = w, (h - 1) // stride + 1
        elif kind == "concat":
            branches, total = [], 0
            for _ in range(draw(st.integers(2, 3))):
                w = draw(widths)
                shape = draw(st.sampled_from(["1x1", "reduce", "pool", "nested"]))
                if shape == "1x1":
                    branches.append(f"conv 1x1 {w}" + draw(st.sampled_from(["", " -> relu", " -> bn -> relu"])))
                elif shape == "reduce":
                    branches.append(f"conv 1x1 {draw(widths)} -> relu -> conv 3x3 {w} pad=1 -> relu")
                elif shape == "pool":
                    branches.append(f"maxpool 3x3 /1 pad=1 -> conv 1x1 {w} -> relu")
                else:
                    branches += ["branch { concat {", f"conv 1x1 {w}", f"conv 1x1 {w} -> sigmoid", "} }"]
                    w *= 2
                total += w
            lines += ["concat {", *branches, "}"]
            c = total
        elif kind == "highway":
            k = draw(st.sampled_from([1, 3]))
            h_act = draw(st.sampled_from(ACTS))
            lines += ["highway {", f"conv {k}x{k} {c} pad={k // 2}" + draw(st.sampled_from(["", " -> bn"]))
                      + f" -> {h_act}", f"gate bias=-1 {{ conv {k}x{k} {c} pad={k // 2} -> sigmoid }}", "}"]
        elif h >= 2:
            lines.append("maxpool 2x2 /2")
            h //= 2
        if not mid_output and draw(st.integers(0, 5)) == 0:
            lines.append("output")
            mid_output = True
    head = draw(st.sampled_from(["", "fc", "fc_res", "fc_highway"]))
    if head == "fc":
        lines.append("avgpool global -> fc 4" + draw(st.sampled_from(["", " -> bn", " -> bn -> relu", " -> tanh"])))
    elif head == "fc_res":
        lines += ["flatten -> fc 5 -> relu", "residual { fc 5 -> bn -> relu }"]
    elif head == "fc_highway":
        lines += ["avgpool global -> fc 5 -> relu", "highway {", "fc 5 -> tanh",
                  "gate bias=-1 { fc 5 -> sigmoid }", "}"]
    if mid_output and lines[-1] != "output":
        lines.append("output")
    return "network random {\n" + "\n".join("  " + line for line in lines) + "\n}\n"


PASSES = {
    "fold_bn": fold_bn,
    "fuse_1x1": lambda g, w: fuse_1x1(*fold_bn(g, w)),
    "fuse_epilogue": fuse_epilogue,
    "concat_elim": lambda g, w: (concat_elim(g), w),
    "plan_buffers": lambda g, w: (plan_buffers(g)[0], w),
    "pipeline": pipeline,
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=networks(), which=st.sampled_from(sorted(PASSES)))
def test_random_networks(source, which):
    graph = compile_net(source)
    new, _ = assert_same_function(graph, PASSES[which])
    if which in ("plan_buffers", "pipeline"):
        check_plan(new)
    if which == "pipeline":
        assert not {"bn", "highway", "zeropad"} & set(ops(new)) or "bn" in ops(graph) or "highway" in ops(graph)
        again, _, _ = optimize(new)  # idempotent on its own output: nothing left to do
        assert ops(again) == ops(new)


# ---- the fused ops' registry entries agree with their lowerings ---------------------------

FUSED_CASES: dict[str, list[tuple[list, dict, list[tuple[int, ...]]]]] = {
    "fused_conv": [
        ([(3, 3), 4], {"pad": 1, "act": "relu"}, [(2, 5, 5)]),
        ([(3, 3), 4], {"stride": 2, "pad": "same", "act": "stanh", "act_a": 1.7, "act_s": 0.6, "bias": False},
         [(2, 5, 5)]),
        ([(1, 1), 4], {"residual": "add", "scale": 0.2, "post_act": "relu"}, [(4, 3, 3), (4, 3, 3)]),
        ([(3, 3), 6], {"stride": 2, "pad": 1, "residual": "zeropad", "res_stride": 2, "post_act": "tanh",
                       "groups": 2}, [(4, 7, 7), (4, 7, 7)]),
        ([(1, 7), 3], {"pad": (0, 3), "act": "sigmoid"}, [(3, 2, 9)]),
    ],
    "fused_fc": [
        ([5], {"act": "relu"}, [(7,)]),
        ([4], {"residual": "add", "post_act": "sigmoid", "bias": False}, [(2, 3, 3), (4,)]),
    ],
    "highway_conv": [
        ([(3, 3), 4], {"pad": 1, "act": "relu"}, [(4, 5, 5), (4, 5, 5)]),
        ([(1, 1), 3], {"act": "stanh", "act_a": 1.5, "act_s": 0.5, "gate_act": "sigmoid"}, [(2, 4, 4), (3, 4, 4)]),
    ],
    "highway_fc": [([6], {"act": "tanh"}, [(6,), (6,)]), ([3], {"bias": False}, [(2, 2, 2), (3,)])],
    "slice": [([], {"start": 1, "stop": 3}, [(4, 2, 2)]), ([], {"stop": 2}, [(5,)])],
}

FUSED_ERRORS = [
    ("fused_conv", [(3, 3), 4], {"residual": "add"}, [(2, 5, 5), (4, 5, 5)]),
    ("fused_conv", [(3, 3), 4], {}, [(2, 5, 5), (4, 3, 3)]),
    ("fused_conv", [(3, 3), 4], {"residual": "zeropad"}, [(2, 5, 5), (2, 5, 5)]),
    ("fused_conv", [(3, 3), 4], {"residual": "zeropad", "res_stride": 2}, [(2, 5, 5), (6, 5, 5)]),
    ("fused_fc", [4], {"residual": "zeropad"}, [(4,), (4,)]),
    ("highway_conv", [(3, 3), 4], {"pad": 1}, [(4, 5, 5), (3, 5, 5)]),
    ("highway_conv", [(3, 3), 4], {"pad": 1, "groups": 2}, [(4, 5, 5), (4, 5, 5)]),
    ("slice", [], {"start": 2, "stop": 2}, [(4, 2, 2)]),
    ("slice", [], {"stop": 5}, [(4, 2, 2)]),
]


def test_fused_ops_are_internal_and_complete():
    for name in FUSED_OPS:
        assert not REGISTRY[name].user and name in LOWERINGS and name in FUSED_CASES


@pytest.mark.parametrize("name", FUSED_OPS)
def test_fused_op_shape_rule_matches_lowering(name):
    op = REGISTRY[name]
    for pos, kw, ins in FUSED_CASES[name]:
        attrs = op.bind(list(pos), dict(kw))
        out = op.shape(attrs, ins)
        lowered = LOWERINGS[name](attrs, ins, out)
        xs = [torch.randn(2, *s) for s in ins]
        with torch.no_grad():
            if isinstance(lowered, nn.Module):
                y = lowered(*xs)
                params = sum(p.numel() for p in lowered.parameters())
            else:
                y = lowered.fn(*xs, **lowered.kwargs)
                params = 0
        assert tuple(y.shape) == (2, *out), f"{name} {kw}"
        assert params == op.param_count(attrs, ins, out)
        assert op.macs(attrs, ins, out) >= 0


@pytest.mark.parametrize(("name", "pos", "kw", "ins"), FUSED_ERRORS)
def test_fused_op_shape_errors(name, pos, kw, ins):
    op = REGISTRY[name]
    with pytest.raises(ShapeError):
        op.shape(op.bind(list(pos), dict(kw)), ins)


def test_fused_macs_equal_the_unfused_sum():
    for file, size in (("resnet18.cnn", "3x32x32"), ("variants/googlenet_torchvision.cnn", "3x64x64"),
                       ("highway_cifar.cnn", None), ("highway_fc.cnn", None)):
        net = cnndsl.compile_file(ZOO / file, input=size)
        new, _, _ = optimize(net.graph)
        assert sum(node_stats(new, n).macs for n in new) == net.summary().macs, file
