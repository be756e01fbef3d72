"""Group norm and layer norm over NHWC maps (or [N, F] rows): statistics per sample and group of
channels, or per pixel over its channels, which no pass can fold (they are not affine in eval).

    group_norm(x, groups, weight=None, bias=None, eps=1e-5, out=None)   nn.GroupNorm
    layer_norm_lastdim(x, weight=None, bias=None, eps=1e-5, out=None)   ConvNeXt's LayerNorm2d / nn.LayerNorm

Both are one kernel: a *segment* (P positions by K contiguous channels) is normalised by one
program in three sweeps (mean, variance of the centred values, the result), so any segment size
fits in a ``BLOCK_P`` x ``BLOCK_K`` tile. Group norm: a segment is one sample's group (P = H·W,
K = C / groups); layer norm: one pixel's (or row's) channels (P = 1, K = C). Maths in fp32, stored
in the output's dtype; γ and β are fp32 vectors of C.
"""

import torch
import triton
import triton.language as tl

from cnndsl.backends.triton import _common as C


@triton.jit
def _norm_kernel(
    x_ptr,  # input: (segment (n, s), position p, channel j) at n*sxn + s*sxs + p*sxp + j
    w_ptr, b_ptr,  # γ, β [C] (fp32), read when AFFINE: channel s*ch_step + j
    out_ptr,  # output, laid out like the input with its own strides
    S, P, K,  # segments per sample, positions per segment, channels per segment
    sxn, sxs, sxp,  # input strides: sample, segment, position (channel stride 1)
    son, sos, sop,  # output strides
    ch_step,  # the affine channel of segment s starts at s*ch_step (K for group norm, 0 for layer norm)
    eps,
    AFFINE: tl.constexpr,  # apply γ and β
    BLOCK_P: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid = tl.program_id(0)
    n = (pid // S).to(tl.int64)
    s = (pid % S).to(tl.int64)
    xb = x_ptr + n * sxn + s * sxs
    ob = out_ptr + n * son + s * sos
    rp = tl.arange(0, BLOCK_P)
    rk = tl.arange(0, BLOCK_K)
    total = tl.zeros((BLOCK_P, BLOCK_K), dtype=tl.float32)
    for p0 in range(0, P, BLOCK_P):
        for k0 in range(0, K, BLOCK_K):
            pp, kk = p0 + rp, k0 + rk
            mask = (pp < P)[:, None] & (kk < K)[None, :]
            total += tl.load(xb + pp.to(tl.int64)[:, None] * sxp + kk[None, :], mask=mask, other=0.0).to(tl.float32)
    count = P * K * 1.0
    mean = tl.sum(tl.sum(total, axis=1), axis=0) / count
    sq = tl.zeros((BLOCK_P, BLOCK_K), dtype=tl.float32)
    for p0 in range(0, P, BLOCK_P):
        for k0 in range(0, K, BLOCK_K):
            pp, kk = p0 + rp, k0 + rk
            mask = (pp < P)[:, None] & (kk < K)[None, :]
            x = tl.load(xb + pp.to(tl.int64)[:, None] * sxp + kk[None, :], mask=mask, other=0.0).to(tl.float32)
            d = tl.where(mask, x - mean, 0.0)
            sq += d * d
    rstd = 1.0 / tl.sqrt(tl.sum(tl.sum(sq, axis=1), axis=0) / count + eps)
    for p0 in range(0, P, BLOCK_P):
        for k0 in range(0, K, BLOCK_K):
            pp, kk = p0 + rp, k0 + rk
            mask = (pp < P)[:, None] & (kk < K)[None, :]
            x = tl.load(xb + pp.to(tl.int64)[:, None] * sxp + kk[None, :], mask=mask, other=0.0).to(tl.float32)
            y = (x - mean) * rstd
            if AFFINE:
                ch = s * ch_step + kk
                g = tl.load(w_ptr + ch, mask=kk < K, other=1.0)
                b = tl.load(b_ptr + ch, mask=kk < K, other=0.0)
                y = y * g[None, :] + b[None, :]
            tl.store(ob + pp.to(tl.int64)[:, None] * sop + kk[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)


_CONFIGS = [
    C.config(BLOCK_P=1, BLOCK_K=256, num_warps=2),
    C.config(BLOCK_P=1, BLOCK_K=1024, num_warps=4),
    C.config(BLOCK_P=16, BLOCK_K=64, num_warps=4),
    C.config(BLOCK_P=64, BLOCK_K=32, num_warps=8),
]
_tuned = C.autotuned(_norm_kernel, _CONFIGS, ["P", "K", "AFFINE"], prune=C.prune_by_extent({"BLOCK_P": "P",
                                                                                            "BLOCK_K": "K"}))


def _rows(name: str, t: torch.Tensor) -> tuple[int, int, int]:
    """(samples, positions per sample, row stride) of an NHWC map or [N, F] rows."""
    if t.dim() not in (2, 4):
        raise ValueError(f"{name}: expected an NHWC map or [N, F] rows, got shape {tuple(t.shape)}")
    positions = t.shape[1] * t.shape[2] if t.dim() == 4 else 1
    return t.shape[0], positions, C.row_stride(name, t)


def _run(x: torch.Tensor, groups: int, per_pixel: bool, weight: torch.Tensor | None, bias: torch.Tensor | None,
         eps: float, out: torch.Tensor | None, config: triton.Config | dict | None) -> torch.Tensor:
    C.check_dtype("x", x)
    c = x.shape[-1]
    if (weight is None) != (bias is None):
        raise ValueError("weight and bias: give both (affine) or neither")
    if weight is not None and (weight.numel() != c or bias.numel() != c):
        raise ValueError(f"weight and bias: expected {c} values each, got {weight.numel()} and {bias.numel()}")
    n, positions, sx = _rows("x", x)
    if out is None:
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
    C.check_dtype("out", out)
    _, _, so = _rows("out", out)
    if tuple(out.shape) != tuple(x.shape):
        raise ValueError(f"out: expected shape {tuple(x.shape)}, got {tuple(out.shape)}")
    C.check_same_device(x=x, out=out, weight=weight)
    if not C.shares_storage(out, x):
        C.no_alias(out, x=x)
    if per_pixel:  # each row (pixel) alone: rows as samples, one segment of K = C channels
        samples, s, p, k = n * positions, 1, 1, c
        strides = dict(sxn=sx, sxs=0, sxp=0, son=so, sos=0, sop=0, ch_step=0)
    else:
        samples, s, p, k = n, groups, positions, c // groups
        strides = dict(sxn=positions * sx, sxs=k, sxp=sx, son=positions * so, sos=k, sop=so, ch_step=k)
    affine = weight is not None
    dummy = out if not affine else None
    args = dict(x_ptr=x, w_ptr=weight if affine else dummy, b_ptr=bias if affine else dummy, out_ptr=out,
                S=s, P=p, K=k, eps=float(eps), AFFINE=affine, **strides)
    if samples * s == 0 or p * k == 0:
        return out

    def grid(meta):
        return (samples * s,)

    C.launch(_norm_kernel, _tuned, grid, args, config,
             lambda: C.config(BLOCK_P=C.clamp_pow2(p, 1, 16), BLOCK_K=C.clamp_pow2(k, 16, 256)),
             in_place=C.shares_storage(out, x))
    return out


def group_norm(x: torch.Tensor, groups: int, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
               eps: float = 1e-5, *, out: torch.Tensor | None = None,
               config: triton.Config | dict | None = None) -> torch.Tensor:
    """nn.GroupNorm over x (NHWC, or [N, C]); returns out (a new tensor, x itself, or a channel slice)."""
    if groups < 1 or x.shape[-1] % groups:
        raise ValueError(f"groups ({groups}) must divide the channels ({x.shape[-1]})")
    return _run(x, groups, False, weight, bias, eps, out, config)


def layer_norm_lastdim(x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
                       eps: float = 1e-5, *, out: torch.Tensor | None = None,
                       config: triton.Config | dict | None = None) -> torch.Tensor:
    """Layer norm over the last dim (an NHWC pixel's channels, a row's features); returns out."""
    return _run(x, 1, True, weight, bias, eps, out, config)


def compile_specs(dtype: str = "fp16") -> list[tuple[object, dict[str, str], dict[str, object]]]:
    """Representative ``(kernel, signature, constexprs)`` tuples (affine group norm, plain layer norm)."""
    specs = []
    for affine, bp, bk in ((True, 16, 64), (False, 1, 1024)):
        cst = dict(AFFINE=affine, BLOCK_P=bp, BLOCK_K=bk)
        sig = C.signature(_norm_kernel, {"*": dtype, "w_ptr": "fp32", "b_ptr": "fp32"}, cst)
        specs.append((_norm_kernel, sig, cst))
    return specs
