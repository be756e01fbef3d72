"""IR passes (cnndsl/passes), one at a time, on hand-made graphs: each transformed IR computes
what the original computes (the check in `tests/pass_checks.py`: the original graph's torch module
with random batch-norm statistics against the transformed graph's module loaded strictly with the
transformed weights), and passes never change their inputs. The zoo, hypothesis-generated networks
and the fused ops' registry entries are in `test_passes_zoo.py`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cnndsl
from cnndsl.backends.torch.lower import to_torch
from cnndsl.ir.graph import from_json, inputs_of, to_json
from cnndsl.passes import (
    concat_elim,
    densify,
    fold_bn,
    fuse_1x1,
    fuse_epilogue,
    fuse_gate,
    fuse_post_norm,
    fuse_prologue,
    optimize,
    plan_buffers,
)
from cnndsl.passes.concat_elim import resolve_slice, routed_by
from cnndsl.passes.pipeline import kernel_count, run_passes
from tests.conftest import torch_reference as reference
from tests.pass_checks import (
    ZOO,
    assert_same_function,
    check_plan,
    compile_net,
    ops,
    pipeline,
    snapshot,
)

pytestmark = pytest.mark.usefixtures("one_thread")


# ---- densify ------------------------------------------------------------------------------


def test_densify_rewrites_lenet_layers_as_convolutions():
    graph = cnndsl.compile_file(ZOO / "lenet5.cnn").graph
    new, w = assert_same_function(graph, densify)
    assert {n: d["op"] for n, d in new.nodes(data=True) if n in ("s2", "c3", "s4")} == {
        "s2": "conv", "c3": "conv", "s4": "conv"}
    assert new.nodes["s2"]["attrs"]["groups"] == 6 and new.nodes["c3"]["attrs"]["table"] is None
    assert w["s2.weight"].shape == (6, 1, 2, 2) and w["c3.weight"].shape == (16, 6, 5, 5)
    dense = w["c3.weight"].abs().sum((2, 3)) > 0
    table = graph.nodes["c3"]["attrs"]["table"]
    assert dense.tolist() == [[i in row for i in range(6)] for row in table]
    g2, w2 = densify(graph)
    assert w2 is None and to_json(g2) == to_json(new)
    # then the other passes take the rewritten layers: every sigmoid and stanh is fused
    fused, _, report = optimize(graph)
    assert not {"subsample", "sigmoid", "stanh"} & set(ops(fused)) and report.densified == 3


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


# ---- fuse_prologue ------------------------------------------------------------------------

PREACT = """
use "lib/preact.cnn"
network pre {
  input 4x6x6
  conv 3x3 6 pad=1 bias=false
  preact_basic(6)
  preact_basic_proj(8, stride=2)
  u = scale -> conv 1x1 8
  v = @u -> maxpool 3x3 /1 pad=1 -> bn -> stanh a=1.5 s=0.5
  a = @v -> conv 3x3 8 pad=1 groups=2
  b = @v -> maxpool 3x3 /1 pad=1
  add @a @b
  bn -> relu -> avgpool global -> fc 3
}
"""


def _to_prologues(graph, weights):
    return fuse_prologue(*fuse_epilogue(*fold_bn(graph, weights)))


def test_fuse_prologue_moves_pre_activations_into_the_convs():
    graph = compile_net(PREACT)
    new, _ = assert_same_function(graph, _to_prologues)
    pre = {n: (d["attrs"]["pre_act"], d["attrs"]["pre_fused"]) for n, d in new.nodes(data=True)
           if d["attrs"].get("pre")}
    assert pre == {
        "preact_basic1.conv1": ("relu", ("preact_basic1.bn1", "preact_basic1.relu1")),
        # the shared BN-ReLU of a projection unit: both readers apply it
        "preact_basic_proj1.conv1": ("relu", ("preact_basic_proj1.bn1", "preact_basic_proj1.relu1")),
        "preact_basic_proj1.shortcut1.conv1": ("relu", ("preact_basic_proj1.bn1", "preact_basic_proj1.relu1")),
        "conv2": ("none", ("scale1",)),  # a scale without an activation
    }  # the units' second bn -> relu follows a conv: fold_bn folds it, fuse_epilogue fuses the relu
    left = {n for n, d in new.nodes(data=True) if d["op"] in ("bn", "stanh", "relu", "scale")}
    assert left == {"bn1", "stanh1", "bn2", "relu1"}  # read by a pool too; read by a pool only


def test_fuse_prologue_weights_and_graph_only():
    graph = compile_net(PREACT)
    ref = reference(graph)
    g, w = _to_prologues(graph, ref.state_dict())
    assert "preact_basic1.bn1.running_mean" not in w and "scale1.weight" not in w
    s = w["preact_basic1.conv1.pre_scale"]
    assert s.shape == (6,) and torch.equal(w["preact_basic_proj1.conv1.pre_shift"],
                                           w["preact_basic_proj1.shortcut1.conv1.pre_shift"])
    g2, w2 = _to_prologues(graph, None)
    assert w2 is None and to_json(g2) == to_json(g)
    assert to_json(from_json(to_json(g))) == to_json(g)
    assert "pre_act=relu" in repr(to_torch(g))


def _to_post_norms(graph, weights):
    return fuse_post_norm(*fuse_epilogue(*fold_bn(graph, weights)))


def test_fuse_post_norm_takes_the_bn_after_a_fused_add():
    """A bn (scale) that alone reads a fused residual add joins that layer's epilogue, with the
    activation after it; a bn whose add output is read elsewhere too stays."""
    graph = compile_net(PREACT)
    new, _ = assert_same_function(graph, _to_post_norms)
    post = {n: (d["attrs"]["post_act"], d["attrs"]["fused"]) for n, d in new.nodes(data=True)
            if d["attrs"].get("post_norm")}
    assert post == {
        "preact_basic1.conv2": ("relu", ("preact_basic1.add1", "preact_basic_proj1.bn1", "preact_basic_proj1.relu1")),
        "preact_basic_proj1.shortcut1.conv1": ("none", ("preact_basic_proj1.add1", "scale1")),
        "conv3": ("relu", ("add1", "bn2", "relu1")),
    }
    left = {n for n, d in new.nodes(data=True) if d["op"] in ("bn", "stanh", "relu", "scale")}
    assert left == {"preact_basic1.bn1", "preact_basic1.relu1", "bn1", "stanh1"}  # the stem's output is read twice
    _, w = _to_post_norms(graph, reference(graph).state_dict())
    assert w["conv3.post_scale"].shape == (8,) and "bn2.running_var" not in w
    assert "post_norm" in repr(to_torch(new))
    # then fuse_prologue takes what is left for the convs: the first unit's pre-activation
    both, _ = assert_same_function(graph, lambda g, w: fuse_prologue(*_to_post_norms(g, w)))
    assert {n for n, d in both.nodes(data=True) if d["attrs"].get("pre")} == {"preact_basic1.conv1"}


# ---- fuse_gate ----------------------------------------------------------------------------

GATES = """
network gates {
  input 6x5x5
  x = conv 3x3 8 pad=1 -> relu
  g = @x -> avgpool global -> conv 1x1 2 -> relu -> conv 1x1 8 -> sigmoid
  a = mul @x @g -> conv 1x1 8
  b = mul @g @a -> conv 3x3 4 pad=1 groups=2
  c = @b -> bn -> relu
  h = @c -> avgpool global -> conv 1x1 4 -> hardsigmoid
  p = mul @c @h
  q = @p -> conv 1x1 4
  r = @p -> maxpool 3x3 /1 pad=1
  add @q @r
}
"""


def _to_gates(graph, weights):
    return fuse_gate(*fuse_prologue(*fuse_epilogue(*fold_bn(graph, weights))))


def test_fuse_gate_moves_se_products_into_the_convs_reading_them():
    """A product of a map by its C×1×1 gate (either operand order) read only by convs is gone:
    each reader gates what it loads; one read by a pool too stays a kernel of its own."""
    graph = compile_net(GATES)
    new, _ = assert_same_function(graph, _to_gates)
    gated = {n: (inputs_of(new, n), d["attrs"]["pre_fused"]) for n, d in new.nodes(data=True)
             if d["attrs"].get("in_gate")}
    assert gated == {"conv4": (["conv1", "conv3"], ("mul1",)), "conv5": (["conv4", "conv3"], ("mul2",))}
    assert [n for n, d in new.nodes(data=True) if d["op"] == "mul"] == ["mul3"]
    assert optimize(graph)[2].gates_fused == 2
    assert "gates" in str(optimize(graph)[2]) and "2 SE gates fused" in str(optimize(graph)[2])


def test_fuse_gate_leaves_products_it_cannot_take():
    """Two maps multiplied, a gated map that is an output, a gate read by a fc: all stay."""
    src = ("network n {\n  x = input 4x3x3\n  a = conv 1x1 4\n  b = @x -> conv 1x1 4\n  m = mul @a @b -> conv 1x1 4\n"
           "  g = @m -> avgpool global\n  o = mul @m @g\n  f = @o -> flatten -> fc 3\n  output @o\n  output @f\n}")
    graph = compile_net(src)
    new, _ = assert_same_function(graph, _to_gates)
    assert sorted(n for n, d in new.nodes(data=True) if d["op"] == "mul") == ["mul1", "mul2"]


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
    assert resolve_slice(new, "m1.branch1.maxpool1") == ("m1.concat1", 7, 1)
    assert "out_slice" not in new.nodes["conv1"]["attrs"]  # `a`
    # the annotations survive the JSON round trip and the torch backend ignores them
    assert to_json(from_json(to_json(new))) == to_json(new)
    assert to_torch(new) is not None


SHUFFLES = """
network s {
  x = input 8x4x4
  a = conv 1x1 4
  b = @x -> conv 3x3 4 pad=1
  y = concat @a @b -> channel_shuffle 2
  keep = @y -> channel_slice 0 4
  c = @y -> channel_slice 4 8 -> conv 1x1 4
  z = concat @keep @c -> channel_shuffle 2
  p = @z -> conv 1x1 6
  q = @z -> conv 1x1 3
  u = concat @p @q -> channel_shuffle 3
  r = @u -> conv 1x1 9
  w = concat @r @r -> channel_shuffle 2
}
"""


def test_concat_elim_folds_a_shuffle_into_its_concats_writes():
    """ShuffleNetV2's concat -> channel_shuffle 2: each producer writes every second channel of
    the shuffle's output (resolve_slice: offset g, step 2); a producer across two groups (u: 6 + 3
    channels in groups of 3) or a concat that is not eliminated (w: `r` twice) leaves the shuffle."""
    graph = compile_net(SHUFFLES)
    new, _ = assert_same_function(graph, lambda g, w: run_passes(g, w, ("densify", "fuse_epilogue", "concat_elim"))[:2])
    folded = sorted(n for n, d in new.nodes(data=True) if d["op"] == "channel_shuffle" and d["attrs"].get("eliminated"))
    assert folded == ["channel_shuffle1", "channel_shuffle2"]
    assert resolve_slice(new, "conv1") == ("channel_shuffle1", 0, 2)
    assert resolve_slice(new, "conv2") == ("channel_shuffle1", 1, 2)
    assert resolve_slice(new, "channel_slice1") == ("channel_shuffle2", 0, 2)  # a copy, not a route
    assert resolve_slice(new, "conv3") == ("channel_shuffle2", 1, 2)
    assert "route" not in new.nodes["conv3"]["attrs"]
    # 6 convs, the slice copy, w's concat copy and the two shuffles left; the view, the eliminated
    # concats and the folded shuffles move nothing
    assert kernel_count(new) == 10


def test_concat_elim_routes_one_branch_slice_per_merged_conv():
    """A merged 1x1 conv writes one branch slice straight into its concat (`route`); a second
    slice of the same conv (m2) stays a copy."""
    graph = compile_net(INCEPTION)
    new = concat_elim(fuse_epilogue(fuse_1x1(fold_bn(graph)[0])[0])[0])
    routes = {n: d["attrs"]["route"] for n, d in new.nodes(data=True) if "route" in d["attrs"]}
    assert routes == {"m1.fused_1x1": "m1.branch1.conv", "m2.fused_1x1": "m2.conv1"}
    assert routed_by(new, "m1.branch1.conv") == "m1.fused_1x1" and routed_by(new, "m2.conv2") is None
    assert new.nodes["m2.conv2"]["attrs"]["out_slice"] == ("m2.concat1", 3)
    assert routed_by(new, "m1.branch2.0.conv") is None  # a view: no out_slice
    planned, _ = plan_buffers(new)
    check_plan(planned)
    assert_same_function(graph, _routed_pipeline)


def test_plan_buffers_a_routed_slice_is_live_from_its_convolution():
    """The concat's buffer is written when the merged conv runs, before the slice's own step: it
    must not reuse the buffer of the conv's input, whose last reader is that conv."""
    text = """
network n {
  input 3x4x4
  conv 3x3 8 pad=1 -> relu
  concat {
    conv 1x1 4 -> relu
    conv 1x1 3 -> relu -> conv 3x3 5 pad=1 -> relu
  }
}"""
    graph = compile_net(text)
    g = concat_elim(fuse_epilogue(fuse_1x1(fold_bn(graph)[0])[0])[0])
    assert g.nodes["fused_1x1"]["attrs"]["route"] == "conv2"
    planned, _ = plan_buffers(g, batch=1, itemsize=4)
    check_plan(planned)
    buffer = {n: planned.nodes[n]["attrs"]["buffer"] for n in planned.nodes}
    assert buffer["conv2"] == buffer["concat1"] != buffer["conv1"]  # conv1: the merged conv's input
    assert_same_function(graph, lambda g, w: _routed_pipeline(g, w))


def _routed_pipeline(graph, weights):
    g, w = fuse_epilogue(*fuse_1x1(*fold_bn(graph, weights)))
    return plan_buffers(concat_elim(g))[0], w


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
