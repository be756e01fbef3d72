"""Run an optimised cnndsl IR with the Triton kernels: one launch per IR node, NHWC buffers.

    to_triton(graph, weights, device="cuda", dtype=torch.float16, cuda_graph=False) -> TritonNetwork
    plan_launch(graph, batch=1, itemsize=2) -> LaunchPlan        (plan.py: passes only, no weights, no device)

`to_triton` takes the torch backend's `state_dict()` for `graph` (`Network.to_triton` makes a
fresh module's when given none), runs `cnndsl.passes.optimize` (drop_noops → densify → fold_bn → fuse_1x1 →
fuse_epilogue → fuse_post_norm → fuse_prologue → fuse_gate → concat_elim → plan_buffers), packs the weights once (conv:
`pack_conv_weight`; an fc or rbf reading a C×H×W map gets its columns permuted from (c, h, w) to
the NHWC (h, w, c) order; biases, prologue and post-norm vectors stay fp32) and returns a callable
`TritonNetwork`:

- `net(x, ...)` takes NCHW inputs (flat ones as [N, F]), like the torch module, and returns the
  outputs in NCHW (or flat), in the network's output order (a tuple when there are several);
- activations live in NHWC buffers laid out by the buffer plan, allocated on the first call
  for each batch size (sizes scale linearly with the batch); a producer of an eliminated
  concat writes straight into its channel slice (`out=`, `c_offset=`; `c_step=` into every
  G-th channel when the concat's channel shuffle is folded into the writes), and a merged 1x1 conv
  writes the slice a concat needs there too (`route=`);
- each IR node is one `Step`, run as the op table (table.py) says: a Triton kernel (`conv2d`
  for fused_conv / highway_conv, with their prologue and epilogue, `linear` for fused_fc / highway_fc,
  `pool2d` / `global_pool2d`, `upsample2d`, `local_response_norm`, `softmax_lastdim`, `euclidean_rbf`,
  `group_norm`, `layer_norm_lastdim`, `channel_shuffle`; `broadcast_binary` for mul, an unfolded
  layerscale and prelu, and for what the passes leave unfused: a standalone activation, an add, a bn
  or scale as x·s + t; `channel_shuffle` with one group copying a slice or a concat's operands into
  its buffer), a view (flatten of a map read only by fc layers, dropout, a channel slice), nothing
  (an eliminated concat, a folded channel shuffle, a routed slice), or a *torch fallback*: the node's torch lowering applied
  to NCHW copies of its inputs and written back into its buffer (a zero-padding shortcut or a
  highway gate the passes could not fuse). Fallbacks are counted and listed in `net.report`; no
  zoo network has one;
- each step is bound once per batch size to its buffer views (`_bind`): a forward pass only
  launches, with no graph lookups or slice resolution;
- each step keeps the `.cnn` spans of the IR nodes it covers (its own and those it absorbed:
  `fused`, `pre_fused`, folded batch norms), so `net.check(x, torch_module)` can name the
  source line of the first node whose output differs from the torch module's, and
  `plan.listing()` (`cnndsl compile --backend triton --emit plan`) shows them per launch;
- `cuda_graph=True` (CUDA devices only; refused elsewhere) captures the whole launch sequence for
  each batch size in a `torch.cuda.CUDAGraph` on the first call (after one eager warm-up run:
  autotuning must not happen during capture) and replays it afterwards; inputs are copied into
  static buffers and outputs cloned out. It cannot be tested without a GPU.

Everything here works on the CPU under Triton's interpreter (`TRITON_INTERPRET=1` set before
the kernels are imported), which is how the tests run it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import networkx as nx
import torch
from torch import fx

from cnndsl.backends.torch.lower import LOWERINGS, Fn
from cnndsl.backends.triton._common import is_interpreted
from cnndsl.backends.triton.channel_norm import group_norm, layer_norm_lastdim
from cnndsl.backends.triton.conv import _conv_igemm_kernel, conv2d, pack_conv_weight
from cnndsl.backends.triton.elementwise import broadcast_binary, channel_shuffle
from cnndsl.backends.triton.epilogue import Act, Epilogue, Prologue, Route
from cnndsl.backends.triton.gemm import linear
from cnndsl.backends.triton.lrn import local_response_norm
from cnndsl.backends.triton.plan import LaunchPlan, LaunchReport, Step, plan_launch
from cnndsl.backends.triton.pool import global_pool2d, pool2d, upsample2d
from cnndsl.backends.triton.rbf import euclidean_rbf
from cnndsl.backends.triton.softmax import softmax_lastdim
from cnndsl.backends.triton.table import CHANNEL_FAMILY, CONV_FAMILY, ELEMENTWISE, FC_FAMILY, RBF_FAMILY
from cnndsl.ir.graph import in_shapes, inputs_of
from cnndsl.ir.registry import REGISTRY
from cnndsl.passes.concat_elim import resolve_slice
from cnndsl.passes.fold_bn import affine

__all__ = ["LaunchPlan", "LaunchReport", "Step", "TritonNetwork", "plan_launch", "to_triton"]

Run = Callable[[list[torch.Tensor]], torch.Tensor]
"""One bound step: its input values → its output value (launches, views or copies; no planning)."""


def _nchw(t: torch.Tensor, hwc: tuple[int, int, int] | None = None) -> torch.Tensor:
    """A launcher value (NHWC map, or flat maybe in (h, w, c) order) in the torch backend's layout."""
    if t.dim() == 4:
        return t.permute(0, 3, 1, 2)
    if hwc is not None:
        c, h, w = hwc
        return t.reshape(t.shape[0], h, w, c).permute(0, 3, 1, 2).reshape(t.shape[0], -1)
    return t


