"""Fully connected layers: ``y = x @ Wᵀ + b`` with the fused conv epilogue, as a tiled Triton GEMM.

``x [M, K]`` times the weight in PyTorch's ``nn.Linear`` layout ``[N, K]`` (any strides: a packed
``[K, N]`` matrix passed as ``w_kn.t()`` works too, and is what the 1x1 convolution fast path in
conv.py passes). Tiles of ``BLOCK_M × BLOCK_N`` outputs per program, reducing over K in
``BLOCK_K`` steps with ``tl.dot`` (fp32 accumulation), programs ordered in groups of ``GROUP_M``
row tiles for L2 reuse (the layout of Triton's matrix-multiplication tutorial).

Epilogue: one `Epilogue` (epilogue.py; run by `_common.epilogue_store`), as for conv2d; with
``carry`` (the IR's ``highway_fc``) the weight holds ``[W_H; W_T]`` (2·N rows).

Note for the launcher: an fc layer after a flatten of an NHWC map sees features in (h, w, c) order;
PyTorch's weights (flattened from NCHW, (c, h, w) order) must be permuted accordingly.
"""

import torch
import triton
import triton.language as tl

from cnndsl.backends.triton import _common as C
from cnndsl.backends.triton._common import dot_acc, epilogue_store
from cnndsl.backends.triton.activations import ACTIVATIONS
from cnndsl.backends.triton.epilogue import Epilogue


