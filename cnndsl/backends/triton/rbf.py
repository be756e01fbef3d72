"""Euclidean RBF units (LeNet-5's output layer): ``y[m, n] = Σ_k (x[m, k] − c[n, k])²``.

One ``BLOCK_M × BLOCK_N`` tile of outputs per program, reducing over K in ``BLOCK_K`` steps on a
``[BLOCK_M, BLOCK_N, BLOCK_K]`` block of differences (no ``tl.dot``: the expansion
``|x|² − 2x·c + |c|²`` loses precision by cancellation when x is near a centre). fp32 maths,
stored in the output's dtype, optionally into a column slice of a wider buffer.
"""

import torch
import triton
import triton.language as tl

from cnndsl.backends.triton import _common as C


@triton.jit
def _rbf_kernel(
    x_ptr,  # inputs [M, K]: element (m, k) at m*stride_xm + k
    c_ptr,  # centres [N, K]: element (n, k) at n*stride_cn + k
    out_ptr,  # outputs: (m, n) stored at m*stride_om + c_offset + n
    M, N, K,  # rows, units, features
    stride_xm,  # input row stride (elements)
    stride_cn,  # centre row stride
    stride_om,  # output row stride
    c_offset,  # first column of this layer in the output buffer
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = offs_m < M
    mask_n = offs_n < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask_k = offs_k < K
        x = tl.load(x_ptr + offs_m.to(tl.int64)[:, None] * stride_xm + offs_k[None, :],
                    mask=mask_m[:, None] & mask_k[None, :], other=0.0).to(tl.float32)
        c = tl.load(c_ptr + offs_n.to(tl.int64)[:, None] * stride_cn + offs_k[None, :],
                    mask=mask_n[:, None] & mask_k[None, :], other=0.0).to(tl.float32)
        d = x[:, None, :] - c[None, :, :]
        acc += tl.sum(d * d, axis=2)
    out = out_ptr + offs_m.to(tl.int64)[:, None] * stride_om + c_offset + offs_n[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


_RBF_CONFIGS = [
    C.config(BLOCK_M=16, BLOCK_N=16, BLOCK_K=32, num_warps=4),
    C.config(BLOCK_M=32, BLOCK_N=16, BLOCK_K=16, num_warps=4),
    C.config(BLOCK_M=16, BLOCK_N=32, BLOCK_K=16, num_warps=4),
    C.config(BLOCK_M=64, BLOCK_N=16, BLOCK_K=8, num_warps=8),
]
_rbf_tuned = C.autotuned(_rbf_kernel, _RBF_CONFIGS, ["M", "N", "K"],
                         prune=C.prune_by_extent({"BLOCK_M": "M", "BLOCK_N": "N"}))


def euclidean_rbf(
    x: torch.Tensor,
    centres: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
    c_offset: int = 0,
    config: triton.Config | dict | None = None,
) -> torch.Tensor:
    """``y[m, n] = Σ_k (x[m, k] − centres[n, k])²`` for x ``[M, K]`` and centres ``[N, K]`` (unit
    column strides, x's dtype); out: None or an ``[M, N_total]`` buffer written at columns
    ``[c_offset, c_offset + N)``. Returns the written view."""
    if x.dim() != 2 or centres.dim() != 2 or x.shape[1] != centres.shape[1]:
        raise ValueError(f"x [M, K] and centres [N, K] must share K, got {tuple(x.shape)} and {tuple(centres.shape)}")
    C.check_dtype("x", x)
    if centres.dtype != x.dtype:
        raise TypeError(f"centres dtype {centres.dtype} differs from x dtype {x.dtype}")
    m, k = x.shape
    n = centres.shape[0]
    for name, t in (("x", x), ("centres", centres)):
        if k > 1 and t.stride(1) != 1:
            raise ValueError(f"{name}: the feature (last) stride must be 1, got strides {t.stride()}")
    if out is None:
        if c_offset:
            raise ValueError("c_offset needs a preallocated `out` buffer")
        out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    C.check_dtype("out", out)
    if out.dim() != 2 or out.shape[0] != m or c_offset < 0 or c_offset + n > out.shape[1]:
        raise ValueError(f"out: expected [{m}, ≥ {c_offset + n}] for columns [{c_offset}, {c_offset + n}), "
                         f"got {tuple(out.shape)}")
    C.check_same_device(x=x, centres=centres, out=out)
    C.no_alias(out[:, c_offset:c_offset + n], x=x, centres=centres)
    args = dict(x_ptr=x, c_ptr=centres, out_ptr=out, M=m, N=n, K=k, stride_xm=x.stride(0),
                stride_cn=centres.stride(0), stride_om=C.row_stride("out", out), c_offset=c_offset)

    def grid(meta):
        return (triton.cdiv(m, meta["BLOCK_M"]), triton.cdiv(n, meta["BLOCK_N"]))

    C.launch(_rbf_kernel, _rbf_tuned, grid, args, config,
             lambda: C.config(BLOCK_M=C.clamp_pow2(m, 1, 16), BLOCK_N=C.clamp_pow2(n, 1, 32),
                              BLOCK_K=C.clamp_pow2(k, 1, 128)))
    return out[:, c_offset:c_offset + n]


def compile_specs(dtype: str = "fp16") -> list[tuple[object, dict[str, str], dict[str, object]]]:
    """A representative ``(kernel, signature, constexprs)`` tuple, for `triton.compile`."""
    cst = dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=32)
    return [(_rbf_kernel, C.signature(_rbf_kernel, dtype, cst), cst)]
