"""Run an optimised cnndsl IR with the Triton kernels: one launch per IR node, NHWC buffers.

    to_triton(graph, weights=None, device="cuda", dtype=torch.float16, cuda_graph=False) -> TritonNetwork
    plan_launch(graph, batch=1, itemsize=2) -> LaunchPlan        (plan.py: passes only, no weights, no device)

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
from typing import Any

import networkx as nx
import torch

from cnndsl.backends.triton.plan import CONV_OPS, FC_OPS, LaunchPlan, LaunchReport, Step, plan_launch
from cnndsl.ir.graph import in_shapes, inputs_of
from cnndsl.passes.concat_elim import resolve_slice

__all__ = ["LaunchPlan", "LaunchReport", "Step", "TritonNetwork", "plan_launch", "to_triton"]


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

    def _replay(self, xs: Sequence[torch.Tensor]):
        """The CUDA-graph path: capture once per input shape (after an eager warm-up, which compiles
        and autotunes every kernel), then copy the inputs in, replay, and clone the outputs out."""
        key = tuple(tuple(x.shape) for x in xs)
        entry = self._graphs.get(key)
        if entry is None:
            static = [x.to(self.device, self.dtype).clone() for x in xs]
            with torch.no_grad():
                env = self._run(static)
                outs = [_nchw(env[n], self.plan.hwc_flat.get(n)).contiguous().clone() for n in self.outputs]

                def body() -> None:
                    env = self._run(static)
                    for out, n in zip(outs, self.outputs):
                        out.copy_(_nchw(env[n], self.plan.hwc_flat.get(n)))

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
