"""The ops of issue 13 (mul, identity, drop_path, layerscale, prelu, groupnorm, layernorm,
channel_shuffle, bn affine=false) end to end: the torch lowering against torch.nn / torchvision on random
inputs, the networks they are written for (squeeze-and-excitation, a ConvNeXt block, a
ShuffleNet unit) through the passes and the Triton backend under the interpreter (fp32 and
fp16, no torch fallback), and the mistakes they refuse. Shape rules: test_shape_rules.py;
the kernels alone: test_triton_elementwise.py."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import cnndsl  # noqa: E402
from cnndsl import CompileError  # noqa: E402
from tests.conftest import torch_reference  # noqa: E402
from tests.kernel_checks import rel  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
TOL = {torch.float32: 1e-3, torch.float16: 2e-2}

SE = """network se {
  input 8x6x6
  x = conv 3x3 8 pad=1 -> relu
  g = @x -> avgpool global -> conv 1x1 2 -> relu -> conv 1x1 8 -> sigmoid
  mul @x @g -> conv 1x1 4
}
"""


def triton_matches(src: str, dtype: torch.dtype, batch: int = 2, **compile_args) -> str:
    """Compile, run the torch module and the Triton network on one random batch; return the report."""
    from cnndsl.backends.triton.launcher import to_triton

    graph = cnndsl.compile_source(src, **compile_args).graph
    module = torch_reference(graph)
    xs = [torch.randn(batch, *graph.nodes[n]["shape"], generator=torch.Generator().manual_seed(3))
          for n in graph.graph["inputs"]]
    net = to_triton(graph, module.state_dict(), device="cpu", dtype=dtype)
    with torch.no_grad():
        want = module(*xs)
    got = net(*xs)
    assert got.shape == want.shape
    assert rel(got, want) < TOL[dtype], net.check(xs, module, TOL[dtype])
    assert not net.report.fallbacks, str(net.report)
    return str(net.report)


# ---- mul -----------------------------------------------------------------------------------


def test_squeeze_and_excitation_is_torchvisions():
    """SE written with `mul` and 1x1 convs is torchvision's SqueezeExcitation, weight for weight."""
    from torchvision.ops import SqueezeExcitation

    net = cnndsl.compile_source(SE)
    module = net.to_torch().eval()
    se = SqueezeExcitation(8, 2).eval()
    se.fc1.load_state_dict(module.conv2.state_dict())
    se.fc2.load_state_dict(module.conv3.state_dict())
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        feat = torch.relu(module.conv1(x))
        assert rel(module(x), module.conv4(se(feat))) < 1e-6


def test_fc_on_a_gate_is_flat_so_se_uses_1x1_convs():
    """fc flattens a Cx1x1 input (Caffe's InnerProduct): an SE gate written with fc is flat and
    `mul` says so; the 1x1 convs keep it Cx1x1."""
    src = SE.replace("conv 1x1 2 -> relu -> conv 1x1 8", "fc 2 -> relu -> fc 8")
    with pytest.raises(CompileError, match="mul needs equal shapes or a Cx1x1 gate"):
        cnndsl.compile_source(src)


def test_a_gate_whose_channels_do_not_match_is_a_clear_error():
    with pytest.raises(CompileError) as info:
        cnndsl.compile_source(SE.replace("conv 1x1 8 -> sigmoid", "conv 1x1 4 -> sigmoid"))
    text = info.value.render()
    assert "a gate whose channels do not match: the gate has 4 channels, the map 8" in text
    assert "conv 1x1 8 -> sigmoid" in text  # the hint


