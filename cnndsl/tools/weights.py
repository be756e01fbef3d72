"""Weight import by structure: a reference model's tensors onto a compiled module.

A `.cnn` file that follows a reference network computes the same layers in the same order,
so the layers that own tensors pair up by the order in which a forward pass first calls
them. That order is recorded on copies of both models (hooks, train mode so auxiliary
heads run too, no gradients); the originals are untouched. Within a paired layer the
tensors pair by position, and every pair must agree in shape. Layers a forward pass never
reaches are paired afterwards in registration order. Without an example input (a plain
`state_dict` as the source), or when the call orders do not pair up, the pairing is by
registration order.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn


class WeightMismatch(ValueError):
    """The reference's tensors do not pair up with the module's (names and shapes given)."""


def _owners(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Submodules that own parameters or buffers themselves, in registration order."""
    out = []
    for name, mod in model.named_modules():
        own = [k for k, _ in mod.named_parameters(recurse=False)] + [k for k, _ in mod.named_buffers(recurse=False)]
        if own:
            out.append((name, mod))
    return out


def _call_order(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Names of the tensor-owning submodules, in the order a forward pass first calls them."""
    clone = copy.deepcopy(model).train()
    owners = dict((id(m), n) for n, m in _owners(clone))
    order: list[str] = []
    handles = []

    def record(mod: nn.Module, args) -> None:  # noqa: ANN001
        name = owners.get(id(mod))
        if name is not None and name not in order:
            order.append(name)

    for mod in clone.modules():
        handles.append(mod.register_forward_pre_hook(record))
    try:
        with torch.no_grad():
            clone(example)
    finally:
        for h in handles:
            h.remove()
    rest = [n for n, _ in _owners(model) if n not in order]
    return order + rest


def _tensors_of(model: nn.Module, owner_names: list[str]) -> list[tuple[str, torch.Tensor]]:
    mods = dict(model.named_modules())
    out = []
    for name in owner_names:
        mod = mods[name]
        tensors = list(mod.named_parameters(recurse=False)) + list(mod.named_buffers(recurse=False))
        for key, t in tensors:
            if key == "num_batches_tracked" or (isinstance(mod, nn.Module) and key in mod._non_persistent_buffers_set):
                continue
            out.append((f"{name}.{key}" if name else key, t))
    return out


def _pair(ours: list[tuple[str, torch.Tensor]], theirs: list[tuple[str, torch.Tensor]]) -> list[tuple[str, str]]:
    for i, ((name, dst), (ref_name, src)) in enumerate(zip(ours, theirs)):
        if dst.shape != src.shape:
            raise WeightMismatch(
                f"tensor {i}: `{name}` has shape {tuple(dst.shape)} but the reference's `{ref_name}` has {tuple(src.shape)}"
            )
    if len(ours) != len(theirs):
        extra = [n for n, _ in ours[len(theirs):]] or [n for n, _ in theirs[len(ours):]]
        side = "the module" if len(ours) > len(theirs) else "the reference"
        raise WeightMismatch(f"{side} has {abs(len(ours) - len(theirs))} more tensor(s): {', '.join(extra[:5])}"
                             + (" …" if len(extra) > 5 else ""))
    return [(a, b) for (a, _), (b, _) in zip(ours, theirs)]


def load_weights(
    module: nn.Module,
    source: nn.Module | Mapping[str, torch.Tensor],
    example: torch.Tensor | None = None,
) -> list[tuple[str, str]]:
    """Copy `source`'s parameters and buffers into `module`; return the (ours, theirs) name pairs.

    `example` is an input batch for both models; by default one is made from the compiled
    module's declared input shape (`module.input_shapes`). A `state_dict` source pairs by
    registration order.
    """
    if example is None and getattr(module, "input_shapes", None):
        example = torch.randn(2, *module.input_shapes[0])
    by_registration = (
        _tensors_of(module, [n for n, _ in _owners(module)]),
        _tensors_of(source, [n for n, _ in _owners(source)]) if isinstance(source, nn.Module)
        else [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")],
    )
    attempts = [by_registration]
    if isinstance(source, nn.Module) and example is not None:
        by_calls = (_tensors_of(module, _call_order(module, example)), _tensors_of(source, _call_order(source, example)))
        attempts.insert(0, by_calls)
    for i, (ours, theirs) in enumerate(attempts):
        try:
            pairs = _pair(ours, theirs)
            break
        except WeightMismatch:
            if i == len(attempts) - 1:
                raise
    with torch.no_grad():
        for (_, dst), (_, src) in zip(ours, theirs):
            dst.copy_(src)
    return pairs
