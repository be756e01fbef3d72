"""2-D convolution in NHWC as an implicit GEMM, with a fused epilogue and concat-slice output.

The convolution of ``x [N, H, W, C_in]`` with ``G`` groups is, per group, a GEMM
``[M = N·OH·OW, K = KH·KW·C_in/G] @ [K, C_out/G]`` whose A operand is gathered on the fly from the
input (never materialised: the "implicit" GEMM). Three kernels share the epilogue:

* ``_conv_igemm_kernel``: the general implicit GEMM (any kernel size, stride, padding, dilation,
  groups), one tile of ``BLOCK_M`` output pixels × ``BLOCK_N`` output channels of one group per
  program, reducing over the flattened ``(kh, kw, ci)`` axis in ``BLOCK_K`` steps with ``tl.dot``.
* ``_conv_direct_kernel``: grouped convolutions whose groups are too narrow for ``tl.dot`` tiles
  (depthwise above all): per-channel multiply-accumulate over the taps, no dot.
* 1x1, stride 1, unpadded, ungrouped convolutions go to `cnndsl.backends.triton.gemm` as a plain
  GEMM over the ``[N·H·W, C_in]`` pixel matrix.

Weight packing (`pack_conv_weight`): PyTorch's ``[C_out, C_in/G, KH, KW]`` becomes a contiguous
``[KH, KW, C_in/G, C_out]`` tensor ("HWIO"), i.e. a ``[KH·KW·C_in/G, C_out]`` matrix whose row
``(kh·KW + kw)·C_in/G + ci`` holds tap (kh, kw) of input channel ci of each output channel; output
channel ``co`` belongs to group ``co // (C_out/G)``, as in PyTorch. The IR's ``highway_conv``
weight ``[2·C_out, C_in, KH, KW]`` (H's rows, then T's) packs the same way into 2·C_out columns.

Prologue (``_conv_igemm_kernel`` only; the IR's ``fused_conv`` with ``pre``): a `Prologue`
makes each loaded input value ``act(x·scale[c] + shift[c])`` before the dot, padding staying zero:
a pre-activation ``bn -> relu`` that cannot fold into any weights runs inside the conv reading it.
Input gate (igemm only; ``fused_conv`` with ``in_gate``): ``gate [N, C_in]`` multiplies each loaded
value by its sample's and channel's gate first, so a squeeze-and-excitation product is never stored.

Epilogue: one `Epilogue` (epilogue.py, shared with gemm.py; run by `_common.epilogue_store`).
ResNet: bias = folded BN, ``residual`` = shortcut (or the unpadded option-A shortcut with
``res_stride``), ``post=Act("relu")``. Inception-ResNet: ``scale`` = the block scale. "ReLU then
add" (SqueezeNet bypass): ``act=Act("relu")`` + ``residual``. Highway layers (the IR's
``highway_conv``): ``carry`` with the stacked ``[W_H | W_T]`` weights.
"""

from dataclasses import replace

import torch
import triton
import triton.language as tl

from cnndsl.backends.triton import _common as C
from cnndsl.backends.triton._common import dot_acc, epilogue_store
from cnndsl.backends.triton.activations import activation
from cnndsl.backends.triton.epilogue import Epilogue, Prologue
from cnndsl.backends.triton.gemm import linear
from cnndsl.ir.opdef import conv_out

# --------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------


