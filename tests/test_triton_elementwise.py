"""The element-wise, normalisation and channel-shuffle kernels of the issue-13 ops against
PyTorch, under Triton's interpreter (no GPU): fp32 references on NCHW tensors permuted to NHWC,
tiny shapes, tiles pinned small where a test wants the multi-tile and masked paths."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")
F = torch.nn.functional

from cnndsl.backends.triton.channel_norm import group_norm, layer_norm_lastdim  # noqa: E402
from cnndsl.backends.triton.elementwise import broadcast_binary, channel_shuffle  # noqa: E402
from tests.kernel_checks import DTYPES, close, interpreted, nchw, nhwc, q, rnd  # noqa: E402, F401 (a fixture)

pytestmark = pytest.mark.usefixtures("interpreted")
SMALL = dict(BLOCK_P=16, BLOCK_C=16)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("gate", [(2, 19, 1, 1), (2, 19, 5, 3)], ids=["gate", "equal"])
@pytest.mark.parametrize("config", [None, SMALL], ids=["default", "small-tiles"])
def test_mul(gate, config, dtype):
    x, g = rnd(2, 19, 5, 3, seed=1), torch.sigmoid(rnd(*gate, seed=2))
    ref = q(x, dtype) * q(g, dtype)
    close(nchw(broadcast_binary(nhwc(x).to(dtype), nhwc(g).to(dtype), "mul", config=config)), ref, dtype)


def test_mul_into_a_channel_slice_in_place_and_flat():
    x, g = rnd(1, 6, 3, 4, seed=3), rnd(1, 6, 1, 1, seed=4)
    buf = torch.zeros(1, 3, 4, 10)
    broadcast_binary(nhwc(x), nhwc(g), out=buf[..., 2:8], config=SMALL)
    close(nchw(buf[..., 2:8]), x * g, torch.float32)
    assert (buf[..., :2] == 0).all() and (buf[..., 8:] == 0).all()
    xi = nhwc(x)
    broadcast_binary(xi, nhwc(g), out=xi)
    close(nchw(xi), x * g, torch.float32)
    r, s = rnd(3, 37, seed=5), rnd(37, seed=6)
    close(broadcast_binary(r, s, config=SMALL), r * s, torch.float32)
    with pytest.raises(ValueError, match="does not broadcast"):
        broadcast_binary(r, rnd(5, seed=7))
    with pytest.raises(ValueError, match="op must be"):
        broadcast_binary(r, s, "div")


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("slopes", [1, 13])
def test_prelu_and_a_per_channel_parameter(slopes, dtype):
    x, a = rnd(2, 13, 4, 3, seed=8), rnd(slopes, seed=9)
    ref = F.prelu(q(x, dtype), a)
    close(nchw(broadcast_binary(nhwc(x).to(dtype), a, "prelu", config=SMALL)), ref, dtype)
    close(nchw(broadcast_binary(nhwc(x).to(dtype), a, "mul")), q(x, dtype) * a.view(1, -1, 1, 1), dtype)
    r = rnd(3, 13, seed=10)
    close(broadcast_binary(r.to(dtype), a, "prelu"), F.prelu(q(r, dtype), a), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("act, values", [("none", ()), ("relu", ()), ("silu", ()), ("gelu", ("tanh",)), ("elu", (0.5,))])
@pytest.mark.parametrize("config", [None, SMALL], ids=["default", "small-tiles"])
def test_add_affine_and_activation_alone(act, values, config, dtype):
    """What the passes leave unfused: x·scale + y, x·s_c + t_c (a batch norm), act(x); each then act."""
    from cnndsl.backends.triton.epilogue import Act
    from tests.activation_refs import encoded, reference

    ref_act = reference(act, values) if act != "none" else (lambda t: t)
    x, y, s, t = rnd(2, 19, 5, 3, seed=30), rnd(2, 19, 5, 3, seed=31), rnd(19, seed=32), rnd(19, seed=33)
    a = Act(act, *(encoded(act, values) + (1.0, 1.0))[:2]) if act != "none" else Act()
    xd, yd = nhwc(x).to(dtype), nhwc(y).to(dtype)
    close(nchw(broadcast_binary(xd, yd, "add", scale=0.5, act=a, config=config)), ref_act(q(x, dtype) * 0.5 + q(y, dtype)),
          dtype)
    close(nchw(broadcast_binary(xd, s, "affine", shift=t, act=a, config=config)),
          ref_act(q(x, dtype) * s.view(1, -1, 1, 1) + t.view(1, -1, 1, 1)), dtype)
    close(nchw(broadcast_binary(xd, None, "none", act=a, config=config)), ref_act(q(x, dtype)), dtype)
    r = rnd(3, 19, seed=34)
    close(broadcast_binary(r.to(dtype), s, "affine", shift=t, act=a), ref_act(q(r, dtype) * s + t), dtype)
    with pytest.raises(ValueError, match="shift for op='affine' only"):
        broadcast_binary(xd, s, "affine")
    with pytest.raises(ValueError, match="y is needed except for op='none'"):
        broadcast_binary(xd, None, "add")


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("groups, affine, config", [(1, True, None), (4, True, None), (12, False, None),
                                                    (3, True, dict(BLOCK_P=4, BLOCK_K=2))])
def test_group_norm(groups, affine, config, dtype):
    x, w, b = rnd(2, 12, 5, 3, seed=11) * 2 + 1, rnd(12, seed=12), rnd(12, seed=13)
    wb = (w, b) if affine else (None, None)
    ref = F.group_norm(q(x, dtype), groups, *wb, eps=1e-5)
    close(nchw(group_norm(nhwc(x).to(dtype), groups, *wb, config=config)), ref, dtype)
    r = rnd(3, 12, seed=14)
    close(group_norm(r.to(dtype), groups, *wb), F.group_norm(q(r, dtype), groups, *wb), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("affine, config", [(True, None), (False, None), (True, dict(BLOCK_P=1, BLOCK_K=16))])
def test_layer_norm(affine, config, dtype):
    x, w, b = rnd(2, 37, 3, 2, seed=15) + 0.5, rnd(37, seed=16), rnd(37, seed=17)
    wb = (w, b) if affine else (None, None)
    ref = F.layer_norm(q(x, dtype).permute(0, 2, 3, 1), (37,), *wb, eps=1e-6).permute(0, 3, 1, 2)
    close(nchw(layer_norm_lastdim(nhwc(x).to(dtype), *wb, eps=1e-6, config=config)), ref, dtype)
    buf = torch.zeros(2, 3, 2, 40, dtype=dtype)
    layer_norm_lastdim(nhwc(x).to(dtype), *wb, eps=1e-6, out=buf[..., 1:38], config=config)
    close(nchw(buf[..., 1:38]), ref, dtype)
    r = rnd(4, 37, seed=18)
    close(layer_norm_lastdim(r.to(dtype), *wb), F.layer_norm(q(r, dtype), (37,), *wb), dtype)


def test_norms_refuse_bad_arguments():
    x = rnd(1, 2, 2, 6, seed=19)
    with pytest.raises(ValueError, match="must divide"):
        group_norm(x, 4)
    with pytest.raises(ValueError, match="both"):
        layer_norm_lastdim(x, rnd(6, seed=1))


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("groups, config", [(1, None), (2, None), (3, dict(BLOCK_M=16, BLOCK_C=16)), (24, None)])
def test_channel_shuffle(groups, config, dtype):
    from torchvision.models.shufflenetv2 import channel_shuffle as reference

    x = rnd(2, 24, 3, 5, seed=20)
    ref = reference(q(x, dtype), groups)
    close(nchw(channel_shuffle(nhwc(x).to(dtype), groups, config=config)), ref, dtype)
    buf = torch.zeros(2, 3, 5, 30, dtype=dtype)
    channel_shuffle(nhwc(x).to(dtype), groups, out=buf[..., 3:27], config=config)
    close(nchw(buf[..., 3:27]), ref, dtype)
    assert (buf[..., :3] == 0).all() and (buf[..., 27:] == 0).all()
    every_other = torch.zeros(2, 3, 5, 48, dtype=dtype)  # into every second channel: a folded shuffle's copy
    channel_shuffle(nhwc(x).to(dtype), groups, out=every_other[..., 1::2], config=config)
    close(nchw(every_other[..., 1::2]), ref, dtype)
    assert (every_other[..., 0::2] == 0).all()
    with pytest.raises(ValueError, match="must divide"):
        channel_shuffle(nhwc(x), 5)
