"""The Triton backend's op table: for each IR op, what runs it (read by plan.py and launcher.py).

    rule_for(graph, node) -> Rule          the first rule of the node's op whose predicate holds
    TRITON_OPS: {op: kernel families}      the ops some rule lowers to a Triton kernel, view or no-op
    FALLBACKS: {op: reason}                the ops that can end up as a torch fallback, and why

The plan records each step's `Rule`; the launcher maps each rule's `family` to one launch
function. Written once here so that the two cannot drift apart. Imports neither torch nor triton
(planning runs without them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx

from cnndsl.ir.graph import inputs_of
from cnndsl.ir.registry import ops_with
from cnndsl.passes.concat_elim import routed_by

CONV_FAMILY, FC_FAMILY, RBF_FAMILY = "conv2d", "linear", "euclidean_rbf"
CHANNEL_FAMILY = "channelwise"  # an element-wise op with a learnt per-channel (or single) parameter
IDENTITIES = ("dropout", *ops_with("noop"))  # the identity at inference: a view of the input


@dataclass(frozen=True)
class Rule:
    """One way an op runs: `kind` (a Triton `kernel`, a `view`, the `input` copy, `none`: its
    producers wrote its buffer, or a `torch` fallback), the launcher's `family`, the listing's
    `note` (a function of the node where it names other nodes) and, for fallbacks, the `reason`."""

    kind: str
    family: str
    note: str | Callable[[nx.MultiDiGraph, str], str] = ""
    when: Callable[[nx.MultiDiGraph, str], bool] | None = None  # None: always applies
    reason: str = ""

    def describe(self, graph: nx.MultiDiGraph, node: str) -> str:
        note = self.note(graph, node) if callable(self.note) else self.note
        return note or self.family


def _is_global(graph: nx.MultiDiGraph, node: str) -> bool:
    return graph.nodes[node]["attrs"]["kernel"] == "global"


def _eliminated(graph: nx.MultiDiGraph, node: str) -> bool:
    return bool(graph.nodes[node]["attrs"].get("eliminated"))


def _plain_slice(graph: nx.MultiDiGraph, node: str) -> bool:
    return "out_slice" not in graph.nodes[node]["attrs"]


def _routed(graph: nx.MultiDiGraph, node: str) -> bool:
    return routed_by(graph, node) is not None


def only_fc_readers(graph: nx.MultiDiGraph, node: str) -> bool:
    """Every reader of `node` (through dropouts) is an fc-like layer at port 0 and it is no output."""
    if node in graph.graph["outputs"]:
        return False
    for _, dst, port in graph.out_edges(node, data="port"):
        op = graph.nodes[dst]["op"]
        if op in IDENTITIES:
            if not only_fc_readers(graph, dst):
                return False
        elif TRITON_OPS.get(op) != (FC_FAMILY,) or port != 0:
            return False
    return True


def _flatten_is_view(graph: nx.MultiDiGraph, node: str) -> bool:
    """A flatten is a view unless its NHWC map (more than one pixel) must be read in (c, h, w) order."""
    src_shape = graph.nodes[inputs_of(graph, node)[0]]["shape"]
    return not (len(src_shape) == 3 and math.prod(src_shape[1:]) > 1 and not only_fc_readers(graph, node))


def _torch(reason: str, family: str = "torch lowering", note: str = "") -> Rule:
    return Rule("torch", family, note, reason=reason)


def _lowered(op: str, reason: str) -> tuple[Rule, ...]:
    return (_torch(reason, note=f"{op} (torch lowering)"),)


ELEMENTWISE = "elementwise"  # broadcast_binary: what the passes could not fuse into a conv or fc

TABLE: dict[str, tuple[Rule, ...]] = {
    "input": (Rule("input", "input", "copy in (NCHW → NHWC)"),),
    "fused_conv": (Rule("triton", CONV_FAMILY),),
    "highway_conv": (Rule("triton", CONV_FAMILY),),
    "fused_fc": (Rule("triton", FC_FAMILY),),
    "highway_fc": (Rule("triton", FC_FAMILY),),
    "maxpool": (Rule("triton", "global_pool2d", when=_is_global), Rule("triton", "pool2d")),
    "avgpool": (Rule("triton", "global_pool2d", when=_is_global), Rule("triton", "pool2d")),
    "lrn": (Rule("triton", "local_response_norm"),),
    "softmax": (Rule("triton", "softmax_lastdim"),),
    "rbf": (Rule("triton", RBF_FAMILY),),
    **{op: (Rule("view", "identity"),) for op in IDENTITIES},  # a no-op drop_noops left: a network output
    "mul": (Rule("triton", "broadcast_binary"),),
    "concat": (Rule("none", "none", "eliminated concat (producers write its slices)", when=_eliminated),
               Rule("triton", "concat copy")),  # a producer read elsewhere, or an input: copied into its slice
    "slice": (Rule("view", "slice", "channel slice", when=_plain_slice),
              Rule("none", "none", lambda g, n: f"written into its concat slice by {routed_by(g, n)}", when=_routed),
              Rule("triton", "slice copy")),  # into its concat slice: channel_shuffle with one group
    "flatten": (Rule("view", "flatten", when=_flatten_is_view),
                _torch("a map read in (c, h, w) order by something other than an fc layer", family="flatten copy",
                       note="flatten in (c, h, w) order (NHWC → NCHW copy)")),
    # standalone (the passes fuse one after a conv, an fc or a fused add): every registry activation
    **{op: (Rule("triton", ELEMENTWISE, f"{op} (elementwise)"),) for op in ops_with("activation")},
    "bn": (Rule("triton", ELEMENTWISE, "bn (x·s + t)"),),  # one that fold_bn, fuse_post_norm, fuse_prologue left
    "scale": (Rule("triton", ELEMENTWISE, "scale (x·s + t)"),),
    "layerscale": (Rule("triton", CHANNEL_FAMILY, "broadcast_binary"),),  # one the passes could not fold
    "prelu": (Rule("triton", CHANNEL_FAMILY, "broadcast_binary"),),
    "groupnorm": (Rule("triton", "group_norm"),),
    "channel_shuffle": (Rule("none", "none", "folded into its concat's writes (a channel step of G)", when=_eliminated),
                        Rule("triton", "channel_shuffle")),
    "layernorm": (Rule("triton", "layer_norm_lastdim"),),
    "add": (Rule("triton", ELEMENTWISE, "add (elementwise)"),),  # one fuse_epilogue could not fuse (x + x, after mul)
    "zeropad": _lowered("zeropad", "an option-A shortcut not fused as a conv's zeropad residual"),
    "highway": _lowered("highway", "a highway gate fuse_epilogue could not pair into a highway_conv / highway_fc"),
    "conv": _lowered("conv", "a conv the passes left as it is (fuse_epilogue rewrites every conv to fused_conv)"),
    "fc": _lowered("fc", "an fc the passes left as it is (fuse_epilogue rewrites every fc to fused_fc)"),
    "subsample": _lowered("subsample", "a subsampling layer densify did not rewrite as a convolution"),
    "channel_linear": _lowered("channel_linear", "a channel_linear densify did not rewrite as a 1x1 conv or an fc"),
    "channel_slice": _lowered("channel_slice", "a channel_slice densify did not rewrite as a slice"),
    "upsample": (Rule("triton", "upsample2d"),),
}

TRITON_OPS: dict[str, tuple[str, ...]] = {
    op: tuple(r.family for r in rules if r.kind != "torch") for op, rules in TABLE.items()
    if any(r.kind != "torch" for r in rules)}
FALLBACKS: dict[str, str] = {op: r.reason for op, rules in TABLE.items() for r in rules if r.kind == "torch"}


def rule_for(graph: nx.MultiDiGraph, node: str) -> Rule:
    """The rule that runs `node`: the first of its op's rules whose predicate holds."""
    op = graph.nodes[node]["op"]
    rules = TABLE.get(op)
    if rules is None:
        raise ValueError(f"{node}: the Triton backend has no rule for op {op!r} (add it to backends/triton/table.py)")
    return next(r for r in rules if r.when is None or r.when(graph, node))