@dataclass(frozen=True)
class _Target:
    """Where a node's output lives: buffer `buffer`, inside the tensor of `shape` (its own, or its
    outermost concat's: C×H×W or F) at channels ``offset + c·step`` for c < channels (step > 1:
    a concat whose channel shuffle the writes perform)."""

    buffer: int
    shape: tuple[int, ...]
    offset: int
    channels: int
    step: int = 1

    @staticmethod
    def of(g: nx.MultiDiGraph, node: str) -> _Target:
        where = resolve_slice(g, node)
        owner, offset, step = (node, 0, 1) if where is None else where
        return _Target(g.nodes[node]["attrs"]["buffer"], tuple(g.nodes[owner]["shape"]), offset,
                       g.nodes[node]["shape"][0], step)

    def full(self, bufs: list[torch.Tensor], batch: int) -> torch.Tensor:
        """The whole NHWC (or [N, F]) tensor this output is a channel slice of."""
        t = bufs[self.buffer][: batch * math.prod(self.shape)]
        return t.view(batch, self.shape[1], self.shape[2], self.shape[0]) if len(self.shape) == 3 else t.view(batch, -1)

    def view(self, bufs: list[torch.Tensor], batch: int) -> torch.Tensor:
        return self.full(bufs, batch)[..., self.offset:self.offset + (self.channels - 1) * self.step + 1:self.step]


@dataclass(frozen=True)
class _Prepared:
    """What a step needs from the graph, read once per network: its attributes, where its inputs
    are in the run's value list, where it writes, and (a merged 1x1 conv) where its routed slice goes."""

    step: Step
    attrs: Mapping[str, Any]
    srcs: tuple[int, ...]
    target: _Target | None
    route: tuple[int, int, _Target] | None
    hwc: tuple[tuple[int, int, int] | None, ...]  # per input: the (C, H, W) of a flat one in (h, w, c) order
    shapes: tuple[tuple[int, ...], ...]  # per input: its IR shape
    shape: tuple[int, ...]  # the step's output shape


