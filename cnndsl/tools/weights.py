"""Weight import by structure: a reference model's tensors onto a compiled module.

cnndsl registers a network's layers in source order, which is the order a hand-written
PyTorch model registers its submodules in when the `.cnn` file follows it. So the two
`state_dict`s pair up by an ordered walk; every pair must agree in shape, and anything
left over on either side is reported by name.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class WeightMismatch(ValueError):
    """The reference's tensors do not pair up with the module's (names and shapes given)."""


def _tensors(source: nn.Module | Mapping[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    state = source.state_dict() if isinstance(source, nn.Module) else source
    return [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]


def load_weights(module: nn.Module, source: nn.Module | Mapping[str, torch.Tensor]) -> list[tuple[str, str]]:
    """Copy `source`'s parameters and buffers into `module` in order; return the (ours, theirs) pairs."""
    ours, theirs = _tensors(module), _tensors(source)
    pairs: list[tuple[str, str]] = []
    for i, ((name, dst), (ref_name, src)) in enumerate(zip(ours, theirs)):
        if dst.shape != src.shape:
            raise WeightMismatch(
                f"tensor {i}: `{name}` has shape {tuple(dst.shape)} but the reference's `{ref_name}` has {tuple(src.shape)}"
            )
        pairs.append((name, ref_name))
    if len(ours) != len(theirs):
        extra = [n for n, _ in ours[len(theirs):]] or [n for n, _ in theirs[len(ours):]]
        side = "the module" if len(ours) > len(theirs) else "the reference"
        raise WeightMismatch(f"{side} has {abs(len(ours) - len(theirs))} more tensor(s): {', '.join(extra[:5])}"
                             + (" …" if len(extra) > 5 else ""))
    with torch.no_grad():
        state = dict(module.state_dict())
        for (name, _), (_, src) in zip(ours, theirs):
            state[name].copy_(src)
    return pairs
