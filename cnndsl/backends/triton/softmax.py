"""Softmax over the last dim: the channels of an NHWC map, or the classes of [N, C].

One tile of ``BLOCK_M`` rows per program. When the whole row fits one ``BLOCK_C`` tile (``SINGLE``,
e.g. 1000 ImageNet classes in a 1024-wide tile) the row stays in registers; otherwise a first pass
keeps a running max and rescaled sum (online softmax) and a second pass writes the result. Maths
in fp32, stored in the output dtype.
"""

import torch
import triton
import triton.language as tl

from cnndsl.backends.triton import _common as C


@triton.jit
def _softmax_kernel(
    x_ptr,  # input rows [M, C]: element (m, c) at m*stride_xm + c
    out_ptr,  # output rows: (m, c) stored at m*stride_om + c
    M, C,  # rows and row length
    stride_xm,  # input row stride (elements)
    stride_om,  # output row stride
    SINGLE: tl.constexpr,  # BLOCK_C >= C: one pass, row kept in registers
    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = rows < M
    x_rows = x_ptr + rows.to(tl.int64)[:, None] * stride_xm
    o_rows = out_ptr + rows.to(tl.int64)[:, None] * stride_om
    cols = tl.arange(0, BLOCK_C)
    if SINGLE:
        mask = mask_m[:, None] & (cols < C)[None, :]
        x = tl.load(x_rows + cols[None, :], mask=mask, other=float("-inf")).to(tl.float32)
        x = tl.where(mask_m[:, None], x, 0.0)  # padding rows: finite, never stored
        mx = tl.max(x, axis=1)
        e = tl.exp(x - mx[:, None])
        s = tl.sum(e, axis=1)
        y = e / s[:, None]
        tl.store(o_rows + cols[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)
    else:
        mx = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
        s = tl.zeros((BLOCK_M,), dtype=tl.float32)
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + cols
            mask = mask_m[:, None] & (cc < C)[None, :]
            x = tl.load(x_rows + cc[None, :], mask=mask, other=float("-inf")).to(tl.float32)
            x = tl.where(mask_m[:, None], x, 0.0)
            new_mx = tl.maximum(mx, tl.max(x, axis=1))
            s = s * tl.exp(mx - new_mx) + tl.sum(tl.exp(x - new_mx[:, None]), axis=1)
            mx = new_mx
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + cols
            mask = mask_m[:, None] & (cc < C)[None, :]
            x = tl.load(x_rows + cc[None, :], mask=mask, other=0.0).to(tl.float32)
            y = tl.exp(x - mx[:, None]) / s[:, None]
            tl.store(o_rows + cc[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)


_MAX_SINGLE = 8192  # widest row kept in registers
_SOFTMAX_CONFIGS = [
    C.config(BLOCK_M=1, num_warps=4),
    C.config(BLOCK_M=2, num_warps=4),
    C.config(BLOCK_M=4, num_warps=4),
    C.config(BLOCK_M=8, num_warps=8),
    C.config(BLOCK_M=16, num_warps=8),
]
_by_rows = C.prune_by_extent({"BLOCK_M": "M"})


def _prune(configs, named_args, **kwargs):
    """Row tiles that fit M, and at most 16K fp32 values of a tile held in registers."""
    fits = [c for c in configs if c.kwargs["BLOCK_M"] * kwargs.get("BLOCK_C", 1024) <= 16384] or configs[:1]
    return _by_rows(fits, named_args, **kwargs)


_softmax_tuned = C.autotuned(_softmax_kernel, _SOFTMAX_CONFIGS, ["M", "C"], prune=_prune)


def softmax_lastdim(
    x: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
    config: triton.Config | dict | None = None,
) -> torch.Tensor:
    """Softmax over the last dim of x (NHWC channels or [N, classes]); returns out.

    x and out: viewable as ``[rows, C]`` with unit last stride; out defaults to a new tensor of x's
    shape and dtype, and may be x itself (in place: each program reads its rows before writing them). `config` may pin ``BLOCK_M`` (and ``BLOCK_C``, the column tile).
    """
    C.check_dtype("x", x)
    if x.dim() < 1 or x.shape[-1] < 1:
        raise ValueError(f"x: expected a non-empty last dim, got shape {tuple(x.shape)}")
    c = x.shape[-1]
    stride_xm = C.row_stride("x", x) if x.dim() > 1 else c
    if out is None:
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
    C.check_dtype("out", out)
    stride_om = C.row_stride("out", out, tuple(x.shape)) if x.dim() > 1 else c
    C.check_same_device(x=x, out=out)
    m = x.numel() // c
    pinned = dict(config.kwargs if isinstance(config, triton.Config) else config) if config is not None else None
    block_c = (pinned or {}).pop("BLOCK_C", None) or C.clamp_pow2(c, 16, _MAX_SINGLE)
    args = dict(x_ptr=x, out_ptr=out, M=m, C=c, stride_xm=stride_xm, stride_om=stride_om,
                SINGLE=block_c >= c, BLOCK_C=block_c)
    if pinned is not None:
        pinned = triton.Config(pinned, num_warps=getattr(config, "num_warps", 4))

    def grid(meta):
        return (triton.cdiv(m, meta["BLOCK_M"]),)

    C.launch(_softmax_kernel, _softmax_tuned, grid, args, pinned,
             lambda: C.config(BLOCK_M=C.clamp_pow2(m, 1, 64)), in_place=C.shares_storage(out, x))
    return out


def compile_specs(dtype: str = "fp16") -> list[tuple[object, dict[str, str], dict[str, object]]]:
    """Representative ``(kernel, signature, constexprs)`` tuples (single- and two-pass), for `triton.compile`."""
    one = dict(SINGLE=True, BLOCK_M=4, BLOCK_C=1024)
    two = dict(SINGLE=False, BLOCK_M=4, BLOCK_C=256)
    return [(_softmax_kernel, C.signature(_softmax_kernel, dtype, one), one),
            (_softmax_kernel, C.signature(_softmax_kernel, dtype, two), two)]
