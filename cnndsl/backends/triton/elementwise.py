"""Element-wise kernels on NHWC maps (or [N, F] rows) with a broadcast second operand.

    broadcast_binary(x, y, op="mul", out=None, act=Act())   out = act(x·y), act(PReLU), act(x·scale + y),
                                                         act(x·y + z) (a per-channel affine) or act(x)
    channel_shuffle(x, groups, out=None)          ShuffleNet's channel shuffle: a permutation of each pixel's
                                                  channels (one group: a strided copy, e.g. into a concat slice)

`y` broadcasts against `x` by PyTorch's rules (stride 0 on its size-1 dims), which covers the ops
the passes leave standing: a squeeze-and-excitation gate ``[N, 1, 1, C]`` times its map (`mul`), a
per-channel vector ``[C]`` (an unfolded `layerscale`, `prelu channels=true`, a batch norm's scale
and shift that nothing could absorb) and one slope ``[1]`` (`prelu`); `add` sums two maps of one
shape (a residual the passes could not fuse into a conv, e.g. after an SE gate). `act` is any
activation of the registry (`activations.activation`), so a standalone activation is `op="none"`.
One program tiles ``BLOCK_P`` pixels by ``BLOCK_C`` channels; maths in fp32, stored in the
output's dtype.
"""

import torch
import triton
import triton.language as tl

from cnndsl.backends.triton import _common as C
from cnndsl.backends.triton.activations import act_code, activation
from cnndsl.backends.triton.epilogue import Act

NO_ACT = Act()
OPS = {"mul": 0, "prelu": 1, "add": 2, "affine": 3, "none": 4}
"""The binary ops the kernel knows, by the code its ``OP`` constexpr takes."""


