"""The Triton backend's kernels against PyTorch, under Triton's interpreter (no GPU needed).

conftest.py sets TRITON_INTERPRET=1 before any kernel is defined, so every kernel here runs on the
CPU in numpy: shapes are tiny and tiles large. References are computed in fp32 on NCHW tensors
(F.conv2d & co.) and permuted to NHWC. Compiling every kernel for sm_80 and sm_90: test_triton_aot.py.
"""

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")
F = torch.nn.functional

from cnndsl.backends.torch.layers import zeropad_shortcut  # noqa: E402
from cnndsl.backends.triton import _common, conv, gemm  # noqa: E402
from cnndsl.backends.triton import softmax as sm  # noqa: E402
from cnndsl.backends.triton.conv import conv2d, pack_conv_weight  # noqa: E402
from cnndsl.backends.triton.epilogue import Act, Epilogue, Prologue, Route  # noqa: E402
from cnndsl.backends.triton.gemm import linear  # noqa: E402
from cnndsl.backends.triton.lrn import local_response_norm  # noqa: E402
from cnndsl.backends.triton.pool import global_pool2d, pool2d  # noqa: E402
from cnndsl.backends.triton.rbf import euclidean_rbf  # noqa: E402
from cnndsl.backends.triton.softmax import softmax_lastdim  # noqa: E402
from cnndsl.ir.ops.conv import resolve_padding  # noqa: E402
from tests.activation_refs import cases, reference, slots  # noqa: E402
from tests.kernel_checks import DTYPES, close, interpreted, nchw, nhwc, q, rnd  # noqa: E402, F401 (interpreted: a fixture)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("interpreted")

# --------------------------------------------------------------------------------------------
# Convolution
# --------------------------------------------------------------------------------------------

# The IR resolves `same` before a graph reaches the backend: the kernels see its explicit (ph, pw).
IR_SAME = resolve_padding({"pad": "same", "kernel": (1, 5), "dilation": (2, 2)}, "conv")["pad"]

# (id, N, C_in, H, W, C_out, kernel, stride, padding, dilation, groups, path)
CONV_CASES = [
    ("1x1-gemm", 2, 5, 7, 6, 12, 1, 1, 0, 1, 1, "auto"),
    ("1x1-s2", 1, 6, 9, 9, 10, 1, 2, 0, 1, 1, "auto"),
    ("3x3-same", 2, 5, 7, 9, 12, 3, 1, 1, 1, 1, "auto"),
    ("3x3-s2-odd", 1, 7, 9, 7, 11, 3, 2, 1, 1, 1, "auto"),
    ("5x5", 1, 4, 8, 9, 6, 5, 1, 2, 1, 1, "auto"),
    ("7x7-s2-stem", 1, 3, 9, 9, 8, 7, 2, 3, 1, 1, "auto"),
    ("1x7", 1, 6, 5, 9, 7, (1, 7), 1, (0, 3), 1, 1, "auto"),
    ("7x1", 1, 6, 9, 5, 7, (7, 1), 1, (3, 0), 1, 1, "auto"),
    ("11x11-s4", 1, 3, 13, 15, 5, 11, 4, 2, 1, 1, "auto"),
    ("3x3-dil2", 1, 5, 9, 8, 6, 3, 1, 2, 2, 1, "auto"),
    ("ir-same-1x5-dil2", 1, 4, 7, 9, 5, (1, 5), 1, IR_SAME, 2, 1, "auto"),
    ("pad-pair-s21", 1, 4, 6, 7, 5, 3, (2, 1), (1, 2), 1, 1, "auto"),
    ("groups2-igemm", 1, 6, 7, 7, 12, 3, 1, 1, 1, 2, "igemm"),
    ("groups2-direct", 1, 6, 7, 7, 12, 3, 2, 1, 1, 2, "auto"),
    ("depthwise", 2, 8, 7, 6, 8, 3, 1, 1, 1, 8, "auto"),
    ("depthwise-x2-s2", 1, 5, 9, 9, 10, 5, 2, 2, 1, 5, "auto"),
    ("depthwise-dil2", 1, 6, 9, 9, 6, 3, 1, 2, 2, 6, "auto"),
]


def conv_reference(x, w, b, stride, padding, dilation, groups):
    return F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)


