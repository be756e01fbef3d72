"""Pieces shared by the Triton kernels: the fused epilogue, launch and tuning helpers (activations:
activations.py, generated from the registry).

Layout conventions used by every kernel in this package:

* Feature maps are NHWC with channel stride 1. A tensor that a kernel reads or writes "by rows"
  (outputs, highway operands, fc residuals) must be *pixel-uniform*: viewable as ``[N*H*W, C]``
  with a row stride, which includes channel slices ``buf[..., a:b]`` of a larger NHWC buffer.
  Conv inputs and residuals take any (n, h, w) strides.
* Arithmetic runs in fp32: elementwise operands are converted right after ``tl.load`` (bf16 maths
  is wrong under Triton's interpreter), dot products accumulate in fp32, results are cast to the
  output's dtype at the store.

Tuning: each kernel module builds ``triton.autotune(configs=GPU_CONFIGS, key=...)(kernel)`` once and
keeps the bare ``@triton.jit`` kernel beside it. `launch` uses the autotuner on a GPU, and the bare
kernel with one explicit config under ``TRITON_INTERPRET=1`` (where autotuning over several configs
cannot run) or when the caller pins a config.
"""

from collections.abc import Callable
from typing import Any

import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction

from cnndsl.backends.triton.activations import act_code, activation
from cnndsl.backends.triton.epilogue import Epilogue

DTYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
"""The dtypes the kernels accept, with their Triton signature names."""

FLOAT_ARGS = frozenset({"scale", "act_a", "act_s", "post_a", "post_s", "gate_a", "gate_s", "pre_a", "pre_s", "beta",
                        "k", "alpha_over_n", "eps", "RH", "RW"})
"""Scalar kernel arguments that are fp32 (every other non-pointer, non-constexpr one is i32)."""


def is_interpreted(kernel: Any) -> bool:
    """True when `kernel` was defined under ``TRITON_INTERPRET=1`` (it runs on the CPU in numpy)."""
    fn = getattr(kernel, "fn", kernel)  # an Autotuner wraps the kernel in `.fn`
    return isinstance(kernel, InterpretedFunction) or isinstance(fn, InterpretedFunction)


def next_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def clamp_pow2(n: int, lo: int, hi: int) -> int:
    """The power of two ≥ n, clamped to [lo, hi]."""
    return max(lo, min(hi, next_pow2(n)))


def pair(v: int | tuple[int, int], name: str) -> tuple[int, int]:
    """An int (both axes) or an ``(h, w)`` pair: strides, dilations and the IR's resolved paddings."""
    if isinstance(v, int):
        return v, v
    if isinstance(v, str) or len(v) != 2:
        raise ValueError(f"{name}: expected an int or an (h, w) pair, got {v!r}")
    return int(v[0]), int(v[1])


def check_dtype(name: str, t: torch.Tensor) -> str:
    if t.dtype not in DTYPES:
        raise TypeError(f"{name}: dtype {t.dtype} not supported (expected float32, float16 or bfloat16)")
    return DTYPES[t.dtype]


def row_stride(name: str, t: torch.Tensor, shape: tuple[int, ...] | None = None, any_channel_step: bool = False) -> int:
    """The row (pixel) stride of a channels-last tensor viewed as ``[prod(shape[:-1]), C]``.

    Checks the shape when given; raises ValueError when the tensor's channel stride is not 1 (any
    positive step with `any_channel_step`) or its leading dimensions cannot be flattened into one row
    index without a copy.
    """
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(t.shape)}")
    if t.shape[-1] > 1 and (t.stride(-1) < 1 if any_channel_step else t.stride(-1) != 1):
        raise ValueError(f"{name}: channel (last) stride must be 1, got strides {t.stride()}")
    try:
        rows = t.view(-1, t.shape[-1])
    except RuntimeError:
        raise ValueError(f"{name}: leading dimensions are not uniformly strided (strides {t.stride()}); "
                         "pass a contiguous tensor or a channel slice of one") from None
    return rows.stride(0)


def check_same_device(**tensors: torch.Tensor | None) -> None:
    devices = {name: t.device for name, t in tensors.items() if t is not None}
    if len(set(devices.values())) > 1:
        raise ValueError(f"tensors on different devices: {devices}")


