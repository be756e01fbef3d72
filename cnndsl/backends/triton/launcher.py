"""Run an optimised cnndsl IR with the Triton kernels: one launch per IR node, NHWC buffers.

    to_triton(graph, weights=None, device="cuda", dtype=torch.float16, cuda_graph=False) -> TritonNetwork
    plan_launch(graph, batch=1, itemsize=2) -> LaunchPlan        (passes only: no weights, no device)

`to_triton` takes the torch backend's `state_dict()` for `graph` (a fresh `to_torch(graph)`'s
when None), runs `cnndsl.passes.optimize` (densify → fold_bn → fuse_1x1 → fuse_epilogue →
fuse_post_norm → fuse_prologue → concat_elim → plan_buffers), packs the weights once (conv:
`pack_conv_weight`; an fc or rbf reading a C×H×W map gets its columns permuted from (c, h, w) to
the NHWC (h, w, c) order; biases, prologue and post-norm vectors stay fp32) and returns a callable
`TritonNetwork`:

- `net(x, ...)` takes NCHW inputs (flat ones as [N, F]), like the torch module, and returns the
  outputs in NCHW (or flat), in the network's output order (a tuple when there are several);
- activations live in NHWC buffers laid out by the buffer plan, allocated on the first call
  for each batch size (sizes scale linearly with the batch); a producer of an eliminated
  concat writes straight into its channel slice (`out=`, `c_offset=`), and a merged 1x1 conv
  writes the slice a concat needs there too (`route=`);
- each IR node is one `Step`: a Triton kernel (`conv2d` for fused_conv / highway_conv, with
  their prologue and epilogue, `linear` for fused_fc / highway_fc, `pool2d` / `global_pool2d`,
  `local_response_norm`, `softmax_lastdim`, `euclidean_rbf`), a view (flatten of a map read
  only by fc layers, dropout, a channel slice), nothing (an eliminated concat, a routed slice),
  or a *torch fallback*: the node's torch lowering applied to NCHW copies of its inputs and
  written back into its buffer (what the passes leave unfused: a bn read by a pool and by
  something else, an add of one tensor to itself, a concat of an input, standalone
  activations, a second slice of one merged conv into a concat, …). Fallbacks are counted
  and listed in `net.report`; no zoo network has one;
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

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import torch

from cnndsl.ir.graph import in_shapes, inputs_of
from cnndsl.passes.concat_elim import resolve_slice, routed_by
from cnndsl.passes.pipeline import OptimizeReport, optimize

FC_OPS = ("fused_fc", "highway_fc")
CONV_OPS = ("fused_conv", "highway_conv")
VIEW_OPS = ("flatten", "dropout", "slice", "input")
FOLDABLE = ("bn", "scale")


# --------------------------------------------------------------------------------------------
# The plan: what runs for each node (no weights, no device)
# --------------------------------------------------------------------------------------------


@dataclass
class Step:
    """One IR node of the optimised graph and how it runs."""

    node: str
    op: str
    kind: str  # "triton", "torch" (fallback), "view", "input", "none" (eliminated concat, routed slice)
    kernel: str  # the Triton wrapper or the fallback's description
    covers: tuple[str, ...]  # the original IR nodes whose work this step does
    spans: tuple[str, ...]  # their `.cnn` spans, file:line:col
    ref: str | None  # the original node whose output equals this step's (for check), or None

    def where(self) -> str:
        return ", ".join(self.spans) if self.spans else "(no source span)"


@dataclass
class LaunchReport:
    """The optimisation report plus what the launcher emits."""

    optimize: OptimizeReport
    kernels: int  # Triton launches per forward pass
    fallbacks: list[tuple[str, str, str]] = field(default_factory=list)  # (node, what, span)
    views: int = 0
    kernel_ops: dict[str, int] = field(default_factory=dict)  # Triton launches by wrapper
    routed: int = 0  # branch slices a merged 1x1 convolution writes straight into their concat

    @property
    def conv_kernels(self) -> int:
        return self.kernel_ops.get("conv2d", 0)

    def __str__(self) -> str:
        o = self.optimize
        head = (f"{o.name}: {o.convs} convolutions → {self.conv_kernels} kernels"
                + (f" ({o.densified} subsampling / table layers as convolutions)" if o.densified else "") + ", "
                f"{o.residual_adds_fused} residual adds fused, {o.concats_eliminated} concats eliminated"
                + (f", {o.bns_folded} batch norms folded" if o.bns_folded else "")
                + (f", {o.highways_fused} highway gates fused" if o.highways_fused else "")
                + (f", {o.prologues} pre-activations moved into conv prologues" if o.prologues else "")
                + (f", {o.post_norms} batch norms after an add fused" if o.post_norms else ""))
        by_op = ", ".join(f"{n} {k}" for k, n in sorted(self.kernel_ops.items()))
        lines = [head,
                 f"launches per forward: {self.kernels} Triton kernels ({by_op}) + {len(self.fallbacks)} torch "
                 f"fallbacks; {self.views} views"
                 + (f"; {self.routed} merged-1x1 branch slices written straight into their concats"
                    if self.routed else ""),
                 f"passes: {o}"]
        if self.fallbacks:
            lines.append(f"torch fallbacks ({len(self.fallbacks)}):")
            lines += [f"  {node}: {what}  [{span}]" for node, what, span in self.fallbacks]
        else:
            lines.append("torch fallbacks: none")
        return "\n".join(lines)


@dataclass
class LaunchPlan:
    graph: nx.MultiDiGraph  # optimised
    original: nx.MultiDiGraph
    weights: dict[str, Any] | None
    steps: list[Step]
    hwc_flat: dict[str, tuple[int, int, int]]  # flat tensors stored in (h, w, c) order: node → (C, H, W)
    report: LaunchReport

    def listing(self) -> str:
        """One line per launch, in order: its number, what runs, the node, the `.cnn` lines it covers
        and the original nodes it absorbed (views and eliminated concats move no data: left out)."""
        rows = [(st.kernel if st.kind == "triton" else f"torch: {st.kernel}", st.node, st.where(),
                 ", ".join(st.covers[1:])) for st in self.steps if st.kind in ("triton", "torch")]
        w_kernel = max((len(r[0]) for r in rows), default=0)
        w_node = max((len(r[1]) for r in rows), default=0)
        lines = [f"{i:>4}  {k:<{w_kernel}}  {n:<{w_node}}  [{where}]" + (f"  + {also}" if also else "")
                 for i, (k, n, where, also) in enumerate(rows, 1)]
        return "\n".join(lines)


def _span(graph: nx.MultiDiGraph, node: str) -> str | None:
    if node not in graph:
        return None
    span = graph.nodes[node].get("span")
    return None if span is None else str(span)


def _folded_after(original: nx.MultiDiGraph, optimised: nx.MultiDiGraph, node: str) -> list[str]:
    """The bn/scale nodes fold_bn removed after `node` (its chain of sole consumers)."""
    chain: list[str] = []
    cur = node
    while cur in original:
        succ = list(original.successors(cur))
        if len(succ) != 1 or original.nodes[succ[0]]["op"] not in FOLDABLE or succ[0] in optimised:
            break
        cur = succ[0]
        chain.append(cur)
    return chain


def _only_fc_readers(graph: nx.MultiDiGraph, node: str) -> bool:
    """Every reader of `node` (through dropouts) is an fc-like layer at port 0 and it is no output."""
    if node in graph.graph["outputs"]:
        return False
    for _, dst, port in graph.out_edges(node, data="port"):
        op = graph.nodes[dst]["op"]
        if op == "dropout":
            if not _only_fc_readers(graph, dst):
                return False
        elif op not in FC_OPS or port != 0:
            return False
    return True


def plan_launch(graph: nx.MultiDiGraph, weights: Mapping[str, Any] | None = None, batch: int = 1,
                itemsize: int = 2) -> LaunchPlan:
    """Optimise `graph` and decide what runs for each node; needs neither weights nor a device."""
    g, w, opt = optimize(graph, weights, batch=batch, itemsize=itemsize)
    steps: list[Step] = []
    hwc_flat: dict[str, tuple[int, int, int]] = {}
    fallbacks: list[tuple[str, str, str]] = []
    kernel_ops: dict[str, int] = {}
    views = 0
    for node, data in g.nodes(data=True):
        op, attrs = data["op"], data["attrs"]
        fused = tuple(attrs.get("fused", ()))
        covers = (node, *_folded_after(graph, g, node), *fused, *attrs.get("pre_fused", ()))
        ref: str | None = node if node in graph and graph.nodes[node]["op"] == op else None
        if op in CONV_OPS + FC_OPS:
            if op.startswith("highway"):
                ref = node
            else:
                folded = _folded_after(graph, g, node)
                ref = fused[-1] if fused else (folded[-1] if folded else node)
            if ref not in graph:
                ref = None
        if op == "input":
            kind, kernel = "input", "copy in (NCHW → NHWC)"
        elif op in CONV_OPS:
            kind, kernel = "triton", "conv2d"
        elif op in FC_OPS:
            kind, kernel = "triton", "linear"
        elif op in ("maxpool", "avgpool") and len(data["shape"]) == 3:
            kind = "triton"
            kernel = "global_pool2d" if attrs["kernel"] == "global" else "pool2d"
        elif op == "lrn" and len(data["shape"]) == 3:
            kind, kernel = "triton", "local_response_norm"
        elif op == "softmax":
            kind, kernel = "triton", "softmax_lastdim"
        elif op == "rbf":
            kind, kernel = "triton", "euclidean_rbf"
        elif op == "concat" and attrs.get("eliminated"):
            kind, kernel = "none", "eliminated concat (producers write its slices)"
        elif op == "dropout":
            kind, kernel = "view", "identity"
            src = inputs_of(g, node)[0]
            if src in hwc_flat:
                hwc_flat[node] = hwc_flat[src]
        elif op == "slice" and "out_slice" not in attrs:
            kind, kernel = "view", "channel slice"
            ref = None
        elif op == "flatten":
            src_shape = g.nodes[inputs_of(g, node)[0]]["shape"]
            if len(src_shape) == 3 and math.prod(src_shape[1:]) > 1 and not _only_fc_readers(g, node):
                kind, kernel = "torch", "flatten in (c, h, w) order (NHWC → NCHW copy)"
            else:
                kind, kernel = "view", "flatten"
                if len(src_shape) == 3:
                    hwc_flat[node] = tuple(src_shape)  # type: ignore[assignment]
        elif op == "slice" and routed_by(g, node):
            kind, kernel = "none", f"written into its concat slice by {routed_by(g, node)}"
            ref = None
        elif op == "slice":
            kind, kernel = "torch", "slice copied into its concat slice"
            ref = None
        else:
            kind, kernel = "torch", f"{op} (torch lowering)"
        if kind == "triton":
            kernel_ops[kernel] = kernel_ops.get(kernel, 0) + 1
        elif kind == "view":
            views += 1
        spans = tuple(s for s in (_span(graph, n) or _span(g, n) for n in covers) if s)
        step = Step(node, op, kind, kernel, covers, spans, ref)
        if kind == "torch":
            fallbacks.append((node, kernel, step.where()))
        steps.append(step)
    routed = sum(1 for st in steps if st.op == "slice" and st.kind == "none")
    report = LaunchReport(opt, sum(kernel_ops.values()), fallbacks, views, kernel_ops, routed)
    return LaunchPlan(g, graph, w, steps, hwc_flat, report)


# --------------------------------------------------------------------------------------------
# The runtime
# --------------------------------------------------------------------------------------------


def _nchw(t: torch.Tensor, hwc: tuple[int, int, int] | None = None) -> torch.Tensor:
    """A launcher value (NHWC map, or flat maybe in (h, w, c) order) in the torch backend's layout."""
    if t.dim() == 4:
        return t.permute(0, 3, 1, 2)
    if hwc is not None:
        c, h, w = hwc
        return t.reshape(t.shape[0], h, w, c).permute(0, 3, 1, 2).reshape(t.shape[0], -1)
    return t


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
        self._buffers: dict[int, list[torch.Tensor]] = {}
        self._graphs: dict[tuple, Any] = {}
        plan_info = plan.graph.graph.get("buffer_plan", {"batch": 1, "itemsize": 2})
        per = plan_info["batch"] * plan_info["itemsize"]
        self._buffer_elems = [-(-int(b) // per) for b in plan.graph.graph.get("buffers", [])]

    # ---- weights --------------------------------------------------------------------------

    def _tensor(self, v: Any, dtype: torch.dtype) -> torch.Tensor:
        t = v if isinstance(v, torch.Tensor) else torch.as_tensor(v)
        return t.detach().to(device=self.device, dtype=dtype)

    def _pack(self, weights: Mapping[str, Any]) -> None:
        from cnndsl.backends.torch.lower import LOWERINGS
        from cnndsl.backends.triton.conv import pack_conv_weight

        g = self.graph
        for step in self.steps:
            node, data = step.node, g.nodes[step.node]
            if step.kind == "triton" and step.op in CONV_OPS + FC_OPS + ("rbf",):
                wt = self._tensor(weights[f"{node}.weight"], torch.float32)
                if step.op in CONV_OPS:
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
                if step.op != "rbf" and data["attrs"].get("bias", True) and f"{node}.bias" in weights:
                    p["bias"] = self._tensor(weights[f"{node}.bias"], torch.float32).contiguous()
                for flag, keys in (("pre", ("pre_scale", "pre_shift")), ("post_norm", ("post_scale", "post_shift"))):
                    if data["attrs"].get(flag):
                        for key in keys:
                            p[key] = self._tensor(weights[f"{node}.{key}"], torch.float32).contiguous()
                self._params[node] = p
            elif step.kind == "torch" and step.op in LOWERINGS and step.op not in ("flatten", "slice"):
                lowered = LOWERINGS[step.op](data["attrs"], in_shapes(g, node), data["shape"])
                if isinstance(lowered, torch.nn.Module):
                    prefix = node + "."
                    sd = {k[len(prefix):]: self._tensor(v, torch.float32) for k, v in weights.items()
                          if k.startswith(prefix) and "." not in k[len(prefix):]}
                    lowered.load_state_dict(sd, strict=True)
                    lowered = lowered.to(device=self.device, dtype=self.dtype).eval()
                self._modules[node] = lowered

    # ---- buffers ----------------------------------------------------------------------------

    def _alloc(self, batch: int) -> list[torch.Tensor]:
        bufs = self._buffers.get(batch)
        if bufs is None:
            bufs = [torch.empty(n * batch, dtype=self.dtype, device=self.device) for n in self._buffer_elems]
            self._buffers[batch] = bufs
        return bufs

    def _target(self, node: str, bufs: list[torch.Tensor], batch: int) -> tuple[torch.Tensor, int]:
        """(the whole tensor the node writes into, channel offset): its own, or its concat's."""
        g = self.graph
        where = resolve_slice(g, node)
        owner, offset = (node, 0) if where is None else where
        shape = g.nodes[owner]["shape"]
        buf = bufs[g.nodes[node]["attrs"]["buffer"]]
        full = buf[: batch * math.prod(shape)]
        full = full.view(batch, shape[1], shape[2], shape[0]) if len(shape) == 3 else full.view(batch, *shape)
        return full, offset

    def _out_view(self, node: str, bufs: list[torch.Tensor], batch: int) -> torch.Tensor:
        full, off = self._target(node, bufs, batch)
        c = self.graph.nodes[node]["shape"][0]
        return full[..., off:off + c]

    # ---- running ------------------------------------------------------------------------------

    def __call__(self, *xs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        return self.forward(*xs)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if len(xs) != len(self.inputs):
            raise TypeError(f"{self.name} takes {len(self.inputs)} input(s), got {len(xs)}")
        if self.cuda_graph:
            return self._replay(xs)
        with torch.no_grad():
            env = self._run(xs)
            outs = tuple(self._output(n, env) for n in self.outputs)
        return outs[0] if len(outs) == 1 else outs

    def _output(self, node: str, env: dict[str, torch.Tensor]) -> torch.Tensor:
        return _nchw(env[node], self.plan.hwc_flat.get(node)).contiguous().clone()

    def _replay(self, xs: Sequence[torch.Tensor]):  # pragma: no cover - needs a CUDA device
        key = tuple(tuple(x.shape) for x in xs)
        entry = self._graphs.get(key)
        if entry is None:
            static = [x.to(self.device, self.dtype).clone() for x in xs]
            with torch.no_grad():
                self._run(static)  # warm-up: compiles and autotunes outside the capture
                torch.cuda.synchronize(self.device)
                cg = torch.cuda.CUDAGraph()
                with torch.cuda.graph(cg):
                    env = self._run(static)
                    outs = [_nchw(env[n], self.plan.hwc_flat.get(n)).contiguous() for n in self.outputs]
            entry = self._graphs[key] = (cg, static, outs)
        cg, static, outs = entry
        for s, x in zip(static, xs):
            s.copy_(x)
        cg.replay()
        res = tuple(o.clone() for o in outs)
        return res[0] if len(res) == 1 else res

    def _run(self, xs: Sequence[torch.Tensor], record: Callable[[Step, torch.Tensor], None] | None = None
             ) -> dict[str, torch.Tensor]:
        batch = xs[0].shape[0]
        bufs = self._alloc(batch)
        env: dict[str, torch.Tensor] = {}
        given = dict(zip(self.inputs, xs))
        for step in self.steps:
            value = self._step(step, env, bufs, batch, given)
            if value is not None:
                env[step.node] = value
                if record is not None:
                    record(step, value)
        return env

    def _step(self, step: Step, env: dict[str, torch.Tensor], bufs: list[torch.Tensor], batch: int,
              given: dict[str, torch.Tensor]) -> torch.Tensor | None:
        from cnndsl.backends import triton as K

        g, node, op = self.graph, step.node, step.op
        attrs = g.nodes[node]["attrs"]
        ins = [env[s] for s in inputs_of(g, node)]
        if step.kind == "input":
            out = self._out_view(node, bufs, batch)
            x = given[node].to(device=self.device, dtype=self.dtype)
            out.copy_(x.permute(0, 2, 3, 1) if x.dim() == 4 else x)
            return out
        if step.kind == "none":  # eliminated concat or routed slice: its producers wrote the buffer
            full, off = self._target(node, bufs, batch)
            return full[..., off:off + g.nodes[node]["shape"][0]]
        if step.kind == "view":
            x = ins[0]
            if op == "slice":
                return x[..., attrs["start"]:attrs["stop"]]
            if op == "flatten":
                return x.reshape(batch, -1)
            return x  # dropout
        if step.kind == "torch":
            return self._fallback(step, ins, bufs, batch)
        full, off = self._target(node, bufs, batch)
        if op in CONV_OPS:
            p = self._params[node]
            kw = dict(stride=attrs["stride"], padding=attrs["pad"], dilation=attrs["dilation"],
                      groups=attrs["groups"], act=attrs.get("act", "none"), act_a=attrs.get("act_a", 1.0),
                      act_s=attrs.get("act_s", 1.0), out=full, c_offset=off)
            if attrs.get("pre"):
                kw.update(pre=(p["pre_scale"], p["pre_shift"]), pre_act=attrs.get("pre_act", "none"),
                          pre_a=attrs.get("pre_a", 1.0), pre_s=attrs.get("pre_s", 1.0))
            if attrs.get("route"):
                sl = attrs["route"]
                into, at = self._target(sl, bufs, batch)
                kw["route"] = (g.nodes[sl]["attrs"]["start"], g.nodes[sl]["attrs"]["stop"], into, at)
            if op == "highway_conv":
                kw.update(highway_carry=ins[1], gate_act=attrs.get("gate_act", "sigmoid"),
                          gate_a=attrs.get("gate_a", 1.0), gate_s=attrs.get("gate_s", 1.0))
            else:
                kw.update(self._epilogue(attrs, ins, p))
                if attrs.get("residual", "none") == "zeropad":
                    kw["res_stride"] = tuple(attrs.get("res_stride", (1, 1)))
            return K.conv2d(ins[0], p["weight"], p.get("bias"), **kw)
        if op in FC_OPS:
            p = self._params[node]
            x = ins[0].reshape(batch, -1)
            kw = dict(act=attrs.get("act", "none"), act_a=attrs.get("act_a", 1.0), act_s=attrs.get("act_s", 1.0),
                      out=full, c_offset=off)
            if op == "highway_fc":
                kw.update(highway_carry=ins[1], gate_act=attrs.get("gate_act", "sigmoid"),
                          gate_a=attrs.get("gate_a", 1.0), gate_s=attrs.get("gate_s", 1.0))
            else:
                kw.update(self._epilogue(attrs, ins, p))
            return K.linear(x, p["weight"], p.get("bias"), **kw)
        if op in ("maxpool", "avgpool"):
            mode = "max" if op == "maxpool" else "avg"
            if attrs["kernel"] == "global":
                return K.global_pool2d(ins[0], mode, out=full, c_offset=off)
            if attrs.get("adaptive"):
                return K.pool2d(ins[0], mode, output_size=attrs["kernel"], out=full, c_offset=off)
            return K.pool2d(ins[0], mode, attrs["kernel"], attrs["stride"], attrs["pad"],
                            ceil_mode=bool(attrs.get("ceil", False)),
                            count_include_pad=bool(attrs.get("count_pad", True)), out=full, c_offset=off)
        c = g.nodes[node]["shape"][0]
        out = full[..., off:off + c]
        if op == "lrn":
            return K.local_response_norm(ins[0], attrs["size"], attrs["alpha"], attrs["beta"], attrs["k"], out=out)
        if op == "softmax":
            return K.softmax_lastdim(ins[0], out=out)
        if op == "rbf":
            return K.euclidean_rbf(ins[0].reshape(batch, -1), self._params[node]["weight"], out=full, c_offset=off)
        raise AssertionError(f"no Triton launch for {op}")  # pragma: no cover

    @staticmethod
    def _epilogue(attrs: Mapping[str, Any], ins: list[torch.Tensor], p: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        kw: dict[str, Any] = dict(post_act=attrs.get("post_act", "none"), post_a=attrs.get("post_a", 1.0),
                                  post_s=attrs.get("post_s", 1.0))
        if attrs.get("post_norm"):
            kw["post_norm"] = (p["post_scale"], p["post_shift"])
        if attrs.get("residual", "none") != "none":
            r = ins[1]
            kw.update(residual=r if r.dim() == 4 else r.reshape(r.shape[0], -1), scale=attrs.get("scale", 1.0))
        return kw

    def _fallback(self, step: Step, ins: list[torch.Tensor], bufs: list[torch.Tensor], batch: int) -> torch.Tensor:
        g, node = self.graph, step.node
        srcs = inputs_of(g, node)
        out = self._out_view(node, bufs, batch)
        if step.op == "flatten":
            y = _nchw(ins[0]).reshape(batch, -1)
        elif step.op == "slice":
            a = g.nodes[node]["attrs"]
            y = ins[0][..., a["start"]:a["stop"]]
            out.copy_(y)
            return out
        else:
            args = [_nchw(t, self.plan.hwc_flat.get(s)) for t, s in zip(ins, srcs)]
            lowered = self._modules[node]
            if isinstance(lowered, torch.nn.Module):
                y = lowered(*args)
            elif lowered.packed:
                y = lowered.fn(list(args), **lowered.kwargs)
            else:
                y = lowered.fn(*args, **lowered.kwargs)
        out.copy_(y.permute(0, 2, 3, 1) if y.dim() == 4 else y)
        return out

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


def _check_device(device: torch.device) -> None:
    """A clear error where the kernels cannot run: no CUDA device, or the CPU without the interpreter."""
    from cnndsl.backends.triton._common import is_interpreted
    from cnndsl.backends.triton.conv import _conv_igemm_kernel

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
    from torch import fx

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


def to_triton(graph: nx.MultiDiGraph, weights: Mapping[str, Any] | None = None, device: str | torch.device = "cuda",
              dtype: torch.dtype | None = torch.float16, cuda_graph: bool = False) -> TritonNetwork:
    """Optimise `graph`, pack `weights` (a torch-backend `state_dict()`) and return the runnable network."""
    dtype = dtype or torch.float16
    if weights is None:
        from cnndsl.backends.torch.lower import to_torch

        weights = to_torch(graph).state_dict()
    itemsize = torch.empty((), dtype=dtype).element_size()
    plan = plan_launch(graph, weights, batch=1, itemsize=itemsize)
    return TritonNetwork(plan, plan.weights or {}, device, dtype, cuda_graph)