def conv_operands(n, cin, h, w, cout, k, groups, seed=0):
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rnd(n, cin, h, w, seed=seed)
    wt = rnd(cout, cin // groups, kh, kw, seed=seed + 1) / (kh * kw * cin // groups) ** 0.5
    bias = rnd(cout, seed=seed + 2)
    return x, wt, bias


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("case", CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_conv(case, dtype):
    _, n, cin, h, w, cout, k, s, p, d, g, path = case
    x, wt, bias = conv_operands(n, cin, h, w, cout, k, g)
    ref = conv_reference(q(x, dtype), q(wt, dtype), bias, s, p, d, g)
    if p == IR_SAME:  # the IR's `same` is PyTorch's (stride 1)
        close(F.conv2d(q(x, dtype), q(wt, dtype), bias, padding="same", dilation=d, groups=g), ref, torch.float32)
    got = conv2d(nhwc(x).to(dtype), pack_conv_weight(wt).to(dtype), Epilogue(bias=bias), stride=s, padding=p,
                 dilation=d, groups=g, path=path)
    assert got.dtype == dtype
    close(nchw(got), ref, dtype)


@pytest.mark.parametrize("path", ["igemm", "direct", "gemm"])
def test_conv_multi_tile(path):
    """Small pinned tiles: several tiles along M, N and K, with ragged edges in each."""
    groups = 2 if path == "direct" else 1
    k = 1 if path == "gemm" else 3
    cin, cout = (12, 38) if path == "direct" else (20, 19)
    x, wt, bias = conv_operands(1, cin, 5, 7, cout, k, groups)
    cfg = {"igemm": dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=16, GROUP_M=2),
           "direct": dict(BLOCK_M=16, BLOCK_N=16),
           "gemm": dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=16, GROUP_M=2)}[path]
    ref = conv_reference(x, wt, bias, 1, k // 2, 1, groups)
    got = conv2d(nhwc(x), pack_conv_weight(wt), Epilogue(bias=bias), padding=k // 2, groups=groups, path=path,
                 config=cfg)
    close(nchw(got), ref, torch.float32)


ACTS = [("none", {}, lambda z: z)] + [(name, slots(name, values), reference(name, values)) for name, values in cases()]
"""Every registry activation (with its scalars as the epilogue's (a, s) slots) and its reference."""
PATHS = {"igemm": (3, 1, 1), "direct": (3, 1, 2), "gemm": (1, 0, 1)}  # kernel, padding, groups


def slot(kind, name, params):
    """Epilogue fields putting activation `name` with its (a, s) into slot `kind` ("act": before
    the residual, "post": after it, "gate": the paired highway gate)."""
    return {kind: Act(name, **params)}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("act", ACTS, ids=[f"{a[0]}{i}" for i, a in enumerate(ACTS)])
def test_conv_activation(act, path):
    """Each activation in the act slot (before the residual) and in the post slot (after it)."""
    name, params, fn = act
    k, p, g = PATHS[path]
    x, wt, bias = conv_operands(1, 6, 5, 6, 10, k, g, seed=3)
    z = conv_reference(x, wt, bias, 1, p, 1, g)
    got = conv2d(nhwc(x), pack_conv_weight(wt), Epilogue(bias=bias, **slot("act", name, params)), padding=p,
                 groups=g, path=path)
    close(nchw(got), fn(z), torch.float32)
    got = conv2d(nhwc(x), pack_conv_weight(wt), Epilogue(bias=bias, scale=0.5, **slot("post", name, params)),
                 padding=p, groups=g, path=path)
    close(nchw(got), fn(0.5 * z), torch.float32)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("path", list(PATHS))
def test_conv_residual_epilogues(path, dtype):
    """ResNet (add, then ReLU), Inception-ResNet (scaled branch, add, ReLU), SqueezeNet (ReLU, then add)."""
    k, p, g = PATHS[path]
    x, wt, bias = conv_operands(2, 6, 5, 6, 10, k, g, seed=5)
    res = rnd(2, 10, 5, 6, seed=9)
    conv = conv_reference(q(x, dtype), q(wt, dtype), bias, 1, p, 1, g)
    r = q(res, dtype)
    xd, wd, rd = nhwc(x).to(dtype), pack_conv_weight(wt).to(dtype), nhwc(res).to(dtype)

    def run(**epilogue):
        return nchw(conv2d(xd, wd, Epilogue(bias=bias, residual=rd, **epilogue), padding=p, groups=g, path=path))

    close(run(post=Act("relu")), torch.relu(conv + r), dtype)
    close(run(post=Act("relu"), scale=0.17), torch.relu(0.17 * conv + r), dtype)
    close(run(act=Act("relu")), torch.relu(conv) + r, dtype)
    both = run(act=Act("stanh", 1.5, 0.5), post=Act("stanh", 0.7, 2.0), scale=0.3)
    close(both, 0.7 * torch.tanh(2.0 * (0.3 * 1.5 * torch.tanh(0.5 * conv) + r)), dtype)
    close(run(scale=-2.0), -2.0 * conv + r, dtype)


@pytest.mark.parametrize("path", ["igemm", "direct"])
@pytest.mark.parametrize("res_stride,res_hw,res_c", [(1, (5, 6), 7), (2, (9, 11), 10), (2, (10, 12), 4)])
def test_conv_zeropad_residual(path, res_stride, res_hw, res_c):
    """ResNet option-A shortcut fused: the residual subsampled by res_stride, missing channels zero."""
    g = 2 if path == "direct" else 1
    x, wt, bias = conv_operands(1, 6, 5, 6, 10, 3, g, seed=40)
    r = rnd(1, res_c, *res_hw, seed=41)
    ref = torch.relu(conv_reference(x, wt, bias, 1, 1, 1, g) + zeropad_shortcut(r, 10, res_stride, res_stride))
    ep = Epilogue(bias=bias, residual=nhwc(r), res_stride=(res_stride, res_stride), post=Act("relu"))
    got = conv2d(nhwc(x), pack_conv_weight(wt), ep, padding=1, groups=g, path=path)
    close(nchw(got), ref, torch.float32)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("path,k", [("igemm", 3), ("gemm", 1), ("igemm", 1)])
def test_conv_highway_pair(path, k, dtype):
    """The IR's highway_conv: one conv with [W_H; W_T] stacked along C_out, the gate in the epilogue."""
    c = 6
    x, wt, bias = conv_operands(2, c, 5, 6, 2 * c, k, 1, seed=50)
    z = conv_reference(q(x, dtype), q(wt, dtype), bias, 1, k // 2, 1, 1)
    h, t = torch.relu(z[:, :c]), torch.sigmoid(z[:, c:])
    ref = h * t + q(x, dtype) * (1 - t)
    xh = nhwc(x).to(dtype)
    got = conv2d(xh, pack_conv_weight(wt).to(dtype), Epilogue(bias=bias, act=Act("relu"), carry=xh), padding=k // 2,
                 path=path, config=None if dtype == torch.float32 else dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=16, GROUP_M=1))
    assert got.shape == (2, 5, 6, c)
    close(nchw(got), ref, dtype)


def test_linear_highway_pair():
    x, w, b = rnd(3, 8, seed=1), rnd(16, 8, seed=2) / 8 ** 0.5, rnd(16, seed=3)
    z = F.linear(x, w, b)
    h, t = 1.7 * torch.tanh(0.6 * z[:, :8]), torch.sigmoid(z[:, 8:])
    got = linear(x, w, Epilogue(bias=b, act=Act("stanh", 1.7, 0.6), carry=x))
    close(got, h * t + x * (1 - t), torch.float32)
    with pytest.raises(ValueError, match="2·N rows"):
        linear(x, w[:15], Epilogue(bias=b[:15], carry=x))


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
def test_conv_concat_slices(dtype):
    """Three branches written into one buffer at channel offsets equal torch.cat of the branches."""
    n, cin, h, w = 1, 5, 6, 7
    x = rnd(n, cin, h, w, seed=1)
    branches = [(1, 0, 1, 4, "auto"), (3, 1, 1, 6, "igemm"), (3, 1, cin, 5, "direct")]  # k, pad, groups, C_out
    total = sum(b[3] for b in branches) + 2
    buf = torch.full((n, h, w, total), 7.0, dtype=dtype)
    refs, off = [], 1
    for i, (k, p, g, cout, path) in enumerate(branches):
        _, wt, bias = conv_operands(n, cin, h, w, cout, k, g, seed=20 + i)
        refs.append(torch.relu(conv_reference(q(x, dtype), q(wt, dtype), bias, 1, p, 1, g)))
        view = conv2d(nhwc(x).to(dtype), pack_conv_weight(wt).to(dtype),
                      Epilogue(bias=bias, act=Act("relu"), out=buf, c_offset=off), padding=p, groups=g, path=path)
        assert view.data_ptr() == buf[..., off:].data_ptr() and view.shape[-1] == cout
        off += cout
    close(nchw(buf[..., 1:-1]), torch.cat(refs, 1), dtype)
    assert (buf[..., 0] == 7).all() and (buf[..., -1] == 7).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("path,lo,hi", [("gemm", 0, 4), ("igemm", 3, 7), ("direct", 6, 10), ("gemm", 2, 10)])
def test_conv_route_sends_a_channel_range_elsewhere(path, lo, hi, dtype):
    """A merged 1x1 conv whose branch lives in a concat: channels [lo, hi) go to the concat buffer at
    its offset, the others to out; out's routed channels and the concat's others stay untouched."""
    n, cin, h, w, cout = 2, 8, 5, 3, 10
    x, wt, bias = conv_operands(n, cin, h, w, cout, 1, 1, seed=40)
    ref = nhwc(torch.relu(conv_reference(q(x, dtype), q(wt, dtype), bias, 1, 0, 1, 1)))
    own = torch.full((n, h, w, cout), 7.0, dtype=dtype)
    cat = torch.full((n, h, w, 13), 5.0, dtype=dtype)
    config = dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=16, GROUP_M=2) if path != "direct" else dict(BLOCK_M=16, BLOCK_N=16)
    conv2d(nhwc(x).to(dtype), pack_conv_weight(wt).to(dtype),
           Epilogue(bias=bias, act=Act("relu"), out=own, route=Route(lo, hi, cat, 2)), path=path, config=config)
    keep = [c for c in range(cout) if not lo <= c < hi]
    close(own[..., keep], ref[..., keep], dtype)
    assert (own[..., lo:hi] == 7).all()
    close(cat[..., 2:2 + hi - lo], ref[..., lo:hi], dtype)
    assert (cat[..., :2] == 5).all() and (cat[..., 2 + hi - lo:] == 5).all()
    xl = rnd(3, 6, seed=41)
    wl = rnd(5, 6, seed=42)
    cat2 = torch.zeros(3, 9)
    out2 = linear(xl, wl, Epilogue(out=torch.zeros(3, 5), route=Route(1, 3, cat2, 6)))
    refl = xl @ wl.t()
    close(cat2[:, 6:8], refl[:, 1:3], torch.float32)
    close(out2[:, [0, 3, 4]], refl[:, [0, 3, 4]], torch.float32)
    with pytest.raises(ValueError, match="route: channel range"):
        conv2d(nhwc(x), pack_conv_weight(wt), Epilogue(route=Route(4, 12, cat, 0)))
    with pytest.raises(ValueError, match="route: channel slice"):
        conv2d(nhwc(x), pack_conv_weight(wt), Epilogue(route=Route(0, 4, cat, 11)))


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("k,stride,groups,act", [(3, 1, 1, "relu"), (1, 2, 1, "relu"), (3, 2, 2, "stanh"),
                                                 (1, 1, 1, "none")])