def test_mul_of_equal_shapes_and_of_three_operands():
    net = cnndsl.compile_source("network m {\n  x = input 3x4x4\n  a = conv 1x1 3\n  b = @x -> conv 1x1 3\n"
                                "  g = @a -> avgpool global\n  mul @a @b @g\n}")
    module = net.to_torch().eval()
    x = torch.randn(2, 3, 4, 4)
    with torch.no_grad():
        a, b = module.conv1(x), module.conv2(x)
        assert rel(module(x), a * b * a.mean((2, 3), keepdim=True)) < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_se_runs_in_triton_kernels(dtype):
    """The gate read by a conv is multiplied into that conv's input loads; one that ends the
    network (no conv reads it) runs as a broadcast product."""
    report = triton_matches(SE, dtype)
    assert "1 SE gates multiplied in" in report and "broadcast_binary" not in report
    report = triton_matches(SE.replace("mul @x @g -> conv 1x1 4", "mul @x @g"), dtype)
    assert "SE gates" not in report and "broadcast_binary" in report


# ---- identity and drop_path --------------------------------------------------------------

BLOCK = """network blk {{
  input 4x5x5
  residual {{ conv 3x3 4 pad=1 -> relu -> conv 1x1 4 -> {op} }} -> relu
  conv 1x1 3 -> {op}
}}
"""


@pytest.mark.parametrize("op", ["identity", "drop_path 0.3", "drop_path 0"])
def test_noops_are_the_identity_in_eval_and_vanish_in_the_passes(op):
    from cnndsl.passes import optimize

    net = cnndsl.compile_source(BLOCK.format(op=op))
    module = net.to_torch().eval()
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        y = torch.relu(module.conv2(torch.relu(module.conv1(x))) + x)
        assert rel(module(x), module.conv3(y)) < 1e-6
    fused, _, report = optimize(net.graph, module.state_dict())
    name = op.split()[0]
    assert report.residual_adds_fused == 1
    assert [d["op"] for _, d in fused.nodes(data=True)].count(name) == 1  # the one that is an output: a view


def test_drop_path_is_torchvisions_stochastic_depth():
    from torchvision.ops import StochasticDepth

    net = cnndsl.compile_source(BLOCK.format(op="drop_path 0.5"))
    module = net.to_torch()
    assert isinstance(module.drop_path1, StochasticDepth) and module.drop_path1.mode == "row"
    module.train()
    x = torch.randn(64, 4, 5, 5)
    ref = StochasticDepth(0.5, "row")
    torch.manual_seed(7)
    body = module.conv2(torch.relu(module.conv1(x)))
    torch.manual_seed(7)
    got = module.drop_path1(body)
    torch.manual_seed(7)
    want = ref(body)
    assert torch.equal(got, want)
    kept = got.flatten(1).abs().sum(1) > 0
    assert 0 < kept.sum() < 64  # whole samples dropped, the others scaled by 2
    assert torch.allclose(got[kept], 2 * body[kept])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_noops_run_in_triton_kernels(dtype):
    triton_matches(BLOCK.format(op="drop_path 0.2"), dtype)
    triton_matches(BLOCK.format(op="identity"), dtype)


def test_drop_noops_keeps_the_function_and_its_input():
    from cnndsl.passes.drop_noops import drop_noops
    from tests.pass_checks import assert_same_function

    src = """network n {
  x = input 3x4x4
  a = identity -> conv 1x1 3 -> drop_path 0.1
  b = @x -> identity -> identity
  concat @a @b -> identity
}"""
    graph = cnndsl.compile_source(src).graph
    new, _ = assert_same_function(graph, drop_noops)
    assert [d["op"] for _, d in new.nodes(data=True)] == ["input", "conv", "concat", "identity"]


# ---- layerscale --------------------------------------------------------------------------

CNBLOCK = """network cn {{
  input 8x5x5
  residual {{
    conv 7x7 8 pad=3 groups=8 -> {norm}
    conv 1x1 32 -> gelu -> conv 1x1 8 -> layerscale init={init} -> drop_path 0.1
  }}
  {tail}
}}
"""


