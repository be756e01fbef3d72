"""Triton kernels for GPU inference of cnndsl networks (NHWC, fused epilogues).

Importing this package does not import torch or triton; the kernel modules load on first use::

    from cnndsl.backends.triton import conv2d, pack_conv_weight, linear, pool2d, global_pool2d, local_response_norm, softmax_lastdim, euclidean_rbf

Modules: `conv` (implicit-GEMM, direct/depthwise and 1x1 convolutions), `gemm` (fully connected),
`pool` (max/avg, global, adaptive), `lrn` (local response normalisation), `softmax`, `rbf`
(LeNet-5's Euclidean RBF output units). `epilogue` describes a conv's or fc's fused epilogue
(`Epilogue`, `Act`, `Route`) and prologue (`Prologue`); shared activations, the epilogue's
kernel side and tuning helpers live in `_common`; `table` says which kernel runs each IR op.
"""

import importlib

_EXPORTS = {
    "conv2d": "conv",
    "pack_conv_weight": "conv",
    "linear": "gemm",
    "pool2d": "pool",
    "global_pool2d": "pool",
    "local_response_norm": "lrn",
    "softmax_lastdim": "softmax",
    "euclidean_rbf": "rbf",
    "ACTIVATIONS": "activations",
    "Act": "epilogue",
    "Epilogue": "epilogue",
    "Prologue": "epilogue",
    "Route": "epilogue",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
