"""IR passes usable by any backend: each a pure function of the IR (and its weights).

    drop_noops(graph, weights)    -> (graph, weights)   identity, drop_path removed (the identity at inference)
    densify(graph, weights)       -> (graph, weights)   LeNet's subsampling, table convs → plain convs
    fold_bn(graph, weights)       -> (graph, weights)   batch norm / scale into conv, fc
    fuse_1x1(graph, weights)      -> (graph, weights)   sibling 1x1 convs → one conv + slices
    fuse_epilogue(graph, weights) -> (graph, weights)   act, residual add, highway gate into conv/fc
    fuse_post_norm(graph, weights) -> (graph, weights)  bn (+ act) after a fused residual add into that layer
    fuse_prologue(graph, weights) -> (graph, weights)   pre-activation bn (+ act) into the convs reading it
    fuse_gate(graph, weights)     -> (graph, weights)   squeeze-and-excitation product into the convs reading it
    concat_elim(graph)            -> graph              producers write into their concat slice
    plan_buffers(graph, batch, itemsize) -> (graph, report)   liveness buffer plan
    optimize(graph, weights)      -> (graph, weights, report) all of them, in that order (pipeline.PASSES)

Weights are the torch backend's `state_dict()` (or numpy arrays under the same keys); the
passes never import torch. Each module's docstring specifies the ops and attrs it produces.
"""

from cnndsl.passes.concat_elim import concat_elim
from cnndsl.passes.densify import densify
from cnndsl.passes.drop_noops import drop_noops
from cnndsl.passes.fold_bn import fold_bn
from cnndsl.passes.fuse_1x1 import fuse_1x1
from cnndsl.passes.fuse_epilogue import fuse_epilogue
from cnndsl.passes.fuse_gate import fuse_gate
from cnndsl.passes.fuse_post_norm import fuse_post_norm
from cnndsl.passes.fuse_prologue import fuse_prologue
from cnndsl.passes.pipeline import OptimizeReport, optimize
from cnndsl.passes.plan_buffers import BufferReport, plan_buffers

__all__ = ["BufferReport", "OptimizeReport", "concat_elim", "densify", "drop_noops", "fold_bn", "fuse_1x1", "fuse_epilogue",
           "fuse_gate", "fuse_post_norm", "fuse_prologue", "optimize", "plan_buffers"]
