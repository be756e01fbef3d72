"""What a conv or GEMM does around its dot products, described once: `Epilogue` and `Prologue`.

The wrappers (`conv.conv2d`, `gemm.linear`) take one `Epilogue`, `_common.epilogue_args` turns it
into the kernels' arguments and the launcher builds it from the IR's ``fused_conv`` /
``fused_fc`` / ``highway_*`` attributes, whose names the fields follow. In fp32::

    z = act(acc + bias)                      act: an `Act` (name, a, s)
    z = scale·z + residual                   residual subsampled by res_stride, zero past its channels
    z = z·post_norm[0][c] + post_norm[1][c]  a bn after the add
    y = post(z)
    y = y·T + carry·(1 − T)                  with carry: the weight holds H's columns then T's,
                                             T = gate(acc_T + bias_T)
    out[..., c_offset + c] = y               except channels route.lo ≤ c < route.hi: into route.into

Importing this module does not import torch (the tensors' type is only named for checkers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Act:
    """One activation slot: `name` (none, or an activation of the registry: `activations.act_code`)
    and its scalar attributes as (a, s) (``stanh``: a·tanh(s·x))."""

    name: str = "none"
    a: float = 1.0
    s: float = 1.0


@dataclass(frozen=True, eq=False)
class Route:
    """Channels ``[lo, hi)`` of the layer go to ``into[..., at:at + hi − lo]`` instead of `out` (a
    merged 1x1 conv whose branch slice lives in a concat buffer; same rows as out)."""

    lo: int
    hi: int
    into: torch.Tensor
    at: int


@dataclass(frozen=True, eq=False)
class Epilogue:
    """The fused epilogue of one conv / fc launch (see the module docstring); the defaults do nothing.

    bias: ``[C_out]`` (``[2·C_out]`` with `carry`). residual: channels-last, at most C_out channels.
    post_norm: fp32 ``[C_out]`` (scale, shift). carry: the highway carry, shaped like the output.
    out: None (allocate) or a channels-last buffer written at channels ``[c_offset, c_offset + C_out)``.
    """

    bias: torch.Tensor | None = None
    act: Act = Act()
    scale: float = 1.0
    residual: torch.Tensor | None = None
    res_stride: tuple[int, int] = (1, 1)
    post_norm: tuple[torch.Tensor, torch.Tensor] | None = None
    post: Act = Act()
    carry: torch.Tensor | None = None
    gate: Act = Act("sigmoid")
    out: torch.Tensor | None = None
    c_offset: int = 0
    c_step: int = 1  # channel c of this layer lands at c_offset + c·c_step (a shuffled concat: see concat_elim)
    route: Route | None = None


@dataclass(frozen=True, eq=False)
class Prologue:
    """``x ← act(x·scale[c] + shift[c])`` per input channel as a conv loads its input, the zero
    padding staying zero (a pre-activation bn → act); scale, shift: fp32 ``[C_in]``."""

    scale: torch.Tensor
    shift: torch.Tensor
    act: Act = Act()
