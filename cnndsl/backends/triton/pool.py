"""Max and average pooling over NHWC feature maps (windowed, adaptive and global), and upsampling.

* ``_pool_kernel``: one tile of ``BLOCK_P`` output pixels × ``BLOCK_C`` channels per program,
  looping over the window taps. Windowed pooling follows PyTorch's ``max_pool2d`` /
  ``avg_pool2d`` (kernel, stride, padding, ``ceil_mode``, ``count_include_pad``; no dilation,
  which the IR's pools do not have); adaptive pooling (``adaptive_{max,avg}_pool2d``) uses the windows
  ``[⌊i·H/OH⌋, ⌈(i+1)·H/OH⌉)``, looping over the largest window with masks.
* ``_global_pool_kernel``: global max/average, one image × ``BLOCK_C`` channels per program,
  reducing ``BLOCK_HW`` pixels per step.

* ``_upsample_kernel``: nearest or bilinear upsampling by integer factors, as ``nn.Upsample``
  (``align_corners`` either way), one tile of ``BLOCK_P`` output pixels × ``BLOCK_C`` channels.

Outputs may go to a channel slice ``[c_offset, c_offset + C)`` of a larger NHWC buffer (concat
elimination, e.g. the max-pool branch of Inception's reduction blocks). Max pooling does not
propagate NaN the way PyTorch does (tl.maximum drops it).
"""

import torch
import triton
import triton.language as tl

from cnndsl.backends.triton import _common as C
from cnndsl.ir.opdef import conv_out


@triton.jit
def _pool_kernel(
    x_ptr,  # input [N, H, W, C]: element (n, h, w, c) at n*stride_xn + h*stride_xh + w*stride_xw + c
    out_ptr,  # output rows [N*OH*OW, C_total]: (p, c) stored at p*stride_op + c_offset + c
    N, H, W, C,  # input size
    OH, OW,  # output size
    KH, KW,  # window size (adaptive: the largest window)
    SH, SW,  # stride (unused when ADAPTIVE)
    PH, PW,  # top / left padding (unused when ADAPTIVE)
    stride_xn,  # input batch stride (elements)
    stride_xh,  # input row stride
    stride_xw,  # input pixel stride (the channel stride is 1)
    stride_op,  # output row (pixel) stride
    c_offset,  # first channel of this layer's slice in the output buffer
    IS_MAX: tl.constexpr,  # max (True) or average (False)
    ADAPTIVE: tl.constexpr,  # adaptive windows over an OH x OW grid
    COUNT_INCLUDE_PAD: tl.constexpr,  # average: divide by the padded window size
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pid_p = tl.program_id(0)
    pid_c = tl.program_id(1)
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_p = offs_p < N * OH * OW
    mask_c = offs_c < C
    ow = offs_p % OW
    t = offs_p // OW
    oh = t % OH
    nb = t // OH
    if ADAPTIVE:
        hs = (oh * H) // OH
        he = ((oh + 1) * H + OH - 1) // OH
        ws = (ow * W) // OW
        we = ((ow + 1) * W + OW - 1) // OW
        lo_h = hs
        lo_w = ws
        hi_h = he
        hi_w = we
    else:
        hs = oh * SH - PH
        ws = ow * SW - PW
        lo_h = tl.zeros_like(hs)
        lo_w = tl.zeros_like(ws)
        hi_h = tl.zeros_like(hs) + H
        hi_w = tl.zeros_like(ws) + W
    x_base = x_ptr + nb.to(tl.int64) * stride_xn

    if IS_MAX:
        acc = tl.full((BLOCK_P, BLOCK_C), float("-inf"), dtype=tl.float32)
    else:
        acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    cnt = tl.zeros((BLOCK_P,), dtype=tl.float32)
    for kh in range(0, KH):
        ih = hs + kh
        ok_h = mask_p & (ih >= lo_h) & (ih < hi_h)
        for kw in range(0, KW):
            iw = ws + kw
            ok = ok_h & (iw >= lo_w) & (iw < hi_w)
            ptrs = (x_base + ih * stride_xh + iw * stride_xw)[:, None] + offs_c[None, :]
            ld = ok[:, None] & mask_c[None, :]
            if IS_MAX:
                v = tl.load(ptrs, mask=ld, other=float("-inf")).to(tl.float32)
                acc = tl.maximum(acc, v)
            else:
                v = tl.load(ptrs, mask=ld, other=0.0).to(tl.float32)
                acc += v
            cnt += ok.to(tl.float32)
    if not IS_MAX:
        if COUNT_INCLUDE_PAD and not ADAPTIVE:
            div = ((tl.minimum(hs + KH, H + PH) - hs) * (tl.minimum(ws + KW, W + PW) - ws)).to(tl.float32)
        else:
            div = cnt
        acc = acc / tl.maximum(div, 1.0)[:, None]
    out_ptrs = out_ptr + offs_p.to(tl.int64)[:, None] * stride_op + c_offset + offs_c[None, :]
    tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=mask_p[:, None] & mask_c[None, :])


