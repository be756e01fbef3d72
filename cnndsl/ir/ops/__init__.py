"""Importing this package registers every op (one module per family)."""

from cnndsl.ir.ops import activation, conv, dense, lenet, merge, norm, pool

__all__ = ["activation", "conv", "dense", "lenet", "merge", "norm", "pool"]