def test_conv_prologue_is_a_pre_activation(k, stride, groups, act, dtype):
    """Prologue(s, t, act): the conv of act(x·s + t), the zero padding applied after the prologue."""
    n, cin, h, w, cout = 2, 6, 7, 5, 8
    x, wt, bias = conv_operands(n, cin, h, w, cout, k, groups, seed=50)
    s, t = rnd(cin, seed=51).abs() + 0.5, rnd(cin, seed=52)
    xa = q(x, dtype) * s[:, None, None] + t[:, None, None]
    xa = {"relu": torch.relu, "none": lambda v: v, "stanh": lambda v: 1.5 * torch.tanh(0.5 * v)}[act](xa)
    ref = conv_reference(q(xa, dtype), q(wt, dtype), bias, stride, k // 2, 1, groups)
    got = conv2d(nhwc(x).to(dtype), pack_conv_weight(wt).to(dtype), Epilogue(bias=bias), stride=stride,
                 padding=k // 2, groups=groups, prologue=Prologue(s, t, Act(act, 1.5, 0.5)),
                 config=dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=16, GROUP_M=2))
    close(nchw(got), ref, dtype)
    with pytest.raises(ValueError, match="igemm path only"):
        conv2d(nhwc(x), pack_conv_weight(wt), padding=k // 2, groups=groups, prologue=Prologue(s, t), path="gemm")
    with pytest.raises(ValueError, match="prologue scale"):
        conv2d(nhwc(x), pack_conv_weight(wt), padding=k // 2, groups=groups, prologue=Prologue(s[:3], t))


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("k,stride,groups,pre", [(1, 1, 1, False), (3, 2, 1, False), (3, 1, 2, True), (1, 1, 1, True)])
def test_conv_gate_multiplies_each_sample_and_channel_as_loaded(k, stride, groups, pre, dtype):
    """gate: the conv of x·g, g one value per sample and input channel (a squeeze-and-excitation
    gate); before a prologue when both are given, as the graph orders them (mul, then bn/act)."""
    n, cin, h, w, cout = 2, 6, 7, 5, 8
    x, wt, bias = conv_operands(n, cin, h, w, cout, k, groups, seed=60)
    g = torch.sigmoid(rnd(n, cin, seed=61))
    s, t = rnd(cin, seed=62).abs() + 0.5, rnd(cin, seed=63)
    xg = q(x, dtype) * q(g, dtype)[:, :, None, None]
    if pre:
        xg = torch.relu(xg * s[:, None, None] + t[:, None, None])
    ref = conv_reference(q(xg, dtype), q(wt, dtype), bias, stride, k // 2, 1, groups)
    for shape in ((n, 1, 1, cin), (n, cin)):
        got = conv2d(nhwc(x).to(dtype), pack_conv_weight(wt).to(dtype), Epilogue(bias=bias), stride=stride,
                     padding=k // 2, groups=groups, gate=g.to(dtype).reshape(shape),
                     prologue=Prologue(s, t, Act("relu")) if pre else None,
                     config=dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=16, GROUP_M=2))
        close(nchw(got), ref, dtype)
    with pytest.raises(ValueError, match="igemm path only"):
        conv2d(nhwc(x), pack_conv_weight(wt), padding=k // 2, groups=groups, gate=g, path="direct")
    with pytest.raises(ValueError, match="gate: expected"):
        conv2d(nhwc(x), pack_conv_weight(wt), padding=k // 2, groups=groups, gate=g[:, :3].contiguous())


@pytest.mark.parametrize("path", ["gemm", "igemm", "direct", "linear"])
def test_post_norm_after_the_residual(path):
    """post_norm=(s, t): post((conv(x) + b + r)·s + t): a bn and relu after a fused add."""
    n, cin, h, w, cout = 2, 4, 5, 3, 6
    x, wt, bias = conv_operands(n, cin, h, w, cout, 1, 1, seed=60)
    r = nhwc(rnd(n, cout, h, w, seed=61))
    s, t = rnd(cout, seed=62).abs() + 0.5, rnd(cout, seed=63)
    ref = torch.relu((nhwc(conv_reference(x, wt, bias, 1, 0, 1, 1)) + r) * s + t)
    if path == "linear":
        ep = Epilogue(bias=bias, residual=r.reshape(-1, cout), post_norm=(s, t), post=Act("relu"))
        got = linear(nhwc(x).reshape(-1, cin), wt.view(cout, cin), ep).view(n, h, w, cout)
    else:
        got = conv2d(nhwc(x), pack_conv_weight(wt), Epilogue(bias=bias, residual=r, post_norm=(s, t), post=Act("relu")),
                     path=path, config=dict(BLOCK_M=16, BLOCK_N=16) if path == "direct" else None)
    close(got, ref, torch.float32)
    with pytest.raises(ValueError, match="post_norm scale"):
        conv2d(nhwc(x), pack_conv_weight(wt), Epilogue(post_norm=(s[:2], t)))


def test_conv_strided_operands():
    """Input, residual and output as channel slices of larger NHWC buffers."""
    x_big = nhwc(rnd(2, 9, 6, 5, seed=2))
    x = x_big[..., 2:8]  # 6 channels, pixel stride 9
    res_big = nhwc(rnd(2, 12, 6, 5, seed=3))
    res = res_big[..., 1:11]
    _, wt, bias = conv_operands(2, 6, 6, 5, 10, 3, 1, seed=4)
    ref = torch.relu(conv_reference(nchw(x), wt, bias, 1, 1, 1, 1) + nchw(res))
    out = torch.zeros(2, 6, 5, 13)
    conv2d(x, pack_conv_weight(wt), Epilogue(bias=bias, post=Act("relu"), residual=res, out=out, c_offset=3), padding=1)
    close(nchw(out[..., 3:]), ref, torch.float32)
    # the 1x1 fast path with a strided input falls back or views it as a matrix, either way correct
    _, w1, b1 = conv_operands(2, 6, 6, 5, 4, 1, 1, seed=5)
    close(nchw(conv2d(x, pack_conv_weight(w1), Epilogue(bias=b1))), conv_reference(nchw(x), w1, b1, 1, 0, 1, 1),
          torch.float32)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("path", ["igemm", "direct", "gemm", "linear"])
def test_epilogue_writes_every_step_th_channel(path, dtype):
    """c_step: channel c at c_offset + c·c_step of the buffer (a concat whose channel shuffle the
    producers perform); the channels in between are left alone, and the view returned is the written one."""
    n, cin, h, w, cout, step, offset = 2, 6, 5, 4, 5, 3, 2
    k = 1 if path in ("gemm", "linear") else 3
    x, wt, bias = conv_operands(n, cin, h, w, cout, k, 1, seed=70)
    ref = torch.relu(conv_reference(q(x, dtype), q(wt, dtype), bias, 1, k // 2, 1, 1))
    buf = torch.full((n, h, w, offset + (cout - 1) * step + 2), 7.0, dtype=dtype)
    ep = Epilogue(bias=bias, post=Act("relu"), out=buf if path != "linear" else buf.view(n * h * w, -1),
                  c_offset=offset, c_step=step)
    if path == "linear":
        got = linear(nhwc(x).to(dtype).reshape(-1, cin), wt.view(cout, cin).to(dtype), ep).view(n, h, w, cout)
    else:
        got = conv2d(nhwc(x).to(dtype), pack_conv_weight(wt).to(dtype), ep, padding=k // 2, path=path,
                     config=dict(BLOCK_M=16, BLOCK_N=16) if path == "direct" else None)
    close(nchw(got), ref, dtype)
    close(nchw(buf[..., offset::step][..., :cout]), ref, dtype)
    untouched = torch.ones(buf.shape[-1], dtype=torch.bool)
    untouched[offset:offset + (cout - 1) * step + 1:step] = False
    assert (buf[..., untouched] == 7.0).all()
    with pytest.raises(ValueError, match="exceeds"):
        conv2d(nhwc(x), pack_conv_weight(wt), Epilogue(out=torch.zeros(n, h, w, 12), c_offset=2, c_step=3),
               padding=k // 2)


def test_conv_in_place_and_dense_buffers():
    """out = residual (ResNet's in-place add) is allowed; so is reading channels [0, k) of a buffer while
    writing [k, k + g) of it (DenseNet); an overlapping read/write is refused."""
    x, wt, bias = conv_operands(1, 6, 5, 5, 6, 3, 1, seed=30)
    res = nhwc(rnd(1, 6, 5, 5, seed=31))
    ref = torch.relu(conv_reference(x, wt, bias, 1, 1, 1, 1) + nchw(res))
    got = conv2d(nhwc(x), pack_conv_weight(wt), Epilogue(bias=bias, post=Act("relu"), residual=res, out=res), padding=1)
    assert got.data_ptr() == res.data_ptr()
    close(nchw(res), ref, torch.float32)
    buf = torch.zeros(1, 5, 5, 10)
    buf[..., :6] = nhwc(x)
    _, w4, b4 = conv_operands(1, 6, 5, 5, 4, 3, 1, seed=32)
    conv2d(buf[..., :6], pack_conv_weight(w4), Epilogue(bias=b4, out=buf, c_offset=6), padding=1)
    close(nchw(buf[..., 6:]), conv_reference(x, w4, b4, 1, 1, 1, 1), torch.float32)
    close(nchw(buf[..., :6]), x, torch.float32)
    with pytest.raises(ValueError, match="overlaps x"):
        conv2d(buf[..., :6], pack_conv_weight(w4), Epilogue(bias=b4, out=buf, c_offset=4), padding=1)
    _, w1, b1 = conv_operands(1, 6, 5, 5, 4, 1, 1, seed=33)  # the 1x1 GEMM path checks too
    conv2d(buf[..., :6], pack_conv_weight(w1), Epilogue(bias=b1, out=buf, c_offset=6))
    close(nchw(buf[..., 6:]), conv_reference(x, w1, b1, 1, 0, 1, 1), torch.float32)
    with pytest.raises(ValueError, match="overlaps x"):
        conv2d(buf[..., :6], pack_conv_weight(w1), Epilogue(bias=b1, out=buf, c_offset=5))


def test_conv_rejects_bad_operands():
    x, wt, bias = conv_operands(1, 6, 5, 5, 4, 3, 1)
    xh, wp = nhwc(x), pack_conv_weight(wt)
    with pytest.raises(ValueError, match="channel stride"):
        conv2d(nchw(xh), wp)
    with pytest.raises(TypeError, match="differs"):
        conv2d(xh, wp.half())
    with pytest.raises(ValueError, match="groups"):
        conv2d(xh, wp, groups=4)
    with pytest.raises(ValueError, match="residual"):
        conv2d(xh, wp, Epilogue(residual=torch.zeros(1, 4, 5, 4)), padding=1)
    with pytest.raises(ValueError, match="residual"):
        conv2d(xh, wp, Epilogue(residual=torch.zeros(1, 5, 5, 5)), padding=1)  # more channels than the output
    with pytest.raises(ValueError, match="exceeds"):
        conv2d(xh, wp, Epilogue(out=torch.zeros(1, 5, 5, 6), c_offset=3), padding=1)
    with pytest.raises(ValueError, match="activation"):
        conv2d(xh, wp, Epilogue(act=Act("no_such_activation")))
    with pytest.raises(TypeError, match="not supported"):
        conv2d(xh.double(), wp.double())
    for padding in ("same", (1, 1, 0, 0)):  # only the IR resolves `same`; its pads are (h, w) pairs
        with pytest.raises(ValueError, match=r"padding: expected an int or an \(h, w\) pair"):
            conv2d(xh, wp, padding=padding)


# --------------------------------------------------------------------------------------------
# Fully connected
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("m,k,n,bias", [(1, 10, 7, True), (3, 40, 20, False), (5, 17, 33, True)])
def test_linear(m, k, n, bias, dtype):
    x, w = rnd(m, k, seed=1), rnd(n, k, seed=2) / k ** 0.5
    b = rnd(n, seed=3) if bias else None
    ref = F.linear(q(x, dtype), q(w, dtype), b)
    close(linear(x.to(dtype), w.to(dtype), Epilogue(bias=b)), ref, dtype)
    # multi-tile, and the weight given as a transposed view of a packed [K, N] matrix
    wt = w.t().contiguous().to(dtype).t()
    close(linear(x.to(dtype), wt, Epilogue(bias=b), config=dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=16, GROUP_M=1)), ref,
          dtype)


def test_linear_epilogues():
    x, w, b = rnd(4, 12, seed=1), rnd(9, 12, seed=2) / 12 ** 0.5, rnd(9, seed=3)
    z = F.linear(x, w, b)
    res = rnd(4, 9, seed=4)
    for name, params, fn in ACTS:
        close(linear(x, w, Epilogue(bias=b, **slot("act", name, params))), fn(z), torch.float32)
        close(linear(x, w, Epilogue(bias=b, **slot("post", name, params))), fn(z), torch.float32)
        gate = linear(x, torch.cat([w, w]), Epilogue(bias=torch.cat([b, b]), carry=res, **slot("gate", name, params)))
        close(gate, z * fn(z) + res * (1 - fn(z)), torch.float32)
    close(linear(x, w, Epilogue(bias=b, post=Act("relu"), scale=0.3, residual=res)), torch.relu(0.3 * z + res),
          torch.float32)
    buf = torch.zeros(4, 15)
    linear(x, w, Epilogue(bias=b, act=Act("tanh"), out=buf, c_offset=4))
    close(buf[:, 4:13], torch.tanh(z), torch.float32)
    assert (buf[:, :4] == 0).all() and (buf[:, 13:] == 0).all()
    with pytest.raises(ValueError, match="weight"):
        linear(x, w.t())


# --------------------------------------------------------------------------------------------
# bf16
# --------------------------------------------------------------------------------------------


def test_bf16_inputs():
    """Every kernel accepts bf16 (converted to fp32 right after each load) and stores bf16."""
    bf = torch.bfloat16
    x, wt, bias = conv_operands(1, 6, 6, 5, 8, 3, 1, seed=12)
    xb, wb = nhwc(x).to(bf), pack_conv_weight(wt).to(bf)
    res = rnd(1, 8, 6, 5, seed=13)
    ref = torch.relu(conv_reference(q(x, bf), q(wt, bf), bias, 1, 1, 1, 1) + q(res, bf))
    for path in ("igemm", "direct"):
        got = conv2d(xb, wb, Epilogue(bias=bias, post=Act("relu"), residual=nhwc(res).to(bf)), padding=1, path=path)
        assert got.dtype == bf
        close(nchw(got), ref, bf)
    _, w1, b1 = conv_operands(1, 6, 6, 5, 8, 1, 1, seed=14)
    close(nchw(conv2d(xb, pack_conv_weight(w1).to(bf), Epilogue(bias=b1))),
          conv_reference(q(x, bf), q(w1, bf), b1, 1, 0, 1, 1), bf)
    dw_x, dw_w, dw_b = conv_operands(1, 6, 6, 5, 6, 3, 6, seed=15)
    close(nchw(conv2d(nhwc(dw_x).to(bf), pack_conv_weight(dw_w).to(bf), Epilogue(bias=dw_b), padding=1, groups=6)),
          conv_reference(q(dw_x, bf), q(dw_w, bf), dw_b, 1, 1, 1, 6), bf)
    a, w = rnd(3, 20, seed=16), rnd(7, 20, seed=17) / 20 ** 0.5
    close(linear(a.to(bf), w.to(bf), Epilogue(act=Act("sigmoid"))), torch.sigmoid(F.linear(q(a, bf), q(w, bf))), bf)
    close(nchw(pool2d(xb, "max", 3, 2, 1)), F.max_pool2d(q(x, bf), 3, 2, 1), bf)
    close(nchw(pool2d(xb, "avg", 3, 2, 1, ceil_mode=True)), F.avg_pool2d(q(x, bf), 3, 2, 1, ceil_mode=True), bf)
    close(nchw(global_pool2d(xb)), F.adaptive_avg_pool2d(q(x, bf), 1), bf)
    close(nchw(local_response_norm(xb, 5, 0.1, 0.75, 1.0)), F.local_response_norm(q(x, bf), 5, 0.1, 0.75, 1.0), bf)
    close(softmax_lastdim(a.to(bf)), torch.softmax(q(a, bf), -1), bf)


# --------------------------------------------------------------------------------------------
# Tuning structure, packaging
# --------------------------------------------------------------------------------------------


def test_autotune_pruning_keeps_fitting_configs():
    """The GPU path's autotuners: several configs each, pruned to tiles that fit the problem."""
    for tuned in (conv._conv_igemm_tuned, conv._conv_direct_tuned, gemm._gemm_tuned):
        assert len(tuned.plain.configs) > 1 and tuned.plain.restore_value == []
        assert tuned.restoring.restore_value == ["out_ptr"]
    prune = gemm._gemm_tuned.plain.early_config_prune
    kept = prune(gemm._GEMM_CONFIGS, {"M": 2, "N": 10, "K": 800})
    assert [(c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"]) for c in kept] == [(16, 32)]  # least overshoot
    assert prune(gemm._GEMM_CONFIGS, {"M": 4096, "N": 4096, "K": 4096}) == gemm._GEMM_CONFIGS
    kept = conv._conv_igemm_tuned.plain.early_config_prune(
        conv._IGEMM_CONFIGS, {"N": 1, "OH": 7, "OW": 7, "C_OUT_G": 2048, "KH": 1, "KW": 1, "C_IN_G": 512})
    assert kept and all(c.kwargs["BLOCK_M"] <= 64 for c in kept)
    kept = sm._softmax_tuned.plain.early_config_prune(sm._SOFTMAX_CONFIGS, {"M": 256, "C": 4000}, BLOCK_C=4096)
    assert kept and all(c.kwargs["BLOCK_M"] * 4096 <= 16384 for c in kept)


def test_launch_arguments_match_kernel_signatures(monkeypatch):
    """On a GPU the autotuner binds the wrappers' keyword arguments strictly (an unknown name is a
    TypeError), while the interpreter silently drops unknown ones: check names here."""
    seen = []
    real = _common.launch

    def spy(raw, tuned, grid, args, pinned, default, in_place=False):
        seen.append((raw, set(args), set(default().kwargs)))
        assert tuned.plain.fn is raw and tuned.restoring.fn is raw
        assert all(set(c.kwargs) == set(default().kwargs) for c in tuned.configs), raw.__name__
        return real(raw, tuned, grid, args, pinned, default, in_place)

    monkeypatch.setattr(_common, "launch", spy)
    x, wt, bias = conv_operands(1, 4, 5, 5, 4, 3, 1)
    xh = nhwc(x)
    for path, g, k in (("igemm", 1, 3), ("direct", 2, 3), ("gemm", 1, 1)):
        _, w, _ = conv_operands(1, 4, 5, 5, 4, k, g)
        conv2d(xh, pack_conv_weight(w), Epilogue(bias=bias), groups=g, path=path)
    pool2d(xh, "max", 2)
    global_pool2d(xh)
    local_response_norm(xh, 3)
    softmax_lastdim(xh)
    euclidean_rbf(xh.reshape(-1, 4), torch.ones(3, 4))
    assert len(seen) == 8
    for raw, names, blocks in seen:
        assert names.isdisjoint(blocks), raw.__name__
        assert names | blocks == set(raw.arg_names), (raw.__name__, set(raw.arg_names) ^ (names | blocks))


def test_package_import_is_lazy():
    code = ("import sys, cnndsl, cnndsl.backends.triton as t; "
            "assert 'torch' not in sys.modules and 'triton' not in sys.modules, 'eager import'; "
            "t.conv2d; assert 'triton' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)