@triton.jit
def _global_pool_kernel(
    x_ptr,  # input [N, H*W, C]: element (n, p, c) at n*stride_xn + p*stride_xp + c
    out_ptr,  # output [N, C_total]: (n, c) stored at n*stride_on + c_offset + c
    HW, C,  # pixels per image, channels
    stride_xn,  # input batch stride (elements)
    stride_xp,  # input pixel stride (the channel stride is 1)
    stride_on,  # output row stride
    c_offset,  # first channel of this layer's slice in the output buffer
    IS_MAX: tl.constexpr,  # max (True) or average (False)
    BLOCK_HW: tl.constexpr, BLOCK_C: tl.constexpr,
):
    nb = tl.program_id(0)
    pid_c = tl.program_id(1)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_c = offs_c < C
    x_base = x_ptr + nb.to(tl.int64) * stride_xn
    if IS_MAX:
        acc = tl.full((BLOCK_C,), float("-inf"), dtype=tl.float32)
    else:
        acc = tl.zeros((BLOCK_C,), dtype=tl.float32)
    for p0 in range(0, HW, BLOCK_HW):
        offs_p = p0 + tl.arange(0, BLOCK_HW)
        ld = (offs_p < HW)[:, None] & mask_c[None, :]
        ptrs = x_base + offs_p[:, None] * stride_xp + offs_c[None, :]
        if IS_MAX:
            v = tl.load(ptrs, mask=ld, other=float("-inf")).to(tl.float32)
            acc = tl.maximum(acc, tl.max(v, axis=0))
        else:
            v = tl.load(ptrs, mask=ld, other=0.0).to(tl.float32)
            acc += tl.sum(v, axis=0)
    if not IS_MAX:
        acc = acc / HW
    tl.store(out_ptr + nb.to(tl.int64) * stride_on + c_offset + offs_c, acc.to(out_ptr.dtype.element_ty), mask=mask_c)


