"""Torch modules and functions for the ops PyTorch lacks (channel-wise scale, highway gate,
zero-padding shortcut). Plain and traceable, so fx, torch.compile and torch.export see through them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
