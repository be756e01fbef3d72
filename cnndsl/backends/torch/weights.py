"""Weight import by structure: a reference model's tensors onto a compiled module.

A `.cnn` file that follows a reference network creates the same layers in the same order,
so the two `state_dict`s pair up in order, and every pair must agree in shape. Where a
reference registers its layers in another order than it runs them (timm's pre-activation
units register the projection first), the layers pair up instead by the order in which a
forward pass first calls them: that order is recorded on copies of both models (hooks,
train mode so auxiliary heads run too, no gradients); the originals are untouched, and
layers a forward pass never reaches follow in registration order.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn


class WeightMismatch(ValueError):
    """The reference's tensors do not pair up with the module's (names and shapes given)."""


def owners(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Submodules that own parameters or buffers themselves, in registration order."""
    out = []
    for name, mod in model.named_modules():
        own = [k for k, _ in mod.named_parameters(recurse=False)] + [k for k, _ in mod.named_buffers(recurse=False)]
        if own:
            out.append((name, mod))
    return out


def _call_order(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Names of the tensor-owning submodules, in the order a forward pass first calls them.

    A module is recorded when its call returns, so one that owns tensors and calls children
    (torchvision's CNBlock holds `layer_scale` beside its `block`) is paired after them: the
    data flow reaches its own tensors after the children's.
    """
    clone = copy.deepcopy(model).train()
    for mod in clone.modules():  # batch statistics of a 1x1 map would fail on a small batch
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.eval()
    owner_of = dict((id(m), n) for n, m in owners(clone))
    order: list[str] = []
    handles = []

    def record(mod: nn.Module, args, output) -> None:  # noqa: ANN001
        name = owner_of.get(id(mod))
        if name is not None and name not in order:
            order.append(name)

    for mod in clone.modules():
        handles.append(mod.register_forward_hook(record))
    try:
        with torch.no_grad():
            clone(example)
    finally:
        for h in handles:
            h.remove()
    rest = [n for n, _ in owners(model) if n not in order]
    return order + rest


def tensors_of(model: nn.Module, owner_names: list[str]) -> list[tuple[str, torch.Tensor]]:
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
    order: str = "auto",
) -> list[tuple[str, str]]:
    """Copy `source`'s parameters and buffers into `module`; return the (ours, theirs) name pairs.

    `order`: "registration" pairs tensors in `state_dict` order; "calls" pairs the layers in
    the order a forward pass first calls them (on copies, with `example` or a batch made
    from the module's declared input shape); "auto" (the default) tries registration order
    and falls back to call order when the shapes do not pair up.
    """
    if order not in ("auto", "registration", "calls"):
        raise ValueError(f"order must be auto, registration or calls, got {order!r}")
    if example is None and getattr(module, "input_shapes", None):
        example = torch.randn(2, *module.input_shapes[0])
    attempts = []
    if order in ("auto", "registration"):
        attempts.append(lambda: (
            tensors_of(module, [n for n, _ in owners(module)]),
            tensors_of(source, [n for n, _ in owners(source)]) if isinstance(source, nn.Module)
            else [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")],
        ))
    if order in ("auto", "calls") and isinstance(source, nn.Module) and example is not None:
        attempts.append(lambda: (tensors_of(module, _call_order(module, example)),
                                 tensors_of(source, _call_order(source, example))))
    if not attempts:
        raise ValueError("pairing by call order needs a reference nn.Module and an example input")
    first_error: WeightMismatch | None = None
    for attempt in attempts:
        ours, theirs = attempt()
        try:
            pairs = _pair(ours, theirs)
            break
        except WeightMismatch as err:
            first_error = first_error or err
    else:
        raise first_error
    with torch.no_grad():
        for (_, dst), (_, src) in zip(ours, theirs):
            dst.copy_(src)
    return pairs
