"""Importing this package registers every op (one module per family)."""

from cnndsl.ir.ops import activation, conv, dense, lenet, merge, norm, pool

__all__ = ["activation", "conv", "dense", "lenet", "merge", "norm", "pool"]
from cnndsl.ir.ops import fused as fused  # internal ops made by cnndsl/passes (user=False)