@triton.jit
def _gemm_kernel(
    a_ptr,  # x [M, K]: element (m, k) at m*stride_am + k*stride_ak
    b_ptr,  # weight [N_w, K] (nn.Linear layout): element (n, k) at n*stride_bn + k*stride_bk; T's rows at t_off + n
    bias_ptr,  # bias [N_w] (read only when HAS_BIAS)
    res_ptr,  # residual [M, C_RES]: (m, n) at m*stride_rm + n (read only when HAS_RES)
    hw_c_ptr,  # highway carry [M, N]: (m, n) at m*stride_cm + n (HIGHWAY)
    out_ptr,  # output buffer: (m, n) stored at m*stride_om + c_offset + n
    M, N, K,  # problem size (N: output columns, half the weight rows with HIGHWAY)
    stride_am,  # x row stride (elements)
    stride_ak,  # x column stride (1 when contiguous)
    stride_bn,  # weight stride along N (K for nn.Linear's contiguous [N, K])
    stride_bk,  # weight stride along K (1 for nn.Linear's layout)
    t_off,  # first weight row / bias entry of the gate T (HIGHWAY)
    stride_rm,  # residual row stride
    C_RES,  # residual columns (= N)
    stride_cm,  # highway carry row stride
    stride_om,  # output row stride (N_total of a concat buffer)
    c_offset,  # first output column of this layer in the output buffer
    c_step,  # channel step in the output buffer
    route_ptr,  # routed output rows (ROUTE): channels [route_lo, route_hi) go here (epilogue_store)
    stride_qm, route_lo, route_hi, route_shift,  # its row stride, the routed range, the channel shift
    post_scale_ptr, post_shift_ptr,  # fp32 [C_out] affine after the residual add (POST_NORM)
    scale, act_a, act_s, post_a, post_s, gate_a, gate_s,  # fp32 epilogue scalars (see epilogue_store)
    HAS_BIAS: tl.constexpr, HAS_RES: tl.constexpr, HIGHWAY: tl.constexpr,
    ACT: tl.constexpr, POST_ACT: tl.constexpr, GATE_ACT: tl.constexpr, ROUTE: tl.constexpr,
    POST_NORM: tl.constexpr,
    UPCAST: tl.constexpr,  # convert loaded operands to fp32 before the dot (interpreter; bf16/fp16)
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,  # row tiles swept together for L2 reuse
):
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    num_pid_in_group = GROUP_M * num_pid_n
    first_m = (pid // num_pid_in_group) * GROUP_M
    group_size_m = tl.minimum(num_pid_m - first_m, GROUP_M)
    pid_m = first_m + ((pid % num_pid_in_group) % group_size_m)
    pid_n = (pid % num_pid_in_group) // group_size_m

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = offs_m < M
    mask_n = offs_n < N
    a_rows = a_ptr + offs_m.to(tl.int64) * stride_am  # [BLOCK_M]
    b_cols = b_ptr + offs_n.to(tl.int64) * stride_bn  # [BLOCK_N]
    b_cols_t = b_ptr + (offs_n + t_off).to(tl.int64) * stride_bn  # [BLOCK_N], gate rows

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc_t = acc
    if HIGHWAY:
        acc_t = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask_k = offs_k < K
        a = tl.load(a_rows[:, None] + offs_k[None, :] * stride_ak, mask=mask_m[:, None] & mask_k[None, :], other=0.0)
        b_mask = mask_k[:, None] & mask_n[None, :]
        b = tl.load(b_cols[None, :] + offs_k[:, None] * stride_bk, mask=b_mask, other=0.0)
        acc = dot_acc(acc, a, b, UPCAST)
        if HIGHWAY:
            b_t = tl.load(b_cols_t[None, :] + offs_k[:, None] * stride_bk, mask=b_mask, other=0.0)
            acc_t = dot_acc(acc_t, a, b_t, UPCAST)

    res_off = offs_m.to(tl.int64) * stride_rm
    epilogue_store(acc, acc_t, offs_m, offs_n, mask_m, mask_n, res_off, bias_ptr, t_off, res_ptr, C_RES,
                   hw_c_ptr, stride_cm, out_ptr, stride_om, c_offset, c_step,
                   route_ptr, stride_qm, route_lo, route_hi, route_shift, post_scale_ptr, post_shift_ptr,
                   scale, act_a, act_s, post_a, post_s, gate_a, gate_s,
                   HAS_BIAS, HAS_RES, HIGHWAY, ACT, POST_ACT, GATE_ACT, ROUTE, POST_NORM)


_GEMM_CONFIGS = [
    C.config(BLOCK_M=128, BLOCK_N=256, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=3),
    C.config(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=4),
    C.config(BLOCK_M=128, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
    C.config(BLOCK_M=64, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
    C.config(BLOCK_M=64, BLOCK_N=64, BLOCK_K=64, GROUP_M=8, num_warps=4, num_stages=3),
    C.config(BLOCK_M=32, BLOCK_N=128, BLOCK_K=64, GROUP_M=8, num_warps=4, num_stages=4),
    C.config(BLOCK_M=16, BLOCK_N=128, BLOCK_K=128, GROUP_M=8, num_warps=4, num_stages=4),  # small-batch fc
    C.config(BLOCK_M=16, BLOCK_N=64, BLOCK_K=64, GROUP_M=8, num_warps=2, num_stages=5),
    C.config(BLOCK_M=16, BLOCK_N=32, BLOCK_K=128, GROUP_M=8, num_warps=2, num_stages=4),  # narrow heads
]

_gemm_tuned = C.autotuned(_gemm_kernel, _GEMM_CONFIGS, ["M", "N", "K", "HIGHWAY"],
                          prune=C.prune_by_extent({"BLOCK_M": "M", "BLOCK_N": "N", "BLOCK_K": "K"}))


def _gemm_default(m: int, n: int, k: int) -> triton.Config:
    return C.config(BLOCK_M=C.clamp_pow2(m, 16, 128), BLOCK_N=C.clamp_pow2(n, 16, 512),
                    BLOCK_K=C.clamp_pow2(k, 16, 1024), GROUP_M=8)


def linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    epilogue: Epilogue | None = None,
    *,
    config: triton.Config | dict | None = None,
) -> torch.Tensor:
    """``x @ weightᵀ`` with a fused `Epilogue` (bias, residual, activations, highway); returns the
    written view.

    x: ``[M, K]`` (any strides). weight: ``[N, K]`` (nn.Linear layout, any strides), x's dtype;
    ``[2·N, K]`` with ``epilogue.carry`` (H's rows, then T's). epilogue.residual and carry: ``[M, N]``
    with unit column stride. epilogue.out: None (allocate ``[M, N]``) or an ``[M, N_total]`` buffer
    (unit column stride) written at columns ``c_offset + n·c_step`` for n < N.
    """
    ep = epilogue or Epilogue()
    if x.dim() != 2:
        raise ValueError(f"x: expected [M, K], got shape {tuple(x.shape)}")
    if weight.dim() != 2:
        raise ValueError(f"weight: expected [N, K] (nn.Linear layout), got shape {tuple(weight.shape)}")
    dt = C.check_dtype("x", x)
    if weight.dtype != x.dtype:
        raise TypeError(f"weight dtype {weight.dtype} differs from x dtype {x.dtype}")
    m, k = x.shape
    n_w, k2 = weight.shape
    if k != k2:
        raise ValueError(f"weight: expected [N, {k}], got {tuple(weight.shape)}")
    if ep.carry is not None and n_w % 2:
        raise ValueError(f"highway carry: the weight needs 2·N rows (H's, then T's), got {n_w}")
    if tuple(ep.res_stride) != (1, 1):
        raise ValueError(f"res_stride: an fc residual is not subsampled, got {ep.res_stride}")
    n = n_w // 2 if ep.carry is not None else n_w
    C.check_same_device(x=x, weight=weight)
    if ep.residual is not None:
        C.row_stride("residual", ep.residual, (m, n))
    buf, ep_args = C.epilogue_args((m,), n, x, ep)
    written = slice(ep.c_offset, ep.c_offset + (n - 1) * ep.c_step + 1, ep.c_step)
    C.no_alias(buf[:, written], x=x, weight=weight)
    if ep.route is not None:
        C.no_alias(ep.route.into[:, ep.route.at:ep.route.at + ep.route.hi - ep.route.lo], x=x, weight=weight)
    args = dict(a_ptr=x, b_ptr=weight, **ep_args, M=m, N=n, K=k, stride_am=x.stride(0), stride_ak=x.stride(1),
                stride_bn=weight.stride(0), stride_bk=weight.stride(1),
                stride_rm=ep.residual.stride(0) if ep.residual is not None else 0, C_RES=n,
                UPCAST=C.is_interpreted(_gemm_kernel) and dt != "fp32")

    def grid(meta):
        return (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n, meta["BLOCK_N"]),)

    C.launch(_gemm_kernel, _gemm_tuned, grid, args, config, lambda: _gemm_default(m, n, k), C.reads_output(buf, ep))
    return buf[:, written]


def compile_specs(dtype: str = "fp16") -> list[tuple[object, dict[str, str], dict[str, object]]]:
    """Representative ``(kernel, signature, constexprs)`` tuples, for `triton.compile`."""
    cst = dict(HAS_BIAS=True, HAS_RES=True, HIGHWAY=False, ACT=4, POST_ACT=2, GATE_ACT=2, ROUTE=True, POST_NORM=True,
               UPCAST=False, BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, GROUP_M=8)
    pair = dict(cst, HAS_RES=False, HIGHWAY=True, ACT=1, POST_ACT=0, GATE_ACT=2, ROUTE=False, POST_NORM=False)
    sig = {"*": dtype, "bias_ptr": "fp32", "post_scale_ptr": "fp32", "post_shift_ptr": "fp32"}
    # every activation code of the registry, two a variant (the layer's act and its gate's)
    codes = sorted(ACTIVATIONS.values())
    every = [dict(pair, ACT=a, GATE_ACT=b) for a, b in zip(codes[0::2], codes[1::2] + codes[:1])]
    return [(_gemm_kernel, C.signature(_gemm_kernel, sig, c), c) for c in (cst, pair, *every)]