# --------------------------------------------------------------------------------------------
# Device helpers shared by the kernels (inlined into each kernel by Triton).
# --------------------------------------------------------------------------------------------


@triton.jit
def dot_acc(acc, a, b, UPCAST: tl.constexpr):
    """acc + a @ b in fp32: operands upcast first when UPCAST (the interpreter has no fp16/bf16 dot);
    fp32 operands get an exact (IEEE) product, not tf32."""
    if UPCAST:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    return tl.dot(a, b, acc, input_precision="ieee")


@triton.jit
def epilogue_store(
    acc,  # [BLOCK_M, BLOCK_N] fp32 accumulator: the conv / matmul result (H's columns with HIGHWAY)
    acc_t,  # [BLOCK_M, BLOCK_N] fp32 accumulator of the gate T's columns (HIGHWAY; else ignored)
    rows,  # [BLOCK_M] output row (pixel) indices
    cols,  # [BLOCK_N] output channel indices, 0-based within this layer's C_out
    mask_m,  # [BLOCK_M] valid rows
    mask_n,  # [BLOCK_N] valid channels
    res_off,  # [BLOCK_M] int64 element offset of each row's residual pixel (HAS_RES)
    bias_ptr,  # bias: H's at bias_ptr + c, T's at bias_ptr + t_off + c (read only when HAS_BIAS)
    t_off,  # column offset of T's bias (HIGHWAY)
    res_ptr,  # residual: (row, c) at res_off[row] + c, zero for c >= C_RES (HAS_RES)
    C_RES,  # residual channels (< C_out: a zero-padded shortcut)
    hw_c_ptr,  # highway carry rows: (r, c) at r*stride_cm + c (HIGHWAY)
    stride_cm,  # highway carry row stride
    out_ptr,  # output rows: (r, c) stored at r*stride_om + c_offset + c*c_step
    stride_om,  # output row stride (C_total for a concat buffer)
    c_offset,  # first channel of this layer's slice in the output buffer
    c_step,  # channel step in the output buffer (>1: a concat whose channel shuffle the writes perform)
    route_ptr,  # routed rows (ROUTE): (r, c) for route_lo <= c < route_hi stored at r*stride_qm + route_shift + c
    stride_qm,  # routed output row stride
    route_lo, route_hi,  # the routed channel range [route_lo, route_hi) of this layer's C_out
    route_shift,  # routed channel c lands at channel route_shift + c of route_ptr's rows
    post_scale_ptr, post_shift_ptr,  # fp32 per-channel affine after the residual add (POST_NORM)
    scale,  # fp32 multiplier of the activated layer output, before the residual
    act_a, act_s,  # fp32 (a, s) of ACT
    post_a, post_s,  # fp32 (a, s) of POST_ACT
    gate_a, gate_s,  # fp32 (a, s) of GATE_ACT
    HAS_BIAS: tl.constexpr,
    HAS_RES: tl.constexpr,
    HIGHWAY: tl.constexpr,  # y = y·T + carry·(1 − T), T = GATE_ACT(acc_t + T's bias)
    ACT: tl.constexpr,
    POST_ACT: tl.constexpr,
    GATE_ACT: tl.constexpr,
    ROUTE: tl.constexpr,  # store channels [route_lo, route_hi) to route_ptr instead of out_ptr
    POST_NORM: tl.constexpr,  # z = z·post_scale[c] + post_shift[c] after the residual (a bn after the add)
):
    """z = ACT(acc + bias); z = scale·z + residual; z = z·s + t; y = POST_ACT(z); highway; store y."""
    rows64 = rows.to(tl.int64)
    mask = mask_m[:, None] & mask_n[None, :]
    y = acc
    if HAS_BIAS:
        y = y + tl.load(bias_ptr + cols, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    y = activation(y, ACT, act_a, act_s)
    y = y * scale
    if HAS_RES:
        r_mask = mask_m[:, None] & (mask_n & (cols < C_RES))[None, :]
        y = y + tl.load(res_ptr + res_off[:, None] + cols[None, :], mask=r_mask, other=0.0).to(tl.float32)
    if POST_NORM:
        p_s = tl.load(post_scale_ptr + cols, mask=mask_n, other=0.0)
        p_t = tl.load(post_shift_ptr + cols, mask=mask_n, other=0.0)
        y = y * p_s[None, :] + p_t[None, :]
    y = activation(y, POST_ACT, post_a, post_s)
    if HIGHWAY:
        t = acc_t
        if HAS_BIAS:
            t = t + tl.load(bias_ptr + t_off + cols, mask=mask_n, other=0.0).to(tl.float32)[None, :]
        t = activation(t, GATE_ACT, gate_a, gate_s)
        c = tl.load(hw_c_ptr + rows64[:, None] * stride_cm + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        y = y * t + c * (1.0 - t)
    out_ptrs = out_ptr + rows64[:, None] * stride_om + c_offset + cols[None, :] * c_step
    if ROUTE:
        routed = ((cols >= route_lo) & (cols < route_hi))[None, :]
        tl.store(out_ptrs, y.to(out_ptr.dtype.element_ty), mask=mask & ~routed)
        q_ptrs = route_ptr + rows64[:, None] * stride_qm + route_shift + cols[None, :]
        tl.store(q_ptrs, y.to(route_ptr.dtype.element_ty), mask=mask & routed)
    else:
        tl.store(out_ptrs, y.to(out_ptr.dtype.element_ty), mask=mask)


# --------------------------------------------------------------------------------------------
# Host side: epilogue operands, tuning and launching.
# --------------------------------------------------------------------------------------------


def epilogue_args(out_rows: tuple[int, ...], cout: int, dtype_ref: torch.Tensor,
                  ep: Epilogue) -> tuple[torch.Tensor, dict[str, Any]]:
    """Check the operands of epilogue `ep` of a conv/gemm producing ``out_rows + (cout,)``; build its
    kernel arguments. Returns ``(out_buffer, kwargs)``; the written view is
    ``out_buffer[..., ep.c_offset:ep.c_offset + (cout - 1) * ep.c_step + 1:ep.c_step]``.

    The residual is only checked for dtype and device here (its addressing is the caller's:
    ``res_ptr``, ``C_RES``). Unused pointer arguments get the output buffer (never read: their
    constexpr flag is off).
    """
    shape = tuple(out_rows) + (cout,)
    out, c_offset, bias, residual, route, post_norm = ep.out, ep.c_offset, ep.bias, ep.residual, ep.route, ep.post_norm
    if out is None:
        if c_offset != 0:
            raise ValueError("c_offset needs a preallocated `out` buffer")
        out = torch.empty(shape, dtype=dtype_ref.dtype, device=dtype_ref.device)
    check_dtype("out", out)
    if tuple(out.shape[:-1]) != tuple(out_rows):
        raise ValueError(f"out: expected shape {tuple(out_rows)} + (C_total,), got {tuple(out.shape)}")
    c_step = ep.c_step
    if c_step < 1:
        raise ValueError(f"c_step must be ≥ 1, got {c_step}")
    if c_offset < 0 or c_offset + (cout - 1) * c_step + 1 > out.shape[-1]:
        raise ValueError(f"out: channel slice [{c_offset}, {c_offset + (cout - 1) * c_step + 1}) (step {c_step}) "
                         f"exceeds its {out.shape[-1]} channels")
    stride_om = row_stride("out", out)
    if bias is not None:
        nb = 2 * cout if ep.carry is not None else cout
        if tuple(bias.shape) != (nb,):
            raise ValueError(f"bias: expected shape ({nb},), got {tuple(bias.shape)}")
        check_dtype("bias", bias)
        bias = bias.contiguous()
    if residual is not None:
        check_dtype("residual", residual)
        if residual.shape[-1] > 1 and residual.stride(-1) != 1:
            raise ValueError(f"residual: channel stride must be 1, got strides {residual.stride()}")
    stride_cm = 0
    if ep.carry is not None:
        check_dtype("highway carry", ep.carry)
        stride_cm = row_stride("highway carry", ep.carry, shape)
    route_buf, stride_qm, route_lo, route_hi, route_shift = out, 0, 0, 0, 0
    if route is not None:
        route_lo, route_hi, route_buf = route.lo, route.hi, route.into
        check_dtype("route", route_buf)
        if not 0 <= route_lo < route_hi <= cout:
            raise ValueError(f"route: channel range [{route_lo}, {route_hi}) is not inside [0, {cout})")
        if tuple(route_buf.shape[:-1]) != tuple(out_rows):
            raise ValueError(f"route: expected shape {tuple(out_rows)} + (C_total,), got {tuple(route_buf.shape)}")
        if route.at < 0 or route.at + route_hi - route_lo > route_buf.shape[-1]:
            raise ValueError(f"route: channel slice [{route.at}, {route.at + route_hi - route_lo}) exceeds "
                             f"its {route_buf.shape[-1]} channels")
        stride_qm, route_shift = row_stride("route", route_buf), route.at - route_lo
    if post_norm is not None:
        for name, v in zip(("post_norm scale", "post_norm shift"), post_norm):
            if tuple(v.shape) != (cout,) or v.dtype != torch.float32 or v.device != out.device:
                raise ValueError(f"{name}: expected an fp32 [{cout}] vector on {out.device}, got "
                                 f"{v.dtype} {tuple(v.shape)} on {v.device}")
    check_same_device(ref=dtype_ref, out=out, bias=bias, residual=residual, carry=ep.carry, route=route_buf)
    kwargs = dict(
        bias_ptr=bias if bias is not None else out,
        t_off=cout if ep.carry is not None else 0,
        res_ptr=residual if residual is not None else out,
        hw_c_ptr=ep.carry if ep.carry is not None else out,
        out_ptr=out,
        stride_cm=stride_cm,
        stride_om=stride_om,
        c_offset=c_offset,
        c_step=c_step,
        route_ptr=route_buf,
        stride_qm=stride_qm,
        route_lo=route_lo,
        route_hi=route_hi,
        route_shift=route_shift,
        post_scale_ptr=post_norm[0].contiguous() if post_norm is not None else out,
        post_shift_ptr=post_norm[1].contiguous() if post_norm is not None else out,
        scale=float(ep.scale),
        act_a=float(ep.act.a),
        act_s=float(ep.act.s),
        post_a=float(ep.post.a),
        post_s=float(ep.post.s),
        gate_a=float(ep.gate.a),
        gate_s=float(ep.gate.s),
        HAS_BIAS=bias is not None,
        HAS_RES=residual is not None,
        HIGHWAY=ep.carry is not None,
        ACT=act_code(ep.act.name),
        POST_ACT=act_code(ep.post.name),
        GATE_ACT=act_code(ep.gate.name),
        ROUTE=route is not None,
        POST_NORM=post_norm is not None,
    )
    return out, kwargs


def reads_output(buf: torch.Tensor, ep: Epilogue) -> bool:
    """Whether the epilogue reads the output's storage (an in-place residual add): autotuning must
    then restore the output between trials."""
    return any(shares_storage(buf, t) for t in (ep.residual, ep.carry) if t is not None)


def config(num_warps: int = 4, num_stages: int = 2, **blocks: int) -> triton.Config:
    return triton.Config(dict(blocks), num_warps=num_warps, num_stages=num_stages)


class Tuned:
    """A kernel under ``triton.autotune``, twice: `plain`, and `restoring` (which saves and restores
    ``out_ptr`` around each benchmarked config, for launches whose output aliases an input read by
    the epilogue, e.g. a residual added in place; a plain autotuner would re-apply it per trial)."""

    def __init__(self, kernel: Any, configs: list[triton.Config], key: list[str],
                 prune: Callable[..., list[triton.Config]] | None) -> None:
        prune_by = {"early_config_prune": prune} if prune is not None else None
        self.configs = configs
        self.plain = triton.autotune(configs=configs, key=key, prune_configs_by=prune_by)(kernel)
        self.restoring = triton.autotune(configs=configs, key=key, prune_configs_by=prune_by,
                                         restore_value=["out_ptr"])(kernel)


def autotuned(kernel: Any, configs: list[triton.Config], key: list[str], *,
              prune: Callable[..., list[triton.Config]] | None = None) -> Tuned:
    """The GPU path: `kernel` under ``triton.autotune``, keyed by problem shape (and, implicitly, dtypes)."""
    return Tuned(kernel, configs, key, prune)


def shares_storage(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    return a is not None and b is not None and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def _extent(t: torch.Tensor) -> tuple[int, int]:
    """[first, last] element offsets of t in its storage."""
    lo = hi = t.storage_offset()
    for size, stride in zip(t.shape, t.stride()):
        if size > 1:
            (lo, hi) = (lo + (size - 1) * stride, hi) if stride < 0 else (lo, hi + (size - 1) * stride)
    return lo, hi


def overlaps(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors may share elements. Channel slices of one channels-last buffer with the
    same row stride and disjoint channel ranges (DenseNet-style concat buffers) do not."""
    if not shares_storage(a, b) or a.numel() == 0 or b.numel() == 0:
        return False
    a_lo, a_hi = _extent(a)
    b_lo, b_hi = _extent(b)
    if a_hi < b_lo or b_hi < a_lo:
        return False
    try:
        ra, rb = row_stride("a", a), row_stride("b", b)
    except ValueError:
        return True
    if ra != rb or a.dim() < 2 or b.dim() < 2:
        return True
    ca, cb = a.storage_offset() % ra, b.storage_offset() % rb
    return not (ca + a.shape[-1] <= ra and cb + b.shape[-1] <= rb
                and (ca + a.shape[-1] <= cb or cb + b.shape[-1] <= ca))


def no_alias(out: torch.Tensor, **inputs: torch.Tensor | None) -> None:
    """Raise when `out` overlaps an input that other programs read (a race)."""
    for name, t in inputs.items():
        if t is not None and overlaps(out, t):
            raise ValueError(f"out overlaps {name}: this kernel cannot run in place")


def prune_by_extent(limits: dict[str, str | Callable[[dict[str, Any]], int]]) -> Callable[..., list[triton.Config]]:
    """An early-prune hook: keep the configs whose blocks overshoot the problem least.

    `limits` maps a block name to the kernel argument (or a function of the named args) giving the
    extent that block tiles. A block fits when it is at most ``max(16, next_pow2(extent))``; a
    config's overshoot is the sum over its blocks of log2(block / that bound) where positive. The
    configs with the least overshoot survive (all fitting ones when any fits).
    """

    def prune(configs: list[triton.Config], named_args: dict[str, Any], **kwargs: Any) -> list[triton.Config]:
        args = {**named_args, **kwargs}
        bound = {b: max(16, next_pow2(lim(args) if callable(lim) else int(args[lim]))) for b, lim in limits.items()}

        def overshoot(c: triton.Config) -> int:
            return sum(max(0, (c.kwargs[b] // bound[b]).bit_length() - 1) for b in limits if b in c.kwargs)

        best = min(overshoot(c) for c in configs)
        return [c for c in configs if overshoot(c) == best]

    return prune


def launch(raw: Any, tuned: Tuned, grid: Callable[[dict[str, Any]], tuple[int, ...]], args: dict[str, Any],
           pinned: triton.Config | dict[str, int] | None, default: Callable[[], triton.Config],
           in_place: bool = False) -> None:
    """Run a kernel: autotuned on a GPU, else with `pinned` or the `default()` config.

    `pinned` (a triton.Config or a dict of block sizes) forces a config on any device; tests use it
    to exercise multi-tile and masked paths. `in_place`: the output aliases an input, so autotuning
    must restore it between trials.
    """
    if pinned is None and not is_interpreted(raw):
        (tuned.restoring if in_place else tuned.plain)[grid](**args)
        return
    cfg = pinned if pinned is not None else default()
    if isinstance(cfg, dict):
        cfg = triton.Config(dict(cfg))
    meta = dict(cfg.kwargs)
    raw[grid](**args, **meta, num_warps=cfg.num_warps, num_stages=cfg.num_stages)


# --------------------------------------------------------------------------------------------
# Ahead-of-time compile specs (for GPU-less CI: triton.compile with ASTSource).
# --------------------------------------------------------------------------------------------


def signature(kernel: Any, ptr_dtypes: dict[str, str] | str, constexprs: dict[str, Any]) -> dict[str, str]:
    """A `triton.compiler.ASTSource` signature for `kernel`, by argument name.

    Arguments named ``*_ptr`` are pointers (element type from `ptr_dtypes`, a dict by name with
    key ``"*"`` as default, or one dtype string), names in FLOAT_ARGS are fp32, constexprs are
    ``"constexpr"``, and every other argument is i32.
    """
    if isinstance(ptr_dtypes, str):
        ptr_dtypes = {"*": ptr_dtypes}
    sig = {}
    for name in kernel.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name] = "*" + ptr_dtypes.get(name, ptr_dtypes["*"])
        elif name in FLOAT_ARGS:
            sig[name] = "fp32"
        else:
            sig[name] = "i32"
    return sig