@triton.jit
def _conv_igemm_kernel(
    x_ptr,  # input [N, H, W, C_in]; element (n, h, w, c) at n*stride_xn + h*stride_xh + w*stride_xw + c
    w_ptr,  # packed weights [KH*KW*C_IN_G, C_w]; element (k, co) at k*stride_wk + co (T's columns at t_off + co)
    bias_ptr,  # bias [C_w] (read only when HAS_BIAS)
    pre_scale_ptr, pre_shift_ptr,  # fp32 [C_in] prologue x ← pre_act(x·scale[c] + shift[c]) (PRE)
    gate_ptr,  # input gate [N, C_in]: (n, c) at n*stride_gn + c; x ← x·gate[n, c] as loaded (GATE_IN)
    res_ptr,  # residual [N, HR, WR, C_RES]: (n, h, w, c) at n*stride_rn + h*stride_rh + w*stride_rw + c (HAS_RES)
    hw_c_ptr,  # highway carry rows: (m, co) at m*stride_cm + co (HIGHWAY)
    out_ptr,  # output buffer rows: (m, co) stored at m*stride_om + c_offset + co, m = (n*OH + oh)*OW + ow
    N, H, W,  # input batch and spatial size
    C_IN_G,  # input channels per group
    OH, OW,  # output spatial size
    C_OUT_G,  # output channels per group
    KH, KW,  # kernel size
    SH, SW,  # stride
    PH, PW,  # padding (both sides alike)
    DH, DW,  # dilation
    stride_xn,  # input batch stride (elements)
    stride_xh,  # input row stride
    stride_xw,  # input pixel stride (the channel stride is 1)
    stride_wk,  # weight row stride (C_out, or 2*C_out with a highway carry, for the packed layout)
    t_off,  # first weight / bias column of the gate T (HIGHWAY)
    stride_rn,  # residual batch stride
    stride_rh,  # residual row stride
    stride_rw,  # residual pixel stride
    RSH, RSW,  # residual subsampling (a zero-padded option-A shortcut; 1 for a plain add)
    C_RES,  # residual channels; channels >= C_RES get no residual (zero padding)
    stride_cm,  # highway carry row stride
    stride_om,  # output row stride (C_total of a concat buffer)
    c_offset,  # first output channel of this conv in the output buffer
    c_step,  # channel step in the output buffer
    route_ptr,  # routed output rows (ROUTE): channels [route_lo, route_hi) go here (epilogue_store)
    stride_qm, route_lo, route_hi, route_shift,  # its row stride, the routed range, the channel shift
    post_scale_ptr, post_shift_ptr,  # fp32 [C_out] affine after the residual add (POST_NORM)
    scale, act_a, act_s, post_a, post_s, gate_a, gate_s,  # fp32 epilogue scalars (see epilogue_store)
    pre_a, pre_s,  # fp32 (a, s) of PRE_ACT
    stride_gn,  # input gate batch stride
    HAS_BIAS: tl.constexpr, HAS_RES: tl.constexpr, HIGHWAY: tl.constexpr,
    ACT: tl.constexpr, POST_ACT: tl.constexpr, GATE_ACT: tl.constexpr, ROUTE: tl.constexpr,
    POST_NORM: tl.constexpr,
    PRE: tl.constexpr, PRE_ACT: tl.constexpr,  # the prologue (a pre-activation bn + act), its activation
    GATE_IN: tl.constexpr,  # multiply the loaded input by a per-sample, per-channel gate (an SE product)
    UPCAST: tl.constexpr,  # convert loaded operands to fp32 before the dot (interpreter; bf16/fp16)
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,  # tiles of M swept together for L2 reuse (as in Triton's matmul tutorial)
):
    pid = tl.program_id(0)
    g = tl.program_id(1)
    M = N * OH * OW
    K_TOTAL = KH * KW * C_IN_G
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(C_OUT_G, BLOCK_N)
    # Grouped ordering of the (m, n) tiles.
    num_pid_in_group = GROUP_M * num_pid_n
    first_m = (pid // num_pid_in_group) * GROUP_M
    group_size_m = tl.minimum(num_pid_m - first_m, GROUP_M)
    pid_m = first_m + ((pid % num_pid_in_group) % group_size_m)
    pid_n = (pid % num_pid_in_group) // group_size_m

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = offs_m < M
    mask_n = offs_n < C_OUT_G
    cols = g * C_OUT_G + offs_n  # output channels in this layer's C_out

    ow = offs_m % OW
    t = offs_m // OW
    oh = t % OH
    nb = (t // OH).to(tl.int64)
    ih0 = oh * SH - PH
    iw0 = ow * SW - PW
    x_rows = x_ptr + nb * stride_xn + g * C_IN_G  # [BLOCK_M] base pointers

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc_t = acc
    if HIGHWAY:
        acc_t = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K_TOTAL, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask_k = offs_k < K_TOTAL
        ci = offs_k % C_IN_G
        tap = offs_k // C_IN_G
        kw = tap % KW
        kh = tap // KW
        ih = ih0[:, None] + (kh * DH)[None, :]
        iw = iw0[:, None] + (kw * DW)[None, :]
        a_mask = mask_m[:, None] & mask_k[None, :] & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        a = tl.load(x_rows[:, None] + ih * stride_xh + iw * stride_xw + ci[None, :], mask=a_mask, other=0.0)
        if GATE_IN:  # the gated map x·g is never stored: each loaded value is gated here
            gv = tl.load(gate_ptr + nb[:, None] * stride_gn + (g * C_IN_G + ci)[None, :], mask=a_mask, other=0.0)
            a = (a.to(tl.float32) * gv.to(tl.float32)).to(x_ptr.dtype.element_ty)
        if PRE:  # applied to the loaded values; the zero padding stays zero
            p_s = tl.load(pre_scale_ptr + g * C_IN_G + ci, mask=mask_k, other=0.0)
            p_t = tl.load(pre_shift_ptr + g * C_IN_G + ci, mask=mask_k, other=0.0)
            a_pre = activation(a.to(tl.float32) * p_s[None, :] + p_t[None, :], PRE_ACT, pre_a, pre_s)
            a = tl.where(a_mask, a_pre, 0.0).to(x_ptr.dtype.element_ty)
        b_mask = mask_k[:, None] & mask_n[None, :]
        b_ptrs = w_ptr + offs_k[:, None].to(tl.int64) * stride_wk + cols[None, :]
        b = tl.load(b_ptrs, mask=b_mask, other=0.0)
        acc = dot_acc(acc, a, b, UPCAST)
        if HIGHWAY:
            b_t = tl.load(b_ptrs + t_off, mask=b_mask, other=0.0)
            acc_t = dot_acc(acc_t, a, b_t, UPCAST)

    res_off = nb * stride_rn + (oh * RSH).to(tl.int64) * stride_rh + (ow * RSW).to(tl.int64) * stride_rw
    epilogue_store(acc, acc_t, offs_m, cols, mask_m, mask_n, res_off, bias_ptr, t_off, res_ptr, C_RES,
                   hw_c_ptr, stride_cm, out_ptr, stride_om, c_offset, c_step,
                   route_ptr, stride_qm, route_lo, route_hi, route_shift, post_scale_ptr, post_shift_ptr,
                   scale, act_a, act_s, post_a, post_s, gate_a, gate_s,
                   HAS_BIAS, HAS_RES, HIGHWAY, ACT, POST_ACT, GATE_ACT, ROUTE, POST_NORM)


@triton.jit
def _conv_direct_kernel(
    x_ptr,  # input [N, H, W, C_in]; element (n, h, w, c) at n*stride_xn + h*stride_xh + w*stride_xw + c
    w_ptr,  # packed weights [KH*KW*C_IN_G, C_out]; element (k, co) at k*stride_wk + co
    bias_ptr,  # bias [C_out] (read only when HAS_BIAS)
    res_ptr,  # residual [N, HR, WR, C_RES]: (n, h, w, c) at n*stride_rn + h*stride_rh + w*stride_rw + c (HAS_RES)
    hw_c_ptr,  # unused (HIGHWAY is false: no paired highway on grouped convolutions)
    out_ptr,  # output buffer rows: (m, co) stored at m*stride_om + c_offset + co
    N, H, W,  # input batch and spatial size
    C_IN_G,  # input channels per group (1 for depthwise)
    OH, OW,  # output spatial size
    C_OUT_G,  # output channels per group (the depth multiplier for depthwise)
    C_OUT,  # output channels in all (= groups * C_OUT_G)
    KH, KW,  # kernel size
    SH, SW,  # stride
    PH, PW,  # padding (both sides alike)
    DH, DW,  # dilation
    stride_xn,  # input batch stride (elements)
    stride_xh,  # input row stride
    stride_xw,  # input pixel stride (the channel stride is 1)
    stride_wk,  # weight row stride (= C_out for the packed contiguous layout)
    t_off,  # unused, as hw_c_ptr and stride_cm
    stride_rn,  # residual batch stride
    stride_rh,  # residual row stride
    stride_rw,  # residual pixel stride
    RSH, RSW,  # residual subsampling (1 for a plain add)
    C_RES,  # residual channels; channels >= C_RES get no residual (zero padding)
    stride_cm,  # unused
    stride_om,  # output row stride (C_total of a concat buffer)
    c_offset,  # first output channel of this conv in the output buffer
    c_step,  # channel step in the output buffer
    route_ptr,  # routed output rows (ROUTE): channels [route_lo, route_hi) go here (epilogue_store)
    stride_qm, route_lo, route_hi, route_shift,  # its row stride, the routed range, the channel shift
    post_scale_ptr, post_shift_ptr,  # fp32 [C_out] affine after the residual add (POST_NORM)
    scale, act_a, act_s, post_a, post_s, gate_a, gate_s,  # fp32 epilogue scalars (see epilogue_store)
    HAS_BIAS: tl.constexpr, HAS_RES: tl.constexpr, HIGHWAY: tl.constexpr,
    ACT: tl.constexpr, POST_ACT: tl.constexpr, GATE_ACT: tl.constexpr, ROUTE: tl.constexpr,
    POST_NORM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    M = N * OH * OW
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # output channels (all groups)
    mask_m = offs_m < M
    mask_n = cols < C_OUT
    cin0 = (cols // C_OUT_G) * C_IN_G  # first input channel of each column's group

    ow = offs_m % OW
    t = offs_m // OW
    oh = t % OH
    nb = (t // OH).to(tl.int64)
    ih0 = oh * SH - PH
    iw0 = ow * SW - PW
    x_base = x_ptr + nb * stride_xn

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for tap in range(0, KH * KW):
        kh = tap // KW
        kw = tap % KW
        ih = ih0 + kh * DH
        iw = iw0 + kw * DW
        ok = mask_m & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        x_pix = x_base + ih * stride_xh + iw * stride_xw  # [BLOCK_M]
        ld_mask = ok[:, None] & mask_n[None, :]
        for ci in range(0, C_IN_G):
            xv = tl.load(x_pix[:, None] + (cin0 + ci)[None, :], mask=ld_mask, other=0.0).to(tl.float32)
            wv = tl.load(w_ptr + (tap * C_IN_G + ci) * stride_wk + cols, mask=mask_n, other=0.0).to(tl.float32)
            acc += xv * wv[None, :]

    res_off = nb * stride_rn + (oh * RSH).to(tl.int64) * stride_rh + (ow * RSW).to(tl.int64) * stride_rw
    epilogue_store(acc, acc, offs_m, cols, mask_m, mask_n, res_off, bias_ptr, t_off, res_ptr, C_RES,
                   hw_c_ptr, stride_cm, out_ptr, stride_om, c_offset, c_step,
                   route_ptr, stride_qm, route_lo, route_hi, route_shift, post_scale_ptr, post_shift_ptr,
                   scale, act_a, act_s, post_a, post_s, gate_a, gate_s,
                   HAS_BIAS, HAS_RES, HIGHWAY, ACT, POST_ACT, GATE_ACT, ROUTE, POST_NORM)


# --------------------------------------------------------------------------------------------
# Tuning
# --------------------------------------------------------------------------------------------

_IGEMM_CONFIGS = [
    C.config(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3),
    C.config(BLOCK_M=128, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
    C.config(BLOCK_M=64, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
    C.config(BLOCK_M=64, BLOCK_N=64, BLOCK_K=64, GROUP_M=8, num_warps=4, num_stages=3),
    C.config(BLOCK_M=128, BLOCK_N=32, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
    C.config(BLOCK_M=64, BLOCK_N=32, BLOCK_K=32, GROUP_M=8, num_warps=2, num_stages=5),
    C.config(BLOCK_M=128, BLOCK_N=16, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=4),
    C.config(BLOCK_M=64, BLOCK_N=16, BLOCK_K=16, GROUP_M=8, num_warps=2, num_stages=4),
]
_DIRECT_CONFIGS = [
    C.config(BLOCK_M=32, BLOCK_N=64, num_warps=4, num_stages=2),
    C.config(BLOCK_M=64, BLOCK_N=32, num_warps=4, num_stages=2),
    C.config(BLOCK_M=16, BLOCK_N=128, num_warps=4, num_stages=2),
    C.config(BLOCK_M=128, BLOCK_N=16, num_warps=4, num_stages=2),
    C.config(BLOCK_M=64, BLOCK_N=64, num_warps=8, num_stages=2),
]
_SHAPE_KEY = ["N", "OH", "OW", "C_IN_G", "C_OUT_G", "KH", "KW", "SH", "SW", "HIGHWAY"]

_conv_igemm_tuned = C.autotuned(
    _conv_igemm_kernel, _IGEMM_CONFIGS, _SHAPE_KEY,
    prune=C.prune_by_extent({"BLOCK_N": "C_OUT_G", "BLOCK_M": lambda a: a["N"] * a["OH"] * a["OW"],
                             "BLOCK_K": lambda a: a["KH"] * a["KW"] * a["C_IN_G"]}))
_conv_direct_tuned = C.autotuned(
    _conv_direct_kernel, _DIRECT_CONFIGS, _SHAPE_KEY + ["C_OUT"],
    prune=C.prune_by_extent({"BLOCK_N": "C_OUT", "BLOCK_M": lambda a: a["N"] * a["OH"] * a["OW"]}))


def _igemm_default(m: int, n: int, k: int) -> triton.Config:
    """One large-tile config for the interpreter (few program instances, few loop steps)."""
    return C.config(BLOCK_M=C.clamp_pow2(m, 16, 128), BLOCK_N=C.clamp_pow2(n, 16, 512),
                    BLOCK_K=C.clamp_pow2(k, 16, 1024), GROUP_M=8)


def _direct_default(m: int, n: int) -> triton.Config:
    return C.config(BLOCK_M=C.clamp_pow2(m, 16, 128), BLOCK_N=C.clamp_pow2(n, 16, 64))


# --------------------------------------------------------------------------------------------
# Host wrappers
# --------------------------------------------------------------------------------------------


def pack_conv_weight(weight: torch.Tensor) -> torch.Tensor:
    """PyTorch ``[C_out, C_in/G, KH, KW]`` → the kernels' contiguous ``[KH, KW, C_in/G, C_out]``."""
    if weight.dim() != 4:
        raise ValueError(f"weight: expected [C_out, C_in/groups, KH, KW], got shape {tuple(weight.shape)}")
    return weight.permute(2, 3, 1, 0).contiguous()


def conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    epilogue: Epilogue | None = None,
    *,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    prologue: Prologue | None = None,
    gate: torch.Tensor | None = None,
    path: str = "auto",
    config: triton.Config | dict | None = None,
) -> torch.Tensor:
    """NHWC convolution with a fused `Epilogue` (and `Prologue`); returns the written view.

    x: ``[N, H, W, C_in]`` (channel stride 1; other strides free). weight: packed
    ``[KH, KW, C_in/groups, C_w]`` contiguous (`pack_conv_weight`), x's dtype; ``C_w = C_out``, or
    ``2·C_out`` with ``epilogue.carry`` (H's columns, then T's). padding: an int or ``(ph, pw)``,
    both sides alike: the IR's ``pad``, which `cnndsl.ir.ops.conv.resolve_padding` has already
    resolved (``same``, ``valid``) when the graph was built; there is no second notion of ``same``. epilogue.residual: ``[N, HR, WR, C_res]`` (channel stride 1) with
    ``⌈HR/res_stride⌉ = OH``, ``⌈WR/res_stride⌉ = OW``, ``C_res ≤ C_out``. epilogue.out: None
    (allocate ``[N, OH, OW, C_out]``) or a pixel-uniform ``[N, OH, OW, C_total]`` buffer (it may be
    the residual itself: an in-place add). prologue: igemm path only. gate: ``[N, 1, 1, C_in]`` or
    ``[N, C_in]`` (channel stride 1), x's dtype: x·gate per sample and channel as loaded (igemm path only). path: "auto", "igemm",
    "direct" or "gemm" (the 1x1 fast path). config: pin a kernel config (block sizes) instead of
    autotuning / the interpreter default.
    """
    ep = epilogue or Epilogue()
    if x.dim() != 4:
        raise ValueError(f"x: expected NHWC [N, H, W, C_in], got shape {tuple(x.shape)}")
    if weight.dim() != 4:
        raise ValueError(f"weight: expected packed [KH, KW, C_in/groups, C_out], got shape {tuple(weight.shape)}")
    dt = C.check_dtype("x", x)
    if weight.dtype != x.dtype:
        raise TypeError(f"weight dtype {weight.dtype} differs from x dtype {x.dtype}")
    if x.shape[-1] > 1 and x.stride(-1) != 1:
        raise ValueError(f"x: channel stride must be 1 (NHWC), got strides {x.stride()}")
    if not weight.is_contiguous():
        raise ValueError("weight: must be contiguous [KH, KW, C_in/groups, C_out] (use pack_conv_weight)")
    n, h, w, cin = x.shape
    kh, kw, cin_g, c_w = weight.shape
    pair = ep.carry is not None
    if pair:
        if groups != 1:
            raise ValueError("highway carry: a highway conv with stacked [W_H | W_T] weights needs groups=1")
        if c_w % 2:
            raise ValueError(f"highway carry: the weight needs 2·C_out columns (H's, then T's), got {c_w}")
    cout = c_w // 2 if pair else c_w
    if groups < 1 or cin % groups or cout % groups:
        raise ValueError(f"groups={groups} must divide C_in={cin} and C_out={cout}")
    if cin // groups != cin_g:
        raise ValueError(f"weight: C_in/groups = {cin_g}, but x has {cin} channels in {groups} groups")
    sh, sw = C.pair(stride, "stride")
    dh, dw = C.pair(dilation, "dilation")
    rsh, rsw = C.pair(ep.res_stride, "res_stride")
    if min(sh, sw, dh, dw, rsh, rsw) < 1:
        raise ValueError("stride, dilation and res_stride must be ≥ 1")
    ph, pw = C.pair(padding, "padding")
    if min(ph, pw) < 0:
        raise ValueError(f"padding must be ≥ 0, got {(ph, pw)}")
    oh, ow = conv_out(h, kh, sh, ph, ph, dh), conv_out(w, kw, sw, pw, pw, dw)
    if oh < 1 or ow < 1:
        raise ValueError(f"output would be empty: input {h}x{w}, kernel {kh}x{kw}, padding {(ph, pw)}")
    cout_g = cout // groups
    C.check_same_device(x=x, weight=weight)
    residual = ep.residual
    c_res = _check_residual(residual, (n, oh, ow, cout), (rsh, rsw))
    plain_res = residual is None or ((rsh, rsw) == (1, 1) and c_res == cout and _pixel_uniform(residual))

    pointwise = kh == kw == 1 and sh == sw == 1 and (ph, pw) == (0, 0) and groups == 1
    if prologue is not None:
        if path not in ("auto", "igemm"):
            raise ValueError(f"prologue: it runs on the igemm path only, not path={path!r}")
        path = "igemm"
        for name, v in zip(("prologue scale", "prologue shift"), (prologue.scale, prologue.shift)):
            if tuple(v.shape) != (cin,) or v.dtype != torch.float32 or v.device != x.device:
                raise ValueError(f"{name}: expected an fp32 [{cin}] vector on {x.device}, got "
                                 f"{v.dtype} {tuple(v.shape)} on {v.device}")
    gate_rows = None
    if gate is not None:
        if path not in ("auto", "igemm"):
            raise ValueError(f"gate: it runs on the igemm path only, not path={path!r}")
        path = "igemm"
        if gate.dtype != x.dtype or gate.numel() != n * cin or gate.shape[0] != n or gate.shape[-1] != cin \
                or (cin > 1 and gate.stride(-1) != 1):
            raise ValueError(f"gate: expected [N, 1, 1, {cin}] or [N, {cin}] ({x.dtype}, channel stride 1), got "
                             f"{gate.dtype} {tuple(gate.shape)}")
        C.check_same_device(x=x, gate=gate)
        gate_rows = gate.reshape(n, cin) if gate.dim() != 2 else gate
    if path == "auto":
        if pointwise and plain_res and _pixel_uniform(x):
            path = "gemm"
        elif groups > 1 and min(cin_g, cout_g) < 16:
            path = "direct"
        else:
            path = "igemm"
    if path == "gemm":
        if not pointwise:
            raise ValueError("path='gemm' needs a 1x1, stride-1, unpadded, ungrouped convolution")
        if not plain_res:
            raise ValueError("path='gemm' needs a plain [N, OH, OW, C_out] residual (no zero-padded shortcut)")
        rows = replace(ep, residual=_rows(residual, "residual"), carry=_rows(ep.carry, "highway carry"),
                       out=_rows(ep.out, "out"), route=None if ep.route is None else
                       replace(ep.route, into=_rows(ep.route.into, "route")))
        y = linear(x.reshape(n * h * w, cin), weight.view(cin, c_w).t(), rows, config=config)
        return y.unflatten(0, (n, h, w))
    if path == "direct" and pair:
        raise ValueError("path='direct' has no paired highway epilogue")

    buf, ep_args = C.epilogue_args((n, oh, ow), cout, x, ep)
    written = slice(ep.c_offset, ep.c_offset + (cout - 1) * ep.c_step + 1, ep.c_step)
    C.no_alias(buf[..., written], x=x, weight=weight)
    if ep.route is not None:
        C.no_alias(ep.route.into[..., ep.route.at:ep.route.at + ep.route.hi - ep.route.lo], x=x, weight=weight)
    in_place = C.reads_output(buf, ep)
    r = residual
    args = dict(x_ptr=x, w_ptr=weight, **ep_args, N=n, H=h, W=w, C_IN_G=cin_g, OH=oh, OW=ow, C_OUT_G=cout_g,
                KH=kh, KW=kw, SH=sh, SW=sw, PH=ph, PW=pw, DH=dh, DW=dw,
                stride_xn=x.stride(0), stride_xh=x.stride(1), stride_xw=x.stride(2), stride_wk=c_w,
                stride_rn=r.stride(0) if r is not None else 0, stride_rh=r.stride(1) if r is not None else 0,
                stride_rw=r.stride(2) if r is not None else 0, RSH=rsh, RSW=rsw, C_RES=c_res)
    m = n * oh * ow
    if path == "igemm":
        raw, tuned = _conv_igemm_kernel, _conv_igemm_tuned
        pre = prologue or Prologue(ep_args["bias_ptr"], ep_args["bias_ptr"])  # never read when PRE is off
        args.update(pre_scale_ptr=pre.scale.contiguous(), pre_shift_ptr=pre.shift.contiguous(),
                    gate_ptr=x if gate_rows is None else gate_rows, GATE_IN=gate_rows is not None,
                    stride_gn=0 if gate_rows is None else gate_rows.stride(0),
                    pre_a=float(pre.act.a), pre_s=float(pre.act.s), PRE=prologue is not None,
                    PRE_ACT=C.act_code(pre.act.name), UPCAST=C.is_interpreted(raw) and dt != "fp32")

        def grid(meta):
            return (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(cout_g, meta["BLOCK_N"]), groups)

        C.launch(raw, tuned, grid, args, config, lambda: _igemm_default(m, cout_g, kh * kw * cin_g), in_place)
    elif path == "direct":
        args["C_OUT"] = cout

        def grid(meta):
            return (triton.cdiv(m, meta["BLOCK_M"]), triton.cdiv(cout, meta["BLOCK_N"]))

        C.launch(_conv_direct_kernel, _conv_direct_tuned, grid, args, config, lambda: _direct_default(m, cout),
                 in_place)
    else:
        raise ValueError(f"path: expected 'auto', 'igemm', 'direct' or 'gemm', got {path!r}")
    return buf[..., written]


def _check_residual(residual: torch.Tensor | None, out_shape: tuple[int, int, int, int],
                    res_stride: tuple[int, int]) -> int:
    """The residual's channel count, after checking it fits the output (see conv2d)."""
    if residual is None:
        return 0
    n, oh, ow, cout = out_shape
    if residual.dim() != 4:
        raise ValueError(f"residual: expected NHWC [N, H, W, C], got shape {tuple(residual.shape)}")
    rn, rh, rw, rc = residual.shape
    sub = (-(-rh // res_stride[0]), -(-rw // res_stride[1]))
    if rn != n or sub != (oh, ow) or rc > cout:
        raise ValueError(f"residual: shape {tuple(residual.shape)} subsampled by {res_stride} gives "
                         f"{(rn, *sub, rc)}, which does not fit the output {out_shape}")
    return rc


def _pixel_uniform(t: torch.Tensor) -> bool:
    try:
        C.row_stride("t", t)
    except ValueError:
        return False
    return True


def _rows(t: torch.Tensor | None, name: str) -> torch.Tensor | None:
    """A pixel-uniform NHWC tensor as its ``[N·H·W, C]`` matrix of rows (None stays None)."""
    if t is None:
        return None
    C.row_stride(name, t)
    return t.view(-1, t.shape[-1])


# --------------------------------------------------------------------------------------------
# Ahead-of-time compile specs
# --------------------------------------------------------------------------------------------


def compile_specs(dtype: str = "fp16") -> list[tuple[object, dict[str, str], dict[str, object]]]:
    """Representative ``(kernel, signature, constexprs)`` tuples, for `triton.compile`."""
    # Every epilogue branch; gemm.py's specs reach every activation code.
    igemm = dict(HAS_BIAS=True, HAS_RES=True, HIGHWAY=False, ACT=0, POST_ACT=1, GATE_ACT=2, ROUTE=True, POST_NORM=True,
                 PRE=True, PRE_ACT=1, GATE_IN=True, UPCAST=False, BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, GROUP_M=8)
    pair = dict(igemm, HAS_RES=False, HIGHWAY=True, ACT=1, POST_ACT=0, GATE_ACT=4, ROUTE=False, POST_NORM=False, PRE=False,
                GATE_IN=False)
    direct = dict(HAS_BIAS=True, HAS_RES=True, HIGHWAY=False, ACT=5, POST_ACT=3, GATE_ACT=2, ROUTE=False, POST_NORM=True,
                  BLOCK_M=32, BLOCK_N=64)
    sig = {"*": dtype, **{p: "fp32" for p in ("bias_ptr", "pre_scale_ptr", "pre_shift_ptr", "post_scale_ptr",
                                              "post_shift_ptr")}}
    return [
        (_conv_igemm_kernel, C.signature(_conv_igemm_kernel, sig, igemm), igemm),
        (_conv_igemm_kernel, C.signature(_conv_igemm_kernel, sig, pair), pair),
        (_conv_direct_kernel, C.signature(_conv_direct_kernel, sig, direct), direct),
    ]
