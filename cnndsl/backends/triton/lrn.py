"""Local response normalisation across channels (AlexNet, GoogLeNet), NHWC, PyTorch semantics.

``b_c = a_c / (k + alpha/n · Σ_{c' ∈ [c − ⌊n/2⌋, c + ⌊(n−1)/2⌋]} a_{c'}²)^beta``, channels outside
``[0, C)`` counting as zeros (PyTorch's ``nn.LocalResponseNorm(size=n, alpha, beta, k)``: the sum
is always divided by n). One tile of ``BLOCK_M`` pixels × ``BLOCK_C`` channels per program; the
window is summed by reloading the shifted channel tile n times (cache hits, no shuffles). The power
is computed as ``exp2(−beta·log2(·))``.
"""

import torch
import triton
import triton.language as tl

from cnndsl.backends.triton import _common as C


@triton.jit
def _lrn_kernel(
    x_ptr,  # input rows [M = N*H*W, C]: element (m, c) at m*stride_xm + c
    out_ptr,  # output rows: (m, c) stored at m*stride_om + c
    M, C,  # pixels and channels
    stride_xm,  # input row (pixel) stride (elements)
    stride_om,  # output row (pixel) stride
    SIZE,  # window size n
    alpha_over_n,  # fp32 alpha / n
    beta,  # fp32 exponent
    k,  # fp32 additive constant
    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_c = tl.program_id(1)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_m = rows < M
    mask_c = cols < C
    x_rows = x_ptr + rows.to(tl.int64)[:, None] * stride_xm
    x = tl.load(x_rows + cols[None, :], mask=mask_m[:, None] & mask_c[None, :], other=0.0).to(tl.float32)
    sq = tl.zeros((BLOCK_M, BLOCK_C), dtype=tl.float32)
    half = SIZE // 2
    for d in range(0, SIZE):
        cc = cols + (d - half)
        ok = mask_m[:, None] & ((cc >= 0) & (cc < C))[None, :]
        v = tl.load(x_rows + cc[None, :], mask=ok, other=0.0).to(tl.float32)
        sq += v * v
    den = k + alpha_over_n * sq
    y = x * tl.exp2(-beta * tl.log2(den))
    out_ptrs = out_ptr + rows.to(tl.int64)[:, None] * stride_om + cols[None, :]
    tl.store(out_ptrs, y.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_c[None, :])


_LRN_CONFIGS = [
    C.config(BLOCK_M=16, BLOCK_C=128, num_warps=4),
    C.config(BLOCK_M=32, BLOCK_C=64, num_warps=4),
    C.config(BLOCK_M=64, BLOCK_C=32, num_warps=4),
    C.config(BLOCK_M=8, BLOCK_C=256, num_warps=4),
]
_lrn_tuned = C.autotuned(_lrn_kernel, _LRN_CONFIGS, ["M", "C", "SIZE"],
                         prune=C.prune_by_extent({"BLOCK_C": "C"}))


def local_response_norm(
    x: torch.Tensor,
    size: int,
    alpha: float = 1e-4,
    beta: float = 0.75,
    k: float = 1.0,
    *,
    out: torch.Tensor | None = None,
    config: triton.Config | dict | None = None,
) -> torch.Tensor:
    """LRN over the last (channel) dim of a channels-last tensor (NHWC or [N, C]); returns out.

    x and out: pixel-uniform (viewable as ``[rows, C]`` with unit channel stride); out defaults to a
    new tensor of x's shape and dtype.
    """
    C.check_dtype("x", x)
    if x.dim() < 2:
        raise ValueError(f"x: expected at least [N, C], got shape {tuple(x.shape)}")
    if size < 1:
        raise ValueError(f"size must be ≥ 1, got {size}")
    c = x.shape[-1]
    stride_xm = C.row_stride("x", x)
    if out is None:
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
    C.check_dtype("out", out)
    stride_om = C.row_stride("out", out, tuple(x.shape))
    C.check_same_device(x=x, out=out)
    C.no_alias(out, x=x)  # neighbouring channel tiles read what another program writes
    m = x.numel() // max(c, 1)
    args = dict(x_ptr=x, out_ptr=out, M=m, C=c, stride_xm=stride_xm, stride_om=stride_om, SIZE=int(size),
                alpha_over_n=float(alpha) / size, beta=float(beta), k=float(k))

    def grid(meta):
        return (triton.cdiv(m, meta["BLOCK_M"]), triton.cdiv(c, meta["BLOCK_C"]))

    C.launch(_lrn_kernel, _lrn_tuned, grid, args, config,
             lambda: C.config(BLOCK_M=C.clamp_pow2(m, 16, 128), BLOCK_C=C.clamp_pow2(c, 16, 128)))
    return out


def compile_specs(dtype: str = "fp16") -> list[tuple[object, dict[str, str], dict[str, object]]]:
    """One representative ``(kernel, signature, constexprs)``, for `triton.compile`."""
    cst = dict(BLOCK_M=16, BLOCK_C=128)
    return [(_lrn_kernel, C.signature(_lrn_kernel, dtype, cst), cst)]