@triton.jit
def _upsample_kernel(
    x_ptr,  # input [N, H, W, C]: element (n, h, w, c) at n*stride_xn + h*stride_xh + w*stride_xw + c
    out_ptr,  # output rows [N*OH*OW, C_total]: (p, c) stored at p*stride_op + c_offset + c
    N, H, W, C, OH, OW,
    SH, SW,  # the integer factors (OH = H*SH, OW = W*SW)
    RH, RW,  # bilinear: source pixels per output pixel ((H-1)/(OH-1) with align_corners, else 1/SH)
    stride_xn, stride_xh, stride_xw, stride_op, c_offset,
    BILINEAR: tl.constexpr, ALIGN: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    offs_p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_p = offs_p < N * OH * OW
    mask = mask_p[:, None] & (offs_c < C)[None, :]
    ow = offs_p % OW
    t = offs_p // OW
    oh = t % OH
    x_base = x_ptr + (t // OH).to(tl.int64) * stride_xn
    if BILINEAR:
        if ALIGN:
            fh = oh.to(tl.float32) * RH
            fw = ow.to(tl.float32) * RW
        else:  # PyTorch's half-pixel centres, clamped at 0
            fh = tl.maximum((oh.to(tl.float32) + 0.5) * RH - 0.5, 0.0)
            fw = tl.maximum((ow.to(tl.float32) + 0.5) * RW - 0.5, 0.0)
        h0 = tl.minimum(fh.to(tl.int32), H - 1)
        w0 = tl.minimum(fw.to(tl.int32), W - 1)
        h1 = tl.minimum(h0 + 1, H - 1)
        w1 = tl.minimum(w0 + 1, W - 1)
        lh = (fh - h0.to(tl.float32))[:, None]
        lw = (fw - w0.to(tl.float32))[:, None]
        c = offs_c[None, :]
        v00 = tl.load((x_base + h0 * stride_xh + w0 * stride_xw)[:, None] + c, mask=mask, other=0.0).to(tl.float32)
        v01 = tl.load((x_base + h0 * stride_xh + w1 * stride_xw)[:, None] + c, mask=mask, other=0.0).to(tl.float32)
        v10 = tl.load((x_base + h1 * stride_xh + w0 * stride_xw)[:, None] + c, mask=mask, other=0.0).to(tl.float32)
        v11 = tl.load((x_base + h1 * stride_xh + w1 * stride_xw)[:, None] + c, mask=mask, other=0.0).to(tl.float32)
        v = (1.0 - lh) * ((1.0 - lw) * v00 + lw * v01) + lh * ((1.0 - lw) * v10 + lw * v11)
    else:
        ptrs = (x_base + (oh // SH) * stride_xh + (ow // SW) * stride_xw)[:, None] + offs_c[None, :]
        v = tl.load(ptrs, mask=mask, other=0.0)
    out_ptrs = out_ptr + offs_p.to(tl.int64)[:, None] * stride_op + c_offset + offs_c[None, :]
    tl.store(out_ptrs, v.to(out_ptr.dtype.element_ty), mask=mask)


_POOL_CONFIGS = [
    C.config(BLOCK_P=16, BLOCK_C=64, num_warps=4),
    C.config(BLOCK_P=32, BLOCK_C=32, num_warps=4),
    C.config(BLOCK_P=8, BLOCK_C=128, num_warps=4),
    C.config(BLOCK_P=64, BLOCK_C=16, num_warps=4),
]
_GLOBAL_CONFIGS = [
    C.config(BLOCK_HW=32, BLOCK_C=64, num_warps=4),
    C.config(BLOCK_HW=16, BLOCK_C=128, num_warps=4),
    C.config(BLOCK_HW=64, BLOCK_C=32, num_warps=4),
]
_pool_tuned = C.autotuned(_pool_kernel, _POOL_CONFIGS, ["N", "H", "W", "C", "OH", "OW", "KH", "KW"],
                          prune=C.prune_by_extent({"BLOCK_C": "C"}))
_upsample_tuned = C.autotuned(_upsample_kernel, _POOL_CONFIGS, ["N", "OH", "OW", "C"],
                              prune=C.prune_by_extent({"BLOCK_C": "C"}))
_global_tuned = C.autotuned(_global_pool_kernel, _GLOBAL_CONFIGS, ["HW", "C"],
                            prune=C.prune_by_extent({"BLOCK_C": "C", "BLOCK_HW": "HW"}))


def _output_buffer(x: torch.Tensor, rows: tuple[int, ...], c: int, out: torch.Tensor | None,
                   c_offset: int) -> tuple[torch.Tensor, int]:
    if out is None:
        if c_offset:
            raise ValueError("c_offset needs a preallocated `out` buffer")
        out = torch.empty(rows + (c,), dtype=x.dtype, device=x.device)
    C.check_dtype("out", out)
    if tuple(out.shape[:-1]) != rows:
        raise ValueError(f"out: expected shape {rows} + (C_total,), got {tuple(out.shape)}")
    if c_offset < 0 or c_offset + c > out.shape[-1]:
        raise ValueError(f"out: channel slice [{c_offset}, {c_offset + c}) exceeds its {out.shape[-1]} channels")
    C.check_same_device(x=x, out=out)
    C.no_alias(out[..., c_offset:c_offset + c], x=x)
    return out, C.row_stride("out", out)


def _launch_tiles(kernel, tuned, args: dict, config, p: int, c: int, buf: torch.Tensor,
                  c_offset: int) -> torch.Tensor:
    """Launch a kernel tiled as BLOCK_P output pixels × BLOCK_C channels; return the channel slice written."""
    def grid(meta):
        return (triton.cdiv(p, meta["BLOCK_P"]), triton.cdiv(c, meta["BLOCK_C"]))

    C.launch(kernel, tuned, grid, args, config,
             lambda: C.config(BLOCK_P=C.clamp_pow2(p, 16, 128), BLOCK_C=C.clamp_pow2(c, 16, 64)))
    return buf[..., c_offset:c_offset + c]


def pool2d(
    x: torch.Tensor,
    mode: str,
    kernel_size: int | tuple[int, int] | None = None,
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    *,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    output_size: int | tuple[int, int] | None = None,
    out: torch.Tensor | None = None,
    c_offset: int = 0,
    config: triton.Config | dict | None = None,
) -> torch.Tensor:
    """NHWC max (`mode="max"`) or average (`mode="avg"`) pooling; returns the written view.

    Windowed: `kernel_size`, `stride` (default: the kernel), symmetric `padding` (per axis),
    `ceil_mode`, `count_include_pad` (avg), as PyTorch. Adaptive: pass
    `output_size` instead of `kernel_size`. out: None or a pixel-uniform ``[N, OH, OW, C_total]``
    buffer written at channels ``[c_offset, c_offset + C)``.
    """
    if mode not in ("max", "avg"):
        raise ValueError(f"mode: expected 'max' or 'avg', got {mode!r}")
    if x.dim() != 4:
        raise ValueError(f"x: expected NHWC [N, H, W, C], got shape {tuple(x.shape)}")
    C.check_dtype("x", x)
    if x.shape[-1] > 1 and x.stride(-1) != 1:
        raise ValueError(f"x: channel stride must be 1 (NHWC), got strides {x.stride()}")
    n, h, w, c = x.shape
    adaptive = output_size is not None
    if adaptive == (kernel_size is not None):
        raise ValueError("pass exactly one of kernel_size (windowed) and output_size (adaptive)")
    if adaptive:
        oh, ow = C.pair(output_size, "output_size")
        if oh < 1 or ow < 1:
            raise ValueError(f"output_size must be ≥ 1, got {(oh, ow)}")
        kh = max(-(-((i + 1) * h) // oh) - (i * h) // oh for i in range(oh))
        kw = max(-(-((j + 1) * w) // ow) - (j * w) // ow for j in range(ow))
        sh = sw = 1
        ph = pw = 0
    else:
        kh, kw = C.pair(kernel_size, "kernel_size")
        sh, sw = C.pair(stride if stride is not None else (kh, kw), "stride")
        ph, pw = C.pair(padding, "padding")
        if min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0:
            raise ValueError("kernel and stride must be ≥ 1, padding ≥ 0")
        if 2 * ph > kh or 2 * pw > kw:
            raise ValueError(f"padding {(ph, pw)} must be at most half the kernel {(kh, kw)}")
        oh = conv_out(h, kh, sh, ph, ph, 1, ceil_mode)
        ow = conv_out(w, kw, sw, pw, pw, 1, ceil_mode)
        if oh < 1 or ow < 1:
            raise ValueError(f"output would be empty: input {h}x{w}, kernel {kh}x{kw}")
    buf, stride_op = _output_buffer(x, (n, oh, ow), c, out, c_offset)
    args = dict(x_ptr=x, out_ptr=buf, N=n, H=h, W=w, C=c, OH=oh, OW=ow, KH=kh, KW=kw, SH=sh, SW=sw, PH=ph, PW=pw,
                stride_xn=x.stride(0), stride_xh=x.stride(1), stride_xw=x.stride(2),
                stride_op=stride_op, c_offset=c_offset, IS_MAX=mode == "max", ADAPTIVE=adaptive,
                COUNT_INCLUDE_PAD=bool(count_include_pad))
    return _launch_tiles(_pool_kernel, _pool_tuned, args, config, n * oh * ow, c, buf, c_offset)


def global_pool2d(
    x: torch.Tensor,
    mode: str = "avg",
    *,
    out: torch.Tensor | None = None,
    c_offset: int = 0,
    config: triton.Config | dict | None = None,
) -> torch.Tensor:
    """Global max/average pooling of NHWC ``[N, H, W, C]`` → ``[N, 1, 1, C]``; returns the written view.

    out: None or an ``[N, 1, 1, C_total]`` buffer written at channels ``[c_offset, c_offset + C)``.
    """
    if mode not in ("max", "avg"):
        raise ValueError(f"mode: expected 'max' or 'avg', got {mode!r}")
    if x.dim() != 4:
        raise ValueError(f"x: expected NHWC [N, H, W, C], got shape {tuple(x.shape)}")
    C.check_dtype("x", x)
    n, h, w, c = x.shape
    try:
        x3 = x.view(n, h * w, c)  # each image's pixels must be uniformly strided
    except RuntimeError:
        x3 = x.reshape(n, h * w, c)
    if c > 1 and x3.stride(-1) != 1:
        raise ValueError(f"x: channel stride must be 1 (NHWC), got strides {x.stride()}")
    buf, stride_on = _output_buffer(x, (n, 1, 1), c, out, c_offset)
    args = dict(x_ptr=x3, out_ptr=buf, HW=h * w, C=c, stride_xn=x3.stride(0), stride_xp=x3.stride(1),
                stride_on=stride_on, c_offset=c_offset, IS_MAX=mode == "max")

    def grid(meta):
        return (n, triton.cdiv(c, meta["BLOCK_C"]))

    C.launch(_global_pool_kernel, _global_tuned, grid, args, config,
             lambda: C.config(BLOCK_HW=C.clamp_pow2(h * w, 16, 256), BLOCK_C=C.clamp_pow2(c, 16, 128)))
    return buf[..., c_offset:c_offset + c]


def upsample2d(
    x: torch.Tensor,
    scale: int | tuple[int, int],
    mode: str = "nearest",
    *,
    align_corners: bool = False,
    out: torch.Tensor | None = None,
    c_offset: int = 0,
    config: triton.Config | dict | None = None,
) -> torch.Tensor:
    """NHWC upsampling by integer factors, as ``nn.Upsample(scale_factor=scale, mode=mode,
    align_corners=...)`` (mode "nearest" or "bilinear"); returns the written view.

    out: None or an ``[N, H·sh, W·sw, C_total]`` buffer written at channels ``[c_offset, c_offset + C)``.
    """
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"mode: expected 'nearest' or 'bilinear', got {mode!r}")
    if x.dim() != 4:
        raise ValueError(f"x: expected NHWC [N, H, W, C], got shape {tuple(x.shape)}")
    C.check_dtype("x", x)
    if x.shape[-1] > 1 and x.stride(-1) != 1:
        raise ValueError(f"x: channel stride must be 1 (NHWC), got strides {x.stride()}")
    sh, sw = C.pair(scale, "scale")
    if min(sh, sw) < 1:
        raise ValueError(f"scale must be ≥ 1, got {(sh, sw)}")
    n, h, w, c = x.shape
    oh, ow = h * sh, w * sw
    if align_corners:
        rh = (h - 1) / (oh - 1) if oh > 1 else 0.0
        rw = (w - 1) / (ow - 1) if ow > 1 else 0.0
    else:
        rh, rw = 1.0 / sh, 1.0 / sw
    buf, stride_op = _output_buffer(x, (n, oh, ow), c, out, c_offset)
    args = dict(x_ptr=x, out_ptr=buf, N=n, H=h, W=w, C=c, OH=oh, OW=ow, SH=sh, SW=sw, RH=rh, RW=rw,
                stride_xn=x.stride(0), stride_xh=x.stride(1), stride_xw=x.stride(2), stride_op=stride_op,
                c_offset=c_offset, BILINEAR=mode == "bilinear", ALIGN=bool(align_corners))
    return _launch_tiles(_upsample_kernel, _upsample_tuned, args, config, n * oh * ow, c, buf, c_offset)


def compile_specs(dtype: str = "fp16") -> list[tuple[object, dict[str, str], dict[str, object]]]:
    """Representative ``(kernel, signature, constexprs)`` tuples, for `triton.compile`."""
    win = dict(IS_MAX=False, ADAPTIVE=False, COUNT_INCLUDE_PAD=True, BLOCK_P=16, BLOCK_C=64)
    glob = dict(IS_MAX=False, BLOCK_HW=32, BLOCK_C=64)
    up = dict(BILINEAR=True, ALIGN=False, BLOCK_P=16, BLOCK_C=64)
    return [
        (_upsample_kernel, C.signature(_upsample_kernel, dtype, up), up),
        (_pool_kernel, C.signature(_pool_kernel, dtype, win), win),
        (_global_pool_kernel, C.signature(_global_pool_kernel, dtype, glob), glob),
    ]


