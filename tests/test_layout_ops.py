"""channel_slice, channel_linear and upsample end to end: the torch lowering against the
torch / torchvision modules they stand for (ShuffleNetV2's InvertedResidual, ConvNeXt's CNBlock
with its weights loaded as they are, nn.Upsample), the Triton backend under the interpreter
(fp32 and fp16, no torch fallback), and the mistakes they refuse. Shape rules: test_shape_rules.py."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import cnndsl  # noqa: E402
from cnndsl import CompileError  # noqa: E402
from cnndsl.backends.torch.weights import load_weights  # noqa: E402
from tests.kernel_checks import rel  # noqa: E402
from tests.test_docs import example_named  # noqa: E402
from tests.test_modern_ops import triton_matches  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SHUFFLE_V2 = example_named("shufflenet_v2_stage")  # docs/LANGUAGE.md's ShuffleNetV2 unit and stage
CONVNEXT = example_named("convnext_block")


def _load_in_order(module: nn.Module, reference: nn.Module) -> None:
    """Copy module's parameters and buffers into reference, pairing them in order; shapes must match."""
    ours, theirs = module.state_dict(), reference.state_dict()
    assert [tuple(v.shape) for v in ours.values()] == [tuple(v.shape) for v in theirs.values()]
    reference.load_state_dict(dict(zip(theirs, ours.values())))


def _randomise(module: nn.Module) -> None:
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)


# ---- channel_slice --------------------------------------------------------------------------


def test_shufflenet_v2_units_are_torchvisions():
    """The split into halves is `channel_slice`, and the units equal torchvision's InvertedResidual."""
    from torchvision.models.shufflenetv2 import InvertedResidual

    net = cnndsl.compile_source(SHUFFLE_V2)
    module = net.to_torch().eval()
    _randomise(module)
    reference = nn.Sequential(InvertedResidual(24, 48, 2), *(InvertedResidual(48, 48, 1) for _ in range(3))).eval()
    _load_in_order(module, reference)
    assert net.summary().trainable_params == sum(p.numel() for p in reference.parameters())
    x = torch.randn(2, 24, 8, 8)
    with torch.no_grad():
        assert rel(module(x), reference(x)) < 1e-6


def test_channel_slice_is_a_slice_of_the_channels():
    src = "network s {\n  x = input 6x2x3\n  a = channel_slice 1 4\n  b = @x -> flatten -> channel_slice 0 5\n}"
    net = cnndsl.compile_source(src.replace("}", "  output @a\n  output @b\n}"))
    x = torch.randn(2, 6, 2, 3)
    with torch.no_grad():
        a, b = net.to_torch()(x)
    assert torch.equal(a, x[:, 1:4]) and torch.equal(b, x.flatten(1)[:, :5])


@pytest.mark.parametrize("bad, message", [
    ("channel_slice 2 9", "channel_slice: channels 2 to 9 are not a range inside the 8 channels"),
    ("channel_slice 4 4", "channel_slice: channels 4 to 4 are not a range"),
    ("channel_slice 5 @x.c // 2", "channel_slice: channels 5 to 4 are not a range"),
])
def test_a_slice_outside_the_channels_is_a_clear_error(bad, message):
    with pytest.raises(CompileError) as info:
        cnndsl.compile_source(f"network s {{\n  x = input 8x4x4\n  {bad}\n}}")
    text = info.value.render()
    assert message in text and "<string>:3:3" in text and "channel_slice 0 in.c // 2" in text


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_shufflenet_v2_units_run_in_triton_kernels(dtype):
    """The kept half is copied into the concat by a kernel, the branch's last conv writes its half,
    each to every second channel: the shuffle after the concat moves no data. A shuffle of a map
    that no concat writes runs as its own kernel."""
    report = triton_matches(SHUFFLE_V2, dtype)
    assert "slice copy" in report and "channel_shuffle" not in report.split("\n")[1]
    assert "4 channel shuffles written by their concat's producers" in report
    report = triton_matches("network s {\n  input 8x5x5\n  conv 3x3 12 pad=1 -> relu -> channel_shuffle 3\n}", dtype)
    assert "1 channel_shuffle" in report


# ---- channel_linear -------------------------------------------------------------------------

CNBLOCK = """network cnblock {
  input 16x8x8
  residual {
    conv 7x7 16 pad=3 groups=16 -> layernorm eps=1e-6
    channel_linear 64 -> gelu -> channel_linear 16 -> layerscale init=0.5 -> drop_path 0.1
  }
}
"""


