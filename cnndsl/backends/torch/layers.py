"""Torch modules and functions for the ops PyTorch lacks (channel-wise scale, highway gate,
zero-padding shortcut). Plain and traceable, so fx, torch.compile and torch.export see through them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnndsl.ir.opdef import Shape


@dataclass
class Fn:
    """A stateless lowering: the node becomes the call `fn(*inputs, **kwargs)`."""

    fn: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    packed: bool = False  # pass the inputs as one list (torch.cat)


Builder = Callable[[dict[str, Any], list[Shape], Shape], "nn.Module | Fn"]
"""A lowering: (attrs, input shapes, output shape) → a submodule (layers with parameters or
train/eval behaviour) or an `Fn` (stateless)."""


class ChannelScale(nn.Module):
    """Caffe's Scale layer: y = x·γ_c (+ β_c), one γ (and β) per channel."""

    def __init__(self, channels: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        view = (1, -1) + (1,) * (x.dim() - 2)
        y = x * self.weight.view(view)
        return y + self.bias.view(view) if self.bias is not None else y


class LayerScale(nn.Module):
    """ConvNeXt's layer scale: y = x·γ, γ of shape (C, 1, 1) for a map (torchvision's CNBlock.layer_scale), (C,) for rows."""

    def __init__(self, channels: int, init: float, rank: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,) + (1,) * (rank - 1), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


class ChannelLinear(nn.Linear):
    """nn.Linear over the channels at each position of an NCHW map (ConvNeXt's MLP, written
    channels-last in torchvision); on [N, C] rows it is nn.Linear. Weight [out, C], as nn.Linear's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return super().forward(x)
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels at each position of an NCHW map (torchvision's ConvNeXt LayerNorm2d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class FlatLinear(nn.Linear):
    """A fully connected layer that flattens a CxHxW input first (Caffe's InnerProduct)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(1))


def highway(h: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """y = H(x)·T(x) + x·(1 − T(x))"""
    return h * t + x * (1 - t)


def zeropad_shortcut(x: torch.Tensor, channels: int, stride_h: int, stride_w: int) -> torch.Tensor:
    """ResNet's option A: subsample by the stride, then pad the channels with zeros."""
    x = x[:, :, ::stride_h, ::stride_w]
    return F.pad(x, (0, 0, 0, 0, 0, channels - x.shape[1]))


def scaled_add(body: torch.Tensor, *others: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """A residual sum; `scale` multiplies the residual branch (Inception-ResNet)."""
    out = body * scale if scale != 1.0 else body
    for other in others:
        out = out + other
    return out


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle, as torchvision writes it (view, transpose, view)."""
    b, c, h, w = x.shape
    x = x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous()
    return x.view(b, c, h, w)


def product(first: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
    """An element-wise product of several operands (C×1×1 gates broadcast over the map)."""
    out = first
    for other in others:
        out = out * other
    return out


class PartialConv2d(nn.Module):
    """A convolution whose outputs read only some input channels (LeNet-5's C3 table).

    Only the connected weights are parameters; the dense kernel is assembled on each call,
    so `parameters()` counts exactly what the paper counts (1,516 for C3).
    """

    def __init__(self, in_channels: int, table: tuple[tuple[int, ...], ...], kernel: tuple[int, int],
                 stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int], bias: bool) -> None:
        super().__init__()
        rows = [o for o, inputs in enumerate(table) for _ in inputs]
        cols = [i for inputs in table for i in inputs]
        self.register_buffer("rows", torch.tensor(rows, dtype=torch.long), persistent=False)
        self.register_buffer("cols", torch.tensor(cols, dtype=torch.long), persistent=False)
        self.shape = (len(table), in_channels, *kernel)
        fan_in = max(len(r) for r in table) * kernel[0] * kernel[1]
        bound = 1 / fan_in**0.5
        self.weight = nn.Parameter(torch.empty(len(cols), *kernel).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(len(table)).uniform_(-bound, bound)) if bias else None
        self.stride, self.padding, self.dilation = stride, padding, dilation

    def dense_weight(self) -> torch.Tensor:
        dense = self.weight.new_zeros(self.shape)
        return dense.index_put((self.rows, self.cols), self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias, self.stride, self.padding, self.dilation)


class Subsample(nn.Module):
    """LeNet-5's S layers: (sum of each window)·w_c + b_c."""

    def __init__(self, channels: int, kernel: tuple[int, int], stride: tuple[int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.weight = nn.Parameter(torch.full((channels,), 0.25))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        area = self.kernel[0] * self.kernel[1]
        summed = F.avg_pool2d(x, self.kernel, self.stride) * area
        return summed * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class RBF(nn.Module):
    """Euclidean RBF units y_i = Σ_j (x_j − w_ij)², with fixed ±1 codes kept as a buffer.

    The 1998 paper drew its codes as 7x12 bitmaps of the characters; here they are a fixed
    pseudo-random ±1 pattern (seeded, so every build has the same codes).
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(1998)
        codes = torch.randint(0, 2, (out_features, in_features), generator=gen).float() * 2 - 1
        self.register_buffer("weight", codes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.unsqueeze(1) - self.weight.unsqueeze(0)).square().sum(-1)
