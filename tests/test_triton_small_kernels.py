"""Pooling, LRN, softmax and RBF kernels against PyTorch, under Triton's interpreter (no GPU).

As in test_triton_kernels.py: fp32 references on NCHW tensors, permuted to NHWC; tiny shapes,
tiles pinned small where a test wants the multi-tile paths.
"""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")
F = torch.nn.functional

from cnndsl.backends.triton.lrn import local_response_norm  # noqa: E402
from cnndsl.backends.triton.pool import global_pool2d, pool2d  # noqa: E402
from cnndsl.backends.triton.rbf import euclidean_rbf  # noqa: E402
from cnndsl.backends.triton.softmax import softmax_lastdim  # noqa: E402
from tests.kernel_checks import DTYPES, close, interpreted, nchw, nhwc, q, rnd  # noqa: E402, F401 (interpreted: a fixture)

pytestmark = pytest.mark.usefixtures("interpreted")


# --------------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------------

# (id, mode, kernel, stride, padding, ceil_mode, count_include_pad)
POOL_CASES = [
    ("max2", "max", 2, 2, 0, False, True),
    ("max3-s2-p1", "max", 3, 2, 1, False, True),
    ("max3-s2-ceil", "max", 3, 2, 0, True, True),
    ("max3-s1-p1", "max", 3, 1, 1, False, True),
    ("max-1x3", "max", (1, 3), (1, 2), (0, 1), True, True),
    ("avg2", "avg", 2, 2, 0, False, True),
    ("avg3-s2-p1", "avg", 3, 2, 1, False, True),
    ("avg3-s2-p1-ceil", "avg", 3, 2, 1, True, True),
    ("avg3-p1-nopad", "avg", 3, 1, 1, False, False),
    ("avg3-s2-p1-ceil-nopad", "avg", 3, 2, 1, True, False),
    ("avg5-s3", "avg", 5, 3, 2, True, True),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("case", POOL_CASES, ids=[c[0] for c in POOL_CASES])
def test_pool(case, dtype):
    _, mode, k, s, p, ceil, cip = case
    x = rnd(2, 11, 9, 8, seed=4)
    if mode == "max":
        ref = F.max_pool2d(q(x, dtype), k, s, p, ceil_mode=ceil)
    else:
        ref = F.avg_pool2d(q(x, dtype), k, s, p, ceil_mode=ceil, count_include_pad=cip)
    got = pool2d(nhwc(x).to(dtype), mode, k, s, p, ceil_mode=ceil, count_include_pad=cip)
    close(nchw(got), ref, dtype)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("size", [(1, 1), (3, 3), (4, 5), (2, 7)])
def test_adaptive_pool(mode, size):
    x = rnd(1, 6, 9, 7, seed=5)
    fn = F.adaptive_max_pool2d if mode == "max" else F.adaptive_avg_pool2d
    close(nchw(pool2d(nhwc(x), mode, output_size=size)), fn(x, size), torch.float32)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_global_pool(mode, dtype):
    x = rnd(2, 13, 7, 5, seed=6)
    fn = F.adaptive_max_pool2d if mode == "max" else F.adaptive_avg_pool2d
    ref = fn(q(x, dtype), 1)
    close(nchw(global_pool2d(nhwc(x).to(dtype), mode)), ref, dtype)
    close(nchw(global_pool2d(nhwc(x).to(dtype), mode, config=dict(BLOCK_HW=16, BLOCK_C=16))), ref, dtype)


def test_pool_into_concat_buffer_and_multi_tile():
    x = rnd(1, 20, 9, 9, seed=7)
    buf = torch.zeros(1, 4, 4, 26)
    pool2d(nhwc(x), "max", 3, 2, out=buf, c_offset=5, config=dict(BLOCK_P=16, BLOCK_C=16))
    close(nchw(buf[..., 5:25]), F.max_pool2d(x, 3, 2), torch.float32)
    assert (buf[..., :5] == 0).all() and (buf[..., 25:] == 0).all()
    gbuf = torch.zeros(1, 1, 1, 22)
    global_pool2d(nhwc(x), "avg", out=gbuf, c_offset=2)
    close(nchw(gbuf[..., 2:]), F.adaptive_avg_pool2d(x, 1), torch.float32)
    with pytest.raises(ValueError, match="exactly one"):
        pool2d(nhwc(x), "max")


# --------------------------------------------------------------------------------------------
# LRN and softmax
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("size,alpha,beta,k", [(5, 1e-4, 0.75, 2.0), (5, 0.3, 0.75, 1.0), (4, 0.1, 0.5, 1.0),
                                               (1, 0.5, 1.0, 1.0), (3, 0.2, 0.75, 0.5)])
def test_lrn(size, alpha, beta, k, dtype):
    x = rnd(2, 11, 5, 4, seed=8) * 2
    ref = F.local_response_norm(q(x, dtype), size, alpha, beta, k)
    close(nchw(local_response_norm(nhwc(x).to(dtype), size, alpha, beta, k)), ref, dtype)


def test_lrn_multi_tile_and_2d():
    x = rnd(3, 37, seed=9) * 2
    ref = F.local_response_norm(x[:, :, None], 5, 0.2, 0.75, 1.0)[:, :, 0]
    close(local_response_norm(x, 5, 0.2, 0.75, 1.0, config=dict(BLOCK_M=2, BLOCK_C=16)), ref, torch.float32)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("shape,block_c", [((3, 10), None), ((2, 3, 4, 12), None), ((5, 37), 16), ((1, 1000), None)])
def test_softmax(shape, block_c, dtype):
    x = rnd(*shape, seed=10) * 3
    ref = torch.softmax(q(x, dtype), -1)
    cfg = None if block_c is None else dict(BLOCK_M=2, BLOCK_C=block_c)  # block_c < C: the two-pass path
    close(softmax_lastdim(x.to(dtype), config=cfg), ref, dtype)
    xi = x.to(dtype)
    softmax_lastdim(xi, out=xi, config=cfg)  # in place
    close(xi, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16"])
@pytest.mark.parametrize("m,k,n,config", [(3, 84, 10, None), (5, 7, 3, None), (17, 40, 33, dict(BLOCK_M=16, BLOCK_N=16,
                                                                                                BLOCK_K=16))])
def test_rbf(m, k, n, config, dtype):
    x = rnd(m, k, seed=70)
    centres = torch.randint(0, 2, (n, k), generator=torch.Generator().manual_seed(71)).float() * 2 - 1
    ref = (q(x, dtype)[:, None, :] - centres[None]).square().sum(-1)
    close(euclidean_rbf(x.to(dtype), centres.to(dtype), config=config), ref, dtype)
    buf = torch.full((m, n + 3), 9.0, dtype=dtype)
    euclidean_rbf(x.to(dtype), centres.to(dtype), out=buf, c_offset=2, config=config)
    close(buf[:, 2:2 + n], ref, dtype)
    assert (buf[:, :2] == 9).all() and (buf[:, 2 + n:] == 9).all()
    with pytest.raises(ValueError, match="share K"):
        euclidean_rbf(x, centres[:, :-1])