def test_convnext_block_is_torchvisions_and_loads_its_weights_as_they_are():
    """The document's ConvNeXt example is torchvision's CNBlock and a head: channel_linear's weights
    are nn.Linear's [out, in], so the reference's state_dict pairs up tensor for tensor, unreshaped."""
    from torchvision.models.convnext import CNBlock, LayerNorm2d

    reference = nn.Sequential(CNBlock(16, layer_scale=1e-6, stochastic_depth_prob=0.1), nn.GroupNorm(4, 16),
                              nn.PReLU(16), nn.Identity(), nn.AdaptiveAvgPool2d(1), LayerNorm2d(16, eps=1e-6),
                              nn.Flatten(), nn.Linear(16, 10)).eval()
    with torch.no_grad():
        for p in reference.parameters():
            p.normal_(0, 0.2)
    net = cnndsl.compile_source(CONVNEXT)
    module = net.to_torch().eval()
    # torchvision registers layer_scale before the block that it follows in the data flow:
    # pairing by call order puts a module's own tensors after those of the children it calls
    pairs = load_weights(module, reference, order="calls")
    assert [theirs for _, theirs in pairs][6:9] == ["0.block.5.weight", "0.block.5.bias", "0.layer_scale"]
    assert isinstance(module.channel_linear1, nn.Linear)
    assert net.summary().trainable_params == sum(p.numel() for p in reference.parameters())
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        assert rel(module(x), reference(x)) < 1e-6


def test_channel_linear_on_rows_is_nn_linear_and_counts_like_fc():
    net = cnndsl.compile_source("network l {\n  input 6x3x3\n  channel_linear 4 bias=false\n"
                                "  avgpool global -> flatten -> channel_linear 5\n}")
    module = net.to_torch().eval()
    rows = net.summary().rows
    assert [(r.params, r.macs) for r in rows if r.op == "channel_linear"] == [(24, 6 * 4 * 9), (25, 20)]
    x = torch.randn(2, 6, 3, 3)
    with torch.no_grad():
        y = torch.einsum("oc,nchw->nohw", module.channel_linear1.weight, x)
        want = nn.functional.linear(y.mean((2, 3)), module.channel_linear2.weight, module.channel_linear2.bias)
        assert rel(module(x), want) < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_convnext_block_with_channel_linear_runs_in_triton_kernels(dtype):
    from cnndsl.passes import optimize

    net = cnndsl.compile_source(CNBLOCK)
    fused, _, _ = optimize(net.graph, net.to_torch().state_dict())
    assert [d["op"] for _, d in fused.nodes(data=True)] == ["input", "fused_conv", "layernorm", "fused_conv",
                                                            "fused_conv"]
    triton_matches("network head {\n  input 16x4x4\n  channel_linear 8 -> gelu\n"
                   "  avgpool global -> flatten -> channel_linear 3\n}", dtype)
    triton_matches(CNBLOCK, dtype)
    triton_matches(CONVNEXT, dtype)


# ---- upsample --------------------------------------------------------------------------------

UPSAMPLES = [("2", dict(scale_factor=2.0)), ("3x2", dict(scale_factor=(3.0, 2.0))),
             ("2 mode=bilinear", dict(scale_factor=2.0, mode="bilinear", align_corners=False)),
             ("3 mode=bilinear align_corners=true", dict(scale_factor=3.0, mode="bilinear", align_corners=True)),
             ("2x3 mode=bilinear", dict(scale_factor=(2.0, 3.0), mode="bilinear"))]


@pytest.mark.parametrize("args, kwargs", UPSAMPLES, ids=[a for a, _ in UPSAMPLES])
def test_upsample_is_nn_upsample(args, kwargs):
    net = cnndsl.compile_source(f"network u {{\n  input 3x5x4\n  upsample {args}\n}}")
    x = torch.randn(2, 3, 5, 4)
    want = nn.Upsample(**kwargs)(x)
    assert tuple(net.graph.nodes[net.graph.graph["outputs"][0]]["shape"]) == tuple(want.shape[1:])
    with torch.no_grad():
        assert torch.equal(net.to_torch()(x), want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("args", [a for a, _ in UPSAMPLES])
def test_upsample_runs_in_a_triton_kernel(args, dtype):
    """Also into a concat slice (a U-Net's decoder joins the upsampled map with the skip)."""
    src = (f"network u {{\n  x = input 3x5x4\n  skip = conv 3x3 4 pad=1\n  up = @x -> conv 1x1 5 -> upsample {args}\n"
           f"  low = @skip -> upsample {args}\n  concat @up @low -> conv 1x1 2\n}}")
    assert "upsample2d" in triton_matches(src, dtype)


def test_align_corners_with_nearest_is_refused():
    with pytest.raises(CompileError, match="upsample: align_corners applies to mode=bilinear only"):
        cnndsl.compile_source("network u {\n  input 3x5x4\n  upsample 2 align_corners=true\n}")
    with pytest.raises(CompileError, match="upsample needs a CxHxW feature map"):
        cnndsl.compile_source("network u {\n  input 3x5x4\n  flatten -> upsample 2\n}")
