"""Torch lowerings of the internal ops the IR passes make (cnndsl/ir/ops/fused.py).

They compute exactly what the unfused layers compute (in eval mode), and keep the conv's /
fc's parameter names (`<node>.weight`, `<node>.bias`), so the weights a pass returns load
into `to_torch(transformed_graph)` by key. `FUSED_LOWERINGS` is their part of
the torch backend's lowering table (lower.py merges it into `LOWERINGS`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from cnndsl.backends.torch import layers
from cnndsl.backends.torch.activations import activate
from cnndsl.backends.torch.layers import Builder, Fn
from cnndsl.ir.opdef import Shape


def channel_slice(x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Channels (features) [start, stop) of a batch."""
    return x[:, start:stop]


class _Epilogue:
    """act → scale·z + residual (or zero-padded residual) → post_act."""

    def _setup(self, attrs: dict[str, Any]) -> None:
        self.act = (attrs.get("act", "none"), attrs.get("act_a", 1.0), attrs.get("act_s", 1.0))
        self.post = (attrs.get("post_act", "none"), attrs.get("post_a", 1.0), attrs.get("post_s", 1.0))
        self.residual = attrs.get("residual", "none")
        self.scale = attrs.get("scale", 1.0)
        self.res_stride = tuple(attrs.get("res_stride", (1, 1)))
        self.post_norm = bool(attrs.get("post_norm", False))
        if self.post_norm:
            self.register_buffer("post_scale", torch.ones(attrs["out"]))  # type: ignore[attr-defined]
            self.register_buffer("post_shift", torch.zeros(attrs["out"]))  # type: ignore[attr-defined]

    def epilogue(self, z: torch.Tensor, r: torch.Tensor | None) -> torch.Tensor:
        z = activate(z, *self.act)
        if self.residual != "none":
            if self.residual == "zeropad":
                r = layers.zeropad_shortcut(r, z.shape[1], self.res_stride[0], self.res_stride[1])
            z = (z * self.scale if self.scale != 1.0 else z) + r
        if self.post_norm:
            shape = (-1,) + (1,) * (z.dim() - 2)
            z = z * self.post_scale.view(shape) + self.post_shift.view(shape)  # type: ignore[attr-defined]
        return activate(z, *self.post)

    def extra_repr(self) -> str:  # noqa: D401 - nn.Module's hook
        parts = [super().extra_repr()]  # type: ignore[misc]
        if getattr(self, "in_gate", False):
            parts.append("in_gate")
        if getattr(self, "pre", False):
            parts.append(f"pre_act={self.pre_act[0]}")
        if self.act[0] != "none":
            parts.append(f"act={self.act[0]}")
        if self.residual != "none":
            parts.append(f"residual={self.residual}, scale={self.scale}")
        if self.post_norm:
            parts.append("post_norm")
        if self.post[0] != "none":
            parts.append(f"post_act={self.post[0]}")
        return ", ".join(parts)


class FusedConv2d(_Epilogue, nn.Conv2d):
    """The input gate (when `in_gate`), the fused prologue (when `pre`), nn.Conv2d, the fused
    epilogue; forward(x, [residual], [gate]) as the node's inputs come."""

    def __init__(self, in_channels: int, attrs: dict[str, Any]) -> None:
        nn.Conv2d.__init__(self, in_channels, attrs["out"], attrs["kernel"], attrs["stride"], attrs["pad"],
                           attrs["dilation"], attrs["groups"], attrs["bias"])
        self._setup(attrs)
        self.pre = bool(attrs.get("pre", False))
        self.pre_act = (attrs.get("pre_act", "none"), attrs.get("pre_a", 1.0), attrs.get("pre_s", 1.0))
        self.in_gate = bool(attrs.get("in_gate", False))
        if self.pre:
            self.register_buffer("pre_scale", torch.ones(in_channels))
            self.register_buffer("pre_shift", torch.zeros(in_channels))

    def forward(self, x: torch.Tensor, *operands: torch.Tensor) -> torch.Tensor:
        residual = operands[0] if self.residual != "none" else None
        if self.in_gate:
            x = x * operands[-1]
        if self.pre:
            x = activate(x * self.pre_scale[:, None, None] + self.pre_shift[:, None, None], *self.pre_act)
        return self.epilogue(nn.Conv2d.forward(self, x), residual)


class FusedLinear(_Epilogue, nn.Linear):
    """nn.Linear (flattening a CxHxW input first) followed by the fused epilogue."""

    def __init__(self, in_features: int, attrs: dict[str, Any]) -> None:
        nn.Linear.__init__(self, in_features, attrs["out"], attrs["bias"])
        self._setup(attrs)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        return self.epilogue(nn.Linear.forward(self, x.flatten(1)), residual)


class _Gate:
    def _setup(self, attrs: dict[str, Any]) -> None:
        self.width = attrs["out"]
        self.act = (attrs.get("act", "none"), attrs.get("act_a", 1.0), attrs.get("act_s", 1.0))
        self.gate = (attrs.get("gate_act", "sigmoid"), attrs.get("gate_a", 1.0), attrs.get("gate_s", 1.0))

    def gate_epilogue(self, z: torch.Tensor, carry: torch.Tensor) -> torch.Tensor:
        h = activate(z[:, : self.width], *self.act)
        t = activate(z[:, self.width:], *self.gate)
        return layers.highway(h, t, carry)


class HighwayConv2d(_Gate, nn.Conv2d):
    """H and T convolutions stacked (2·out channels, H first) with the highway gate as epilogue."""

    def __init__(self, in_channels: int, attrs: dict[str, Any]) -> None:
        nn.Conv2d.__init__(self, in_channels, 2 * attrs["out"], attrs["kernel"], attrs["stride"], attrs["pad"],
                           attrs["dilation"], attrs["groups"], attrs["bias"])
        self._setup(attrs)

    def forward(self, x: torch.Tensor, carry: torch.Tensor) -> torch.Tensor:
        return self.gate_epilogue(nn.Conv2d.forward(self, x), carry)


class HighwayLinear(_Gate, nn.Linear):
    """H and T fully connected layers stacked (2·out features, H first) with the highway gate."""

    def __init__(self, in_features: int, attrs: dict[str, Any]) -> None:
        nn.Linear.__init__(self, in_features, 2 * attrs["out"], attrs["bias"])
        self._setup(attrs)

    def forward(self, x: torch.Tensor, carry: torch.Tensor) -> torch.Tensor:
        return self.gate_epilogue(nn.Linear.forward(self, x.flatten(1)), carry)


def _fused_conv(attrs: dict[str, Any], ins: list[Shape], out: Shape) -> nn.Module:
    return FusedConv2d(ins[0][0], attrs)


def _fused_fc(attrs: dict[str, Any], ins: list[Shape], out: Shape) -> nn.Module:
    return FusedLinear(math.prod(ins[0]), attrs)


def _highway_conv(attrs: dict[str, Any], ins: list[Shape], out: Shape) -> nn.Module:
    return HighwayConv2d(ins[0][0], attrs)


def _highway_fc(attrs: dict[str, Any], ins: list[Shape], out: Shape) -> nn.Module:
    return HighwayLinear(math.prod(ins[0]), attrs)


FUSED_LOWERINGS: dict[str, Builder] = {
    "fused_conv": _fused_conv,
    "fused_fc": _fused_fc,
    "highway_conv": _highway_conv,
    "highway_fc": _highway_fc,
    "slice": lambda a, ins, out: Fn(channel_slice, {"start": a["start"], "stop": a["stop"]}),
}