@triton.jit
def _binary_kernel(
    x_ptr,  # first operand [N, H, W, C]: (n, h, w, c) at n*sxn + h*sxh + w*sxw + c
    y_ptr,  # second operand, broadcast: (n, h, w, c) at n*syn + h*syh + w*syw + c*syc (stride 0: broadcast)
    z_ptr,  # affine: the shift, laid out as y
    out_ptr,  # output [N, H, W, C]: (n, h, w, c) at n*son + h*soh + w*sow + c
    P, H, W, C,  # pixels N*H*W, grid and channels
    sxn, sxh, sxw,  # x strides (elements; channel stride 1)
    syn, syh, syw, syc,  # y strides (0 on broadcast dims)
    son, soh, sow,  # out strides (channel stride 1)
    scale,  # add: x·scale + y (a scaled residual)
    act_a, act_s,  # the activation's scalars
    OP: tl.constexpr,  # 0: x·y; 1: PReLU, x if x ≥ 0 else y·x; 2: x·scale + y; 3: x·y + z; 4: x
    ACT: tl.constexpr,  # then this activation (activations.ACTIVATIONS; 0: none)
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    w = p % W
    h = (p // W) % H
    n = (p // W) // H
    mask = (p < P)[:, None] & (c < C)[None, :]
    n64, h64, w64, c64 = n.to(tl.int64), h.to(tl.int64), w.to(tl.int64), c.to(tl.int64)
    xo = (n64 * sxn + h64 * sxh + w64 * sxw)[:, None] + c64[None, :]
    yo = (n64 * syn + h64 * syh + w64 * syw)[:, None] + (c64 * syc)[None, :]
    oo = (n64 * son + h64 * soh + w64 * sow)[:, None] + c64[None, :]
    x = tl.load(x_ptr + xo, mask=mask, other=0.0).to(tl.float32)
    if OP == 4:
        r = x
    else:
        y = tl.load(y_ptr + yo, mask=mask, other=0.0).to(tl.float32)
        if OP == 0:
            r = x * y
        elif OP == 1:
            r = tl.where(x >= 0.0, x, y * x)
        elif OP == 2:
            r = x * scale + y
        else:
            r = x * y + tl.load(z_ptr + yo, mask=mask, other=0.0).to(tl.float32)
    r = activation(r, ACT, act_a, act_s)
    tl.store(out_ptr + oo, r.to(out_ptr.dtype.element_ty), mask=mask)


_CONFIGS = [
    C.config(BLOCK_P=16, BLOCK_C=64, num_warps=4),
    C.config(BLOCK_P=64, BLOCK_C=32, num_warps=4),
    C.config(BLOCK_P=128, BLOCK_C=64, num_warps=8),
    C.config(BLOCK_P=256, BLOCK_C=16, num_warps=4),
]
_tuned = C.autotuned(_binary_kernel, _CONFIGS, ["P", "C", "OP", "ACT"], prune=C.prune_by_extent({"BLOCK_P": "P",
                                                                                         "BLOCK_C": "C"}))


def _as_nhwc(name: str, t: torch.Tensor) -> torch.Tensor:
    """A map [N, H, W, C] as it is, a row tensor [N, F] as [N, 1, 1, F]; the channel stride must be 1."""
    if t.dim() == 2:
        t = t[:, None, None, :]
    if t.dim() != 4:
        raise ValueError(f"{name}: expected an NHWC map or [N, F] rows, got shape {tuple(t.shape)}")
    if t.shape[-1] > 1 and t.stride(-1) != 1:
        raise ValueError(f"{name}: channel (last) stride must be 1, got strides {t.stride()}")
    return t


def broadcast_binary(
    x: torch.Tensor,
    y: torch.Tensor | None,
    op: str = "mul",
    *,
    shift: torch.Tensor | None = None,
    scale: float = 1.0,
    act: Act = NO_ACT,
    out: torch.Tensor | None = None,
    config: triton.Config | dict | None = None,
) -> torch.Tensor:
    """act(`op` of x and y broadcast to x's shape) (see the module docstring); returns out.

    x and out: NHWC maps or [N, F] rows with unit channel stride (channel slices of a larger buffer
    allowed); out defaults to a new tensor like x and may be x itself (each element is read by the
    program that writes it). y: None for `op="none"`; `shift`: the affine's, shaped like y.
    `config` may pin ``BLOCK_P`` and ``BLOCK_C``.
    """
    if op not in OPS:
        raise ValueError(f"op must be one of {', '.join(OPS)}, got {op!r}")
    if (y is None) != (op == "none") or (shift is not None) != (op == "affine"):
        raise ValueError(f"op {op!r}: y is needed except for op='none', shift for op='affine' only")
    y = x if y is None else y
    C.check_dtype("x", x)
    C.check_dtype("y", y)
    try:
        yb = y.expand(x.shape)
        zb = yb if shift is None else shift.expand(x.shape)
    except RuntimeError:
        raise ValueError(f"y of shape {tuple(y.shape)} does not broadcast to x's {tuple(x.shape)}") from None
    if shift is not None and (shift.shape != y.shape or zb.stride() != yb.stride()):
        raise ValueError(f"shift: expected y's shape {tuple(y.shape)} and layout, got {tuple(shift.shape)}")
    if out is None:
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
    if tuple(out.shape) != tuple(x.shape):
        raise ValueError(f"out: expected shape {tuple(x.shape)}, got {tuple(out.shape)}")
    C.check_dtype("out", out)
    C.check_same_device(x=x, y=y, shift=shift, out=out)
    x4, o4 = _as_nhwc("x", x), _as_nhwc("out", out)
    y4, z4 = ((t[:, None, None, :] if t.dim() == 2 else t) for t in (yb, zb))
    if not C.shares_storage(out, x) and op != "none":
        C.no_alias(out, y=y)
    n, h, w, c = x4.shape
    p = n * h * w
    args = dict(x_ptr=x4, y_ptr=y4, z_ptr=z4, out_ptr=o4, P=p, H=h, W=w, C=c,
                sxn=x4.stride(0), sxh=x4.stride(1), sxw=x4.stride(2),
                syn=y4.stride(0), syh=y4.stride(1), syw=y4.stride(2), syc=y4.stride(3),
                son=o4.stride(0), soh=o4.stride(1), sow=o4.stride(2), scale=float(scale),
                act_a=float(act.a), act_s=float(act.s), OP=OPS[op], ACT=act_code(act.name))
    if p == 0 or c == 0:
        return out

    def grid(meta):
        return (triton.cdiv(p, meta["BLOCK_P"]), triton.cdiv(c, meta["BLOCK_C"]))

    C.launch(_binary_kernel, _tuned, grid, args, config,
             lambda: C.config(BLOCK_P=C.clamp_pow2(p, 16, 64), BLOCK_C=C.clamp_pow2(c, 16, 64)),
             in_place=C.shares_storage(out, x))
    return out


@triton.jit
def _shuffle_kernel(
    x_ptr,  # input rows [M, C]: (m, c) at m*stride_xm + c
    out_ptr,  # output rows: (m, o) at m*stride_om + o*stride_oc, o = j*G + i reading input channel i*(C/G) + j
    M, C, G,  # rows (pixels), channels, groups
    stride_xm, stride_om, stride_oc,
    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
):
    m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    o = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    src = (o % G) * (C // G) + o // G
    mask = (m < M)[:, None] & (o < C)[None, :]
    m64 = m.to(tl.int64)[:, None]
    v = tl.load(x_ptr + m64 * stride_xm + src[None, :], mask=mask, other=0.0)
    tl.store(out_ptr + m64 * stride_om + o[None, :] * stride_oc, v.to(out_ptr.dtype.element_ty), mask=mask)


_SHUFFLE_CONFIGS = [C.config(BLOCK_M=16, BLOCK_C=64), C.config(BLOCK_M=64, BLOCK_C=64), C.config(BLOCK_M=128, BLOCK_C=32)]
_shuffle_tuned = C.autotuned(_shuffle_kernel, _SHUFFLE_CONFIGS, ["M", "C"],
                             prune=C.prune_by_extent({"BLOCK_M": "M", "BLOCK_C": "C"}))


def channel_shuffle(x: torch.Tensor, groups: int, *, out: torch.Tensor | None = None,
                    config: triton.Config | dict | None = None) -> torch.Tensor:
    """torchvision's channel_shuffle on the channels of an NHWC map (or [N, C] rows); returns out.

    x and out viewable as ``[rows, C]`` (channel slices allowed; out's channels may be strided: one
    group then copies into every k-th channel of a shuffled concat); out must not overlap x (a
    permutation reads other programs' channels).
    """
    C.check_dtype("x", x)
    c = x.shape[-1]
    if groups < 1 or c % groups:
        raise ValueError(f"groups ({groups}) must divide the channels ({c})")
    stride_xm = C.row_stride("x", x)
    if out is None:
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
    C.check_dtype("out", out)
    stride_om = C.row_stride("out", out, tuple(x.shape), any_channel_step=True)
    C.check_same_device(x=x, out=out)
    C.no_alias(out, x=x)
    m = x.numel() // c if c else 0
    if m == 0:
        return out
    args = dict(x_ptr=x, out_ptr=out, M=m, C=c, G=groups, stride_xm=stride_xm, stride_om=stride_om,
                stride_oc=out.stride(-1) if c > 1 else 1)

    def grid(meta):
        return (triton.cdiv(m, meta["BLOCK_M"]), triton.cdiv(c, meta["BLOCK_C"]))

    C.launch(_shuffle_kernel, _shuffle_tuned, grid, args, config,
             lambda: C.config(BLOCK_M=C.clamp_pow2(m, 16, 64), BLOCK_C=C.clamp_pow2(c, 16, 64)))
    return out


def compile_specs(dtype: str = "fp16") -> list[tuple[object, dict[str, str], dict[str, object]]]:
    """Representative ``(kernel, signature, constexprs)`` tuples (each binary op, one with an fp32 parameter
    operand; the shuffle), for `triton.compile`."""
    specs = []
    for code, y_dtype in ((0, dtype), (1, "fp32"), (2, dtype), (3, "fp32"), (4, dtype)):
        cst = dict(OP=code, ACT=act_code("relu"), BLOCK_P=64, BLOCK_C=32)
        specs.append((_binary_kernel, C.signature(_binary_kernel, {"*": dtype, "y_ptr": y_dtype, "z_ptr": y_dtype}, cst),
                      cst))
    cst = dict(BLOCK_M=64, BLOCK_C=64)
    specs.append((_shuffle_kernel, C.signature(_shuffle_kernel, dtype, cst), cst))
    return specs