def test_layerscale_is_convnexts_layer_scale():
    net = cnndsl.compile_source(CNBLOCK.format(norm="identity", init=0.5, tail="layerscale"))
    module = net.to_torch().eval()
    assert module.layerscale1.weight.shape == (8, 1, 1) and (module.layerscale1.weight == 0.5).all()
    assert net.summary().trainable_params == sum(p.numel() for p in module.parameters())
    flat = cnndsl.compile_source("network f {\n  input 6\n  layerscale init=2\n}").to_torch()
    assert flat.layerscale1.weight.shape == (6,)
    x = torch.randn(3, 6)
    assert torch.equal(flat(x), 2 * x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_layerscale_folds_and_runs_in_triton_kernels(dtype):
    from cnndsl.passes import optimize

    src = CNBLOCK.format(norm="identity", init=0.5, tail="layerscale init=0.7")
    graph = cnndsl.compile_source(src).graph
    fused, _, report = optimize(graph, torch_reference(graph).state_dict())
    assert report.residual_adds_fused == 1  # conv -> layerscale (folded) -> drop_path (dropped) -> add
    assert report.post_norms == 1  # the layerscale after the add: into that conv's epilogue
    assert [d["op"] for _, d in fused.nodes(data=True)] == ["input", "fused_conv", "fused_conv", "fused_conv"]
    triton_matches(src, dtype)
    alone = CNBLOCK.format(norm="identity", init=0.5, tail="maxpool 3x3 stride=1 pad=1 -> layerscale init=0.7")
    assert "broadcast_binary" in triton_matches(alone, dtype)  # after a pool: its own kernel


# ---- prelu -------------------------------------------------------------------------------


@pytest.mark.parametrize("args, slopes", [("", 1), (" channels=true", 6), (" channels=true init=0.1", 6)])
def test_prelu_is_nn_prelu(args, slopes):
    module = cnndsl.compile_source(f"network p {{\n  input 6x3x3\n  prelu{args}\n  flatten -> prelu{args}\n}}").to_torch()
    first = module.prelu1
    assert isinstance(first, nn.PReLU) and first.weight.shape == (slopes,)
    assert module.prelu2.weight.shape == ((54,) if slopes > 1 else (1,))
    with torch.no_grad():
        first.weight.uniform_(-1, 1)
        module.prelu2.weight.uniform_(-1, 1)
    ref1 = nn.PReLU(slopes)
    ref1.load_state_dict(first.state_dict())
    ref2 = nn.PReLU(module.prelu2.weight.numel())
    ref2.load_state_dict(module.prelu2.state_dict())
    x = torch.randn(2, 6, 3, 3)
    with torch.no_grad():
        assert torch.equal(module(x), ref2(ref1(x).flatten(1)))
    if "init" in args:
        assert torch.allclose(nn.PReLU(6, 0.1).weight, torch.full((6,), 0.1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_prelu_runs_in_triton_kernels(dtype):
    src = "network p {\n  input 5x4x4\n  conv 3x3 6 pad=1 -> prelu channels=true\n  conv 1x1 4 -> prelu\n  fc 7 -> prelu channels=true\n}"
    assert "broadcast_binary" in triton_matches(src, dtype)


# ---- groupnorm and layernorm -------------------------------------------------------------


def test_layernorm_is_convnexts_layernorm2d_and_nn_layernorm():
    from torchvision.models.convnext import LayerNorm2d

    net = cnndsl.compile_source("network l {\n  input 6x3x4\n  layernorm eps=1e-6\n  flatten -> layernorm\n}")
    module = net.to_torch().eval()
    with torch.no_grad():
        for m in (module.layernorm1, module.layernorm2):
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.2)
    ref1 = LayerNorm2d(6, eps=1e-6)
    ref1.load_state_dict(module.layernorm1.state_dict())
    ref2 = nn.LayerNorm(72)
    ref2.load_state_dict(module.layernorm2.state_dict())
    x = torch.randn(2, 6, 3, 4)
    with torch.no_grad():
        assert rel(module(x), ref2(ref1(x).flatten(1))) < 1e-6
    assert net.summary().trainable_params == 2 * 6 + 2 * 72


def test_groupnorm_is_nn_groupnorm():
    net = cnndsl.compile_source("network g {\n  input 8x3x3\n  groupnorm 4 eps=1e-6\n  groupnorm groups=2 affine=false\n}")
    module = net.to_torch().eval()
    assert isinstance(module.groupnorm1, nn.GroupNorm) and module.groupnorm1.num_groups == 4
    ref = nn.Sequential(nn.GroupNorm(4, 8, 1e-6), nn.GroupNorm(2, 8, affine=False))
    with torch.no_grad():
        module.groupnorm1.weight.uniform_(0.5, 1.5)
    ref[0].load_state_dict(module.groupnorm1.state_dict())
    x = torch.randn(2, 8, 3, 3)
    with torch.no_grad():
        assert rel(module(x), ref(x)) < 1e-6
    assert net.summary().trainable_params == 16
    with pytest.raises(CompileError, match=r"groupnorm: groups \(3\) must divide the channels \(8\)"):
        cnndsl.compile_source("network g {\n  input 8x3x3\n  groupnorm 3\n}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_convnext_block_runs_in_triton_kernels(dtype):
    src = CNBLOCK.format(norm="layernorm eps=1e-6", init=0.5, tail="groupnorm 2 -> avgpool global -> layernorm eps=1e-6 -> flatten -> fc 6 -> layernorm -> fc 3")
    report = triton_matches(src, dtype)
    assert "group_norm" in report and "layer_norm_lastdim" in report


# ---- channel_shuffle ---------------------------------------------------------------------

SHUFFLE = """network sh {
  x = input 8x6x6
  a = conv 1x1 4
  b = @x -> conv 1x1 4 -> bn -> relu -> conv 3x3 4 pad=1 groups=4 -> bn -> conv 1x1 4 -> relu
  concat @a @b -> channel_shuffle 2
  conv 1x1 6 groups=2 -> channel_shuffle groups=3
}
"""


def test_channel_shuffle_is_torchvisions():
    from torchvision.models.shufflenetv2 import channel_shuffle

    module = torch_reference(cnndsl.compile_source(SHUFFLE).graph)
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        a = module.conv1(x)
        b = torch.relu(module.conv4(module.bn2(module.conv3(torch.relu(module.bn1(module.conv2(x)))))))
        want = channel_shuffle(module.conv5(channel_shuffle(torch.cat([a, b], 1), 2)), 3)
        assert rel(module(x), want) < 1e-6
    with pytest.raises(CompileError, match=r"channel_shuffle: groups \(3\) must divide the channels \(8\)"):
        cnndsl.compile_source("network s {\n  input 8x2x2\n  channel_shuffle 3\n}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_shufflenet_unit_runs_in_triton_kernels(dtype):
    assert "channel_shuffle" in triton_matches(SHUFFLE, dtype)


# ---- bn affine=false -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_bn_without_affine_is_nn_batchnorm_and_folds(dtype):
    """`bn affine=false` is nn.BatchNorm2d(affine=False): no parameters, running statistics only,
    folded into the conv before it (γ = 1, β = 0) and fused by the Triton backend."""
    src = "network b {\n  input 3x5x5\n  conv 3x3 6 pad=1 -> bn affine=false -> relu\n  flatten -> fc 4 -> bn affine=false eps=1e-3\n}"
    net = cnndsl.compile_source(src)
    module = torch_reference(net.graph)
    assert isinstance(module.bn1, nn.BatchNorm2d) and not module.bn1.affine and module.bn1.weight is None
    assert net.summary().trainable_params == (3 * 9 * 6 + 6) + (6 * 25 * 4 + 4)
    x = torch.randn(2, 3, 5, 5)
    with torch.no_grad():
        h = torch.relu((module.conv1(x) - module.bn1.running_mean[:, None, None])
                       / torch.sqrt(module.bn1.running_var[:, None, None] + 1e-5))
        y = module.fc1(h.flatten(1))
        want = (y - module.bn2.running_mean) / torch.sqrt(module.bn2.running_var + 1e-3)
        assert rel(module(x), want) < 1e-5
    from cnndsl.passes import optimize

    fused, _, _ = optimize(net.graph, module.state_dict())
    assert "bn" not in {d["op"] for _, d in fused.nodes(data=True)}  # both folded
    triton_matches(src, dtype)  # no fallback