class TritonNetwork:
    """The compiled network (see the module docstring); call it like the torch module."""

    def __init__(self, plan: LaunchPlan, weights: Mapping[str, Any], device: str | torch.device,
                 dtype: torch.dtype, cuda_graph: bool = False) -> None:
        self.device = torch.device(device)
        _check_device(self.device)
        if cuda_graph and self.device.type != "cuda":
            raise ValueError(f"cuda_graph=True needs a CUDA device, got {self.device}")
        self.plan, self.graph, self.dtype, self.cuda_graph = plan, plan.graph, dtype, cuda_graph
        self.steps = plan.steps
        self.report = plan.report
        self.name = plan.graph.graph.get("name", "")
        self.inputs = list(plan.graph.graph["inputs"])
        self.outputs = list(plan.graph.graph["outputs"])
        self._params: dict[str, dict[str, torch.Tensor]] = {}
        self._modules: dict[str, Any] = {}
        self._pack(weights)
        self._prepared = self._prepare()
        self._out_index = [next(i for i, st in enumerate(self.steps) if st.node == n) for n in self.outputs]
        self._out_hwc = [plan.hwc_flat.get(n) for n in self.outputs]
        self._buffers: dict[int, list[torch.Tensor]] = {}
        self._bound: dict[int, list[tuple[Run, tuple[int, ...]]]] = {}
        self._graphs: dict[tuple, Any] = {}
        plan_info = plan.graph.graph.get("buffer_plan", {"batch": 1, "itemsize": 2})
        per = plan_info["batch"] * plan_info["itemsize"]
        self._buffer_elems = [-(-int(b) // per) for b in plan.graph.graph.get("buffers", [])]

    # ---- weights --------------------------------------------------------------------------

    def _tensor(self, v: Any, dtype: torch.dtype) -> torch.Tensor:
        t = v if isinstance(v, torch.Tensor) else torch.as_tensor(v)
        return t.detach().to(device=self.device, dtype=dtype)

    def _pack(self, weights: Mapping[str, Any]) -> None:
        g = self.graph
        for step in self.steps:
            node, data = step.node, g.nodes[step.node]
            if step.family in (CONV_FAMILY, FC_FAMILY, RBF_FAMILY):
                wt = self._tensor(weights[f"{node}.weight"], torch.float32)
                if step.family == CONV_FAMILY:
                    wt = pack_conv_weight(wt)
                else:
                    src = inputs_of(g, node)[0]
                    shape = g.nodes[src]["shape"]
                    hwc = tuple(shape) if len(shape) == 3 else self.plan.hwc_flat.get(src)
                    if hwc is not None:
                        c, h, ww = hwc
                        wt = wt.view(wt.shape[0], c, h, ww).permute(0, 2, 3, 1).reshape(wt.shape[0], -1)
                    wt = wt.contiguous()
                p = {"weight": wt.to(self.dtype).contiguous()}
                if step.family != RBF_FAMILY and data["attrs"].get("bias", True) and f"{node}.bias" in weights:
                    p["bias"] = self._tensor(weights[f"{node}.bias"], torch.float32).contiguous()
                for flag, keys in (("pre", ("pre_scale", "pre_shift")), ("post_norm", ("post_scale", "post_shift"))):
                    if data["attrs"].get(flag):
                        for key in keys:
                            p[key] = self._tensor(weights[f"{node}.{key}"], torch.float32).contiguous()
                self._params[node] = p
            elif step.family == ELEMENTWISE and step.op in ("bn", "scale"):  # x·s + t, s and t fp32 [C]
                s, t = affine(g, node, weights)
                self._params[node] = {"scale": self._tensor(s, torch.float32), "shift": self._tensor(t, torch.float32)}
            elif step.family in (CHANNEL_FAMILY, "group_norm", "layer_norm_lastdim"):
                # γ (layerscale), the slopes (prelu), or a norm's γ and β (none without affine): fp32 vectors
                self._params[node] = {k: self._tensor(weights[f"{node}.{k}"], torch.float32).reshape(-1).contiguous()
                                      for k in ("weight", "bias") if f"{node}.{k}" in weights}
            elif step.family == "torch lowering":
                if step.op not in LOWERINGS:
                    raise ValueError(f"{node}: the torch backend has no lowering for {step.op!r} to fall back on")
                lowered = LOWERINGS[step.op](data["attrs"], in_shapes(g, node), data["shape"])
                if isinstance(lowered, torch.nn.Module):
                    prefix = node + "."
                    sd = {k[len(prefix):]: self._tensor(v, torch.float32) for k, v in weights.items()
                          if k.startswith(prefix) and "." not in k[len(prefix):]}
                    lowered.load_state_dict(sd, strict=True)
                    lowered = lowered.to(device=self.device, dtype=self.dtype).eval()
                self._modules[node] = lowered

    # ---- the plan, bound to buffers ------------------------------------------------------------

    def _prepare(self) -> list[_Prepared]:
        """Everything each step reads from the graph, once: a forward pass does no graph lookups."""
        g = self.graph
        index = {st.node: i for i, st in enumerate(self.steps)}
        given = {n: len(self.steps) + k for k, n in enumerate(self.inputs)}  # the given inputs' slots
        prepared = []
        for st in self.steps:
            attrs = g.nodes[st.node]["attrs"]
            srcs = (given[st.node],) if st.kind == "input" else tuple(index[s] for s in inputs_of(g, st.node))
            writes = st.kind in ("input", "triton", "torch", "none")
            route = None
            if attrs.get("route"):
                sl = g.nodes[attrs["route"]]["attrs"]
                route = (sl["start"], sl["stop"], _Target.of(g, attrs["route"]))
            hwc = tuple(self.plan.hwc_flat.get(s) for s in inputs_of(g, st.node))
            shapes = tuple(tuple(s) for s in in_shapes(g, st.node))
            prepared.append(_Prepared(st, attrs, srcs, _Target.of(g, st.node) if writes else None, route, hwc,
                                      shapes, tuple(g.nodes[st.node]["shape"])))
        return prepared

    def _bind(self, batch: int) -> list[tuple[Run, tuple[int, ...]]]:
        """Each step bound to this batch size's buffers (views made once), with its inputs' slots."""
        bound = self._bound.get(batch)
        if bound is None:
            bufs = self._buffers.get(batch)
            if bufs is None:
                bufs = [torch.empty(n * batch, dtype=self.dtype, device=self.device) for n in self._buffer_elems]
                self._buffers[batch] = bufs
            bound = self._bound[batch] = [(_LAUNCH[p.step.family](self, p, bufs, batch), p.srcs)
                                          for p in self._prepared]
        return bound

    def _conv(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        a, w = p.attrs, self._params[p.step.node]
        kw: dict[str, Any] = dict(stride=a["stride"], padding=a["pad"], dilation=a["dilation"], groups=a["groups"])
        if a.get("pre"):
            kw["prologue"] = Prologue(w["pre_scale"], w["pre_shift"], _act(a, "pre"))
        weight, ep = w["weight"], self._epilogue(p, bufs, batch)
        if a.get("in_gate"):  # the gate is the last input (fuse_gate)
            if a.get("residual", "none") != "none":
                return lambda ins: conv2d(ins[0], weight, replace(ep, residual=ins[1]), gate=ins[-1], **kw)
            return lambda ins: conv2d(ins[0], weight, ep, gate=ins[-1], **kw)
        if p.step.op == "highway_conv":
            return lambda ins: conv2d(ins[0], weight, replace(ep, carry=ins[1]), **kw)
        if a.get("residual", "none") != "none":
            return lambda ins: conv2d(ins[0], weight, replace(ep, residual=ins[1]), **kw)
        return lambda ins: conv2d(ins[0], weight, ep, **kw)

    def _linear(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        weight, ep = self._params[p.step.node]["weight"], self._epilogue(p, bufs, batch)
        if p.step.op == "highway_fc":
            return lambda ins: linear(ins[0].reshape(batch, -1), weight, replace(ep, carry=ins[1]))
        if p.attrs.get("residual", "none") != "none":
            return lambda ins: linear(ins[0].reshape(batch, -1), weight, replace(ep, residual=ins[1].reshape(batch, -1)))
        return lambda ins: linear(ins[0].reshape(batch, -1), weight, ep)

    def _epilogue(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Epilogue:
        """A conv / fc step's epilogue, but for the operands that are its input values (residual, carry)."""
        a, w = p.attrs, self._params[p.step.node]
        route = None
        if p.route is not None:
            lo, hi, into = p.route
            route = Route(lo, hi, into.full(bufs, batch), into.offset)
        out, off = p.target.full(bufs, batch), p.target.offset
        if p.step.op.startswith("highway"):
            return Epilogue(bias=w.get("bias"), act=_act(a, "act"), gate=_act(a, "gate", "sigmoid"), out=out,
                            c_offset=off)
        residual = a.get("residual", "none")
        return Epilogue(bias=w.get("bias"), act=_act(a, "act"), scale=a.get("scale", 1.0) if residual != "none" else 1.0,
                        res_stride=tuple(a.get("res_stride", (1, 1))) if residual == "zeropad" else (1, 1),
                        post_norm=(w["post_scale"], w["post_shift"]) if a.get("post_norm") else None,
                        post=_act(a, "post"), out=out, c_offset=off, c_step=p.target.step, route=route)

    def _pool(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        a, out = p.attrs, p.target.full(bufs, batch)
        mode = "max" if p.step.op == "maxpool" else "avg"
        kw: dict[str, Any] = dict(out=out, c_offset=p.target.offset)
        if a.get("adaptive"):
            kw["output_size"] = a["kernel"]
        else:
            kw.update(kernel_size=a["kernel"], stride=a["stride"], padding=a["pad"],
                      ceil_mode=bool(a.get("ceil", False)), count_include_pad=bool(a.get("count_pad", True)))
        return lambda ins: pool2d(ins[0], mode, **kw)

    def _global_pool(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        mode, out, off = "max" if p.step.op == "maxpool" else "avg", p.target.full(bufs, batch), p.target.offset
        return lambda ins: global_pool2d(ins[0], mode, out=out, c_offset=off)

    def _upsample(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        a, out, off = p.attrs, p.target.full(bufs, batch), p.target.offset
        return lambda ins: upsample2d(ins[0], a["scale"], a["mode"], align_corners=a["align_corners"], out=out,
                                      c_offset=off)

    def _lrn(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        a, out = p.attrs, p.target.view(bufs, batch)
        return lambda ins: local_response_norm(ins[0], a["size"], a["alpha"], a["beta"], a["k"], out=out)

    def _softmax(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        out = p.target.view(bufs, batch)
        return lambda ins: softmax_lastdim(ins[0], out=out)

    def _rbf(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        centres, out, off = self._params[p.step.node]["weight"], p.target.full(bufs, batch), p.target.offset
        return lambda ins: euclidean_rbf(ins[0].reshape(batch, -1), centres, out=out, c_offset=off)

    def _mul(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        """A product: the operand of the output's shape times the others (gates broadcast), into out."""
        out, shapes = p.target.view(bufs, batch), list(p.shapes)
        first = shapes.index(p.shape)
        rest = [i for i in range(len(shapes)) if i != first]

        def run(ins: list[torch.Tensor]) -> torch.Tensor:
            broadcast_binary(ins[first], ins[rest[0]], "mul", out=out)
            for i in rest[1:]:
                broadcast_binary(out, ins[i], "mul", out=out)
            return out

        return run

    def _channelwise(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        """x·γ_c (an unfolded layerscale) or PReLU with its slopes: the parameter broadcast over the channels."""
        out, weight = p.target.view(bufs, batch), self._params[p.step.node]["weight"]
        op = "prelu" if p.step.op == "prelu" else "mul"
        return lambda ins: broadcast_binary(ins[0], weight, op, out=out)

    def _norm(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        """Group norm (per sample and group) or layer norm (per pixel's channels), γ and β when affine."""
        out, w, a = p.target.view(bufs, batch), self._params[p.step.node], p.attrs
        weight, bias = w.get("weight"), w.get("bias")
        if p.step.op == "groupnorm":
            return lambda ins: group_norm(ins[0], a["groups"], weight, bias, a["eps"], out=out)
        return lambda ins: layer_norm_lastdim(ins[0], weight, bias, a["eps"], out=out)

    def _elementwise(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        """What the passes could not fuse: an activation (op none), an add (x·scale + y, then + z …),
        a bn or scale (x·s + t): one kernel (a chain for a sum of more than two)."""
        out, op, a = p.target.view(bufs, batch), p.step.op, p.attrs
        if op == "add":
            def run(ins: list[torch.Tensor]) -> torch.Tensor:
                broadcast_binary(ins[0], ins[1], "add", scale=a.get("scale", 1.0), out=out)
                for extra in ins[2:]:
                    broadcast_binary(out, extra, "add", out=out)
                return out

            return run
        if op in ("bn", "scale"):
            w = self._params[p.step.node]
            return lambda ins: broadcast_binary(ins[0], w["scale"], "affine", shift=w["shift"], out=out)
        act = Act(op, *REGISTRY[op].maths.scalar_values(a))  # type: ignore[union-attr]
        return lambda ins: broadcast_binary(ins[0], None, "none", act=act, out=out)

    def _concat_copy(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        """A concat whose producers could not write into it: each operand copied into its channel slice."""
        out = p.target.view(bufs, batch)
        bounds = list(itertools.accumulate((s[0] for s in p.shapes), initial=0))
        slices = [out[..., lo:hi] for lo, hi in zip(bounds, bounds[1:])]

        def run(ins: list[torch.Tensor]) -> torch.Tensor:
            for x, dst in zip(ins, slices):
                channel_shuffle(x, 1, out=dst)  # one group: a strided copy
            return out

        return run

    def _shuffle(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        out, groups = p.target.view(bufs, batch), p.attrs["groups"]
        return lambda ins: channel_shuffle(ins[0], groups, out=out)

    def _input(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        out, device, dtype = p.target.view(bufs, batch), self.device, self.dtype

        def copy_in(ins: list[torch.Tensor]) -> torch.Tensor:
            x = ins[0].to(device=device, dtype=dtype)
            return out.copy_(x.permute(0, 2, 3, 1) if x.dim() == 4 else x)

        return copy_in

    def _written(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        """An eliminated concat or a routed slice: its producers wrote its buffer."""
        out = p.target.view(bufs, batch)
        return lambda ins: out

    def _slice(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        lo, hi = p.attrs["start"], p.attrs["stop"]
        return lambda ins: ins[0][..., lo:hi]

    def _flatten(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        return lambda ins: ins[0].reshape(batch, -1)

    def _identity(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        return lambda ins: ins[0]

    def _slice_copy(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        lo, hi, out = p.attrs["start"], p.attrs["stop"], p.target.view(bufs, batch)
        return lambda ins: channel_shuffle(ins[0][..., lo:hi], 1, out=out)  # one group: a strided copy

    def _flatten_copy(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        out = p.target.view(bufs, batch)
        return lambda ins: out.copy_(_nchw(ins[0]).reshape(batch, -1))

    def _fallback(self, p: _Prepared, bufs: list[torch.Tensor], batch: int) -> Run:
        """The node's torch lowering on NCHW copies of its inputs, written back into its buffer."""
        out, lowered, hwc = p.target.view(bufs, batch), self._modules[p.step.node], p.hwc

        def run(ins: list[torch.Tensor]) -> torch.Tensor:
            args = [_nchw(t, f) for t, f in zip(ins, hwc)]
            if isinstance(lowered, Fn):
                y = lowered.fn(list(args), **lowered.kwargs) if lowered.packed else lowered.fn(*args, **lowered.kwargs)
            else:
                y = lowered(*args)
            return out.copy_(y.permute(0, 2, 3, 1) if y.dim() == 4 else y)

        return run

    # ---- running ------------------------------------------------------------------------------

    def __call__(self, *xs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        return self.forward(*xs)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if len(xs) != len(self.inputs):
            raise TypeError(f"{self.name} takes {len(self.inputs)} input(s), got {len(xs)}")
        if self.cuda_graph:
            return self._replay(xs)
        with torch.no_grad():
            values = self._run(xs)
            outs = tuple(_nchw(values[i], hwc).contiguous().clone() for i, hwc in zip(self._out_index, self._out_hwc))
        return outs[0] if len(outs) == 1 else outs

    def _replay(self, xs: Sequence[torch.Tensor]):
        """The CUDA-graph path: capture once per input shape (after an eager warm-up, which compiles
        and autotunes every kernel), then copy the inputs in, replay, and clone the outputs out."""
        key = tuple(tuple(x.shape) for x in xs)
        entry = self._graphs.get(key)
        if entry is None:
            static = [x.to(self.device, self.dtype).clone() for x in xs]
            pairs = list(zip(self._out_index, self._out_hwc))
            with torch.no_grad():
                values = self._run(static)
                outs = [_nchw(values[i], hwc).contiguous().clone() for i, hwc in pairs]

                def body() -> None:
                    values = self._run(static)
                    for out, (i, hwc) in zip(outs, pairs):
                        out.copy_(_nchw(values[i], hwc))

                entry = self._graphs[key] = (self._capture(body), static, outs)
        replay, static, outs = entry
        for s, x in zip(static, xs):
            s.copy_(x)
        replay()
        res = tuple(o.clone() for o in outs)
        return res[0] if len(res) == 1 else res

    def _capture(self, body: Callable[[], None]) -> Callable[[], None]:  # pragma: no cover - needs CUDA
        """Record `body`'s launches in a CUDA graph; return its replay."""
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            body()
        return graph.replay

    def _run(self, xs: Sequence[torch.Tensor], record: Callable[[Step, torch.Tensor], None] | None = None
             ) -> list[torch.Tensor]:
        """Every step's output value, by step index (the given inputs after them)."""
        bound = self._bind(xs[0].shape[0])
        values: list[Any] = [None] * len(bound) + list(xs)
        for i, (run, srcs) in enumerate(bound):
            values[i] = run([values[j] for j in srcs])
            if record is not None:
                record(self.steps[i], values[i])
        return values

    # ---- checking against the torch module -------------------------------------------------------

    def check(self, x: torch.Tensor | Sequence[torch.Tensor], torch_module: torch.nn.Module,
              rtol: float | None = None) -> str | None:
        """Run this network and `torch_module` (the original graph's, in eval mode) on `x`; return
        None when every comparable node agrees within `rtol` (max |a − b| / max |b|; default 1e-3
        for fp32, 2e-2 otherwise), else a message naming the first differing node and its `.cnn`
        span(s)."""
        xs = [x] if isinstance(x, torch.Tensor) else list(x)
        rtol = rtol if rtol is not None else (1e-3 if self.dtype == torch.float32 else 2e-2)
        ref = _record_torch(torch_module, xs)
        first: list[str] = []

        def compare(step: Step, value: torch.Tensor) -> None:
            if first or step.ref is None or step.ref not in ref or step.kind in ("input", "view"):
                return
            want = ref[step.ref].float()
            got = _nchw(value, self.plan.hwc_flat.get(step.node)).float().to(want.device)
            if got.shape != want.shape:
                return
            err = (got - want).abs().max().item() / max(want.abs().max().item(), 1e-6)
            if not err <= rtol:
                first.append(f"{step.where()}: {step.node} ({step.op}, {step.kernel}) differs from the torch "
                             f"module's {step.ref}: relative error {err:.3g} > {rtol:g}")

        with torch.no_grad():
            self._run([t.to(self.device, self.dtype) for t in xs], record=compare)
        return first[0] if first else None


def _act(attrs: Mapping[str, Any], slot: str, default: str = "none") -> Act:
    """The IR's activation slot `slot` (act, post, gate, pre: ``{slot}_act`` or ``act``, with its a, s)."""
    name = attrs.get("act" if slot == "act" else f"{slot}_act", default)
    key = "act" if slot == "act" else slot
    return Act(name, attrs.get(f"{key}_a", 1.0), attrs.get(f"{key}_s", 1.0))


def _check_device(device: torch.device) -> None:
    """A clear error where the kernels cannot run: no CUDA device, or the CPU without the interpreter."""
    interpreted = is_interpreted(_conv_igemm_kernel)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda': no CUDA device is available here; on the CPU use device='cpu' with "
                         "TRITON_INTERPRET=1 set before cnndsl.backends.triton is imported (slow: tiny inputs)")
    if device.type == "cpu" and not interpreted:
        raise ValueError("device='cpu' runs the kernels under Triton's interpreter: set TRITON_INTERPRET=1 "
                         "before cnndsl.backends.triton is imported")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device={str(device)!r}: the Triton backend runs on 'cuda' (or 'cpu' under the interpreter)")


def _record_torch(module: torch.nn.Module, xs: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every fx node's output of a torch-backend module, by IR node name."""
    values: dict[str, torch.Tensor] = {}

    class Rec(fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            name = n.meta.get("cnndsl_node")
            if name is not None and isinstance(out, torch.Tensor):
                values[name] = out.detach()
            return out

    param = next(iter(module.parameters()), None)
    dev = param.device if param is not None else torch.device("cpu")
    dt = param.dtype if param is not None else torch.float32
    with torch.no_grad():
        Rec(module).run(*[t.to(dev, dt) for t in xs])
    return values


def to_triton(graph: nx.MultiDiGraph, weights: Mapping[str, Any], device: str | torch.device = "cuda",
              dtype: torch.dtype | None = torch.float16, cuda_graph: bool = False) -> TritonNetwork:
    """Optimise `graph`, pack `weights` (a torch-backend `state_dict()`) and return the runnable network."""
    dtype = dtype or torch.float16
    itemsize = torch.empty((), dtype=dtype).element_size()
    plan = plan_launch(graph, weights, batch=1, itemsize=itemsize)
    return TritonNetwork(plan, plan.weights or {}, device, dtype, cuda_graph)


_LAUNCH: dict[str, Callable[[TritonNetwork, _Prepared, list[torch.Tensor], int], Run]] = {
    CONV_FAMILY: TritonNetwork._conv,
    FC_FAMILY: TritonNetwork._linear,
    "pool2d": TritonNetwork._pool,
    "global_pool2d": TritonNetwork._global_pool,
    "upsample2d": TritonNetwork._upsample,
    "local_response_norm": TritonNetwork._lrn,
    "softmax_lastdim": TritonNetwork._softmax,
    "broadcast_binary": TritonNetwork._mul,
    CHANNEL_FAMILY: TritonNetwork._channelwise,
    "group_norm": TritonNetwork._norm,
    "channel_shuffle": TritonNetwork._shuffle,
    ELEMENTWISE: TritonNetwork._elementwise,
    "concat copy": TritonNetwork._concat_copy,
    "layer_norm_lastdim": TritonNetwork._norm,
    RBF_FAMILY: TritonNetwork._rbf,
    "input": TritonNetwork._input,
    "none": TritonNetwork._written,
    "slice": TritonNetwork._slice,
    "flatten": TritonNetwork._flatten,
    "identity": TritonNetwork._identity,
    "slice copy": TritonNetwork._slice_copy,
    "flatten copy": TritonNetwork._flatten_copy,
    "torch lowering": TritonNetwork._fallback,
}
"""Each kernel family of the op table (table.py) → the method that binds a step of it to its buffers."""
