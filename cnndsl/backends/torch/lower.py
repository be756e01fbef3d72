"""IR → `torch.fx.GraphModule`: one call per IR node, submodules named as in the `.cnn` file.

The torch backend's lowering table `LOWERINGS` maps each registry op to a builder that
returns either an `nn.Module` (layers with parameters or train/eval behaviour: called as a
submodule at the node's hierarchical name) or a `Fn` (stateless: called as a function).
Activations are lowered from the registry's maths (activations.py), the passes' fused ops
by fused.py's table. The generated `forward` is straight-line code, so the module costs
nothing over a hand-written one.
"""

from __future__ import annotations

import math
import operator

import networkx as nx
import torch
import torch.nn.functional as F
from torch import fx, nn

from cnndsl.backends.torch import layers
from cnndsl.backends.torch.activations import FUNCTIONS
from cnndsl.backends.torch.fused import FUSED_LOWERINGS, channel_slice
from cnndsl.backends.torch.layers import Builder, Fn
from cnndsl.ir.graph import in_shapes, inputs_of
from cnndsl.ir.registry import REGISTRY


def _conv(attrs, ins, out):
    if attrs.get("table") is not None:
        m = layers.PartialConv2d(ins[0][0], attrs["table"], attrs["kernel"], attrs["stride"], attrs["pad"],
                                 attrs["dilation"], attrs["bias"])
    else:
            m = nn.Conv2d(ins[0][0], attrs["out"], attrs["kernel"], attrs["stride"], attrs["pad"], attrs["dilation"],
                      attrs["groups"], attrs["bias"])
    if attrs.get("bias_init") is not None:
        nn.init.constant_(m.bias, attrs["bias_init"])
    return m


def _fc(attrs, ins, out):
    cls = layers.FlatLinear if len(ins[0]) > 1 else nn.Linear
    layer = cls(math.prod(ins[0]), attrs["out"], attrs["bias"])
    if attrs.get("bias_init") is not None:
        nn.init.constant_(layer.bias, attrs["bias_init"])
    return layer


def _bn(attrs, ins, out):
    cls = nn.BatchNorm2d if len(ins[0]) == 3 else nn.BatchNorm1d
    return cls(ins[0][0], eps=attrs["eps"], momentum=attrs["momentum"], affine=attrs["affine"])


def _drop_path(attrs, ins, out):
    from torchvision.ops import StochasticDepth  # heavy optional dependency, needed by drop_path only

    return StochasticDepth(attrs["p"], "row")


def _pool(fn, global_fn):
    def build(attrs, ins, out):
        if attrs["kernel"] == "global":
            return Fn(global_fn, {"output_size": 1})
        if attrs["adaptive"]:
            return Fn(global_fn, {"output_size": attrs["kernel"]})
        kwargs = {"kernel_size": attrs["kernel"], "stride": attrs["stride"], "padding": attrs["pad"],
                  "ceil_mode": attrs["ceil"]}
        if "count_pad" in attrs and not attrs["count_pad"]:
            kwargs["count_include_pad"] = False
        return Fn(fn, kwargs)

    return build


def _activation(name: str) -> Builder:
    maths = REGISTRY[name].maths
    return lambda a, ins, out: Fn(FUNCTIONS[name], maths.scalars_of(a))  # type: ignore[union-attr]


LOWERINGS: dict[str, Builder] = {
    "conv": _conv,
    "fc": _fc,
    "bn": _bn,
    "lrn": lambda a, ins, out: nn.LocalResponseNorm(a["size"], a["alpha"], a["beta"], a["k"]),
    "scale": lambda a, ins, out: layers.ChannelScale(ins[0][0], a["bias"]),
    "layerscale": lambda a, ins, out: layers.LayerScale(ins[0][0], a["init"], len(ins[0])),
    "prelu": lambda a, ins, out: nn.PReLU(ins[0][0] if a["channels"] else 1, a["init"]),
    "groupnorm": lambda a, ins, out: nn.GroupNorm(a["groups"], ins[0][0], a["eps"], a["affine"]),
    "layernorm": lambda a, ins, out: (layers.LayerNorm2d if len(ins[0]) == 3 else nn.LayerNorm)(
        ins[0][0], a["eps"], a["affine"]),
    "dropout": lambda a, ins, out: nn.Dropout(a["p"]),
    "channel_shuffle": lambda a, ins, out: Fn(layers.channel_shuffle, {"groups": a["groups"]}),
    "channel_slice": lambda a, ins, out: Fn(channel_slice, {"start": a["start"], "stop": a["stop"]}),
    "channel_linear": lambda a, ins, out: layers.ChannelLinear(ins[0][0], a["out"], a["bias"]),
    "upsample": lambda a, ins, out: nn.Upsample(scale_factor=tuple(float(s) for s in a["scale"]), mode=a["mode"],
                                                align_corners=a["align_corners"] if a["mode"] == "bilinear" else None),
    "identity": lambda a, ins, out: nn.Identity(),
    "drop_path": _drop_path,
    "maxpool": _pool(F.max_pool2d, F.adaptive_max_pool2d),
    "avgpool": _pool(F.avg_pool2d, F.adaptive_avg_pool2d),
    "subsample": lambda a, ins, out: layers.Subsample(ins[0][0], a["kernel"], a["stride"]),
    "rbf": lambda a, ins, out: layers.RBF(ins[0][0], a["out"]),
    "flatten": lambda a, ins, out: Fn(torch.flatten, {"start_dim": 1}),
    "softmax": lambda a, ins, out: Fn(torch.softmax, {"dim": 1}),
    "add": lambda a, ins, out: Fn(operator.add) if a["scale"] == 1.0 and len(ins) == 2
    else Fn(layers.scaled_add, {"scale": a["scale"]}),
    "mul": lambda a, ins, out: Fn(operator.mul) if len(ins) == 2 else Fn(layers.product),
    "concat": lambda a, ins, out: Fn(torch.cat, {"dim": 1}, packed=True),
    "highway": lambda a, ins, out: Fn(layers.highway),
    "zeropad": lambda a, ins, out: Fn(layers.zeropad_shortcut, {"channels": a["out"], "stride_h": a["stride"][0],
                                                                   "stride_w": a["stride"][1]}),
    **{name: _activation(name) for name in FUNCTIONS},
    **FUSED_LOWERINGS,
}


def to_torch(graph: nx.MultiDiGraph) -> fx.GraphModule:
    """Build the network as a GraphModule; parameters are freshly initialised by PyTorch."""
    fx_graph = fx.Graph()
    modules: dict[str, nn.Module] = {}
    env: dict[str, fx.Node] = {}
    for node, data in graph.nodes(data=True):
        op = data["op"]
        if op == "input":
            env[node] = fx_graph.placeholder(node.replace(".", "_"))
            continue
        args = tuple(env[src] for src in inputs_of(graph, node))
        lowered = LOWERINGS[op](data["attrs"], in_shapes(graph, node), data["shape"])
        if isinstance(lowered, nn.Module):
            modules[node] = lowered
            fx_node = fx_graph.call_module(node, args)
        else:
            fx_node = fx_graph.create_node("call_function", lowered.fn, (list(args),) if lowered.packed else args,
                                           lowered.kwargs, name=node.replace(".", "_"))
        span = data.get("span")
        if span is not None:
            fx_node.meta["stack_trace"] = f'  File "{span.file}", line {span.line}, in {graph.graph["name"]}\n'
        fx_node.meta["cnndsl_node"] = node
        env[node] = fx_node
    outputs = [env[n] for n in graph.graph["outputs"]]
    fx_graph.output(outputs[0] if len(outputs) == 1 else tuple(outputs))
    gm = fx.GraphModule(_hierarchy(modules), fx_graph, class_name=_class_name(graph.graph["name"]))
    gm.graph.lint()
    gm.input_shapes = [tuple(graph.nodes[n]["shape"]) for n in graph.graph["inputs"]]
    return gm


def _hierarchy(modules: dict[str, nn.Module]) -> nn.Module:
    """A root module holding each layer at its dotted name, registered in source order."""
    root = nn.Module()
    for qualname, module in modules.items():
        parent = root
        *path, leaf = qualname.split(".")
        for part in path:
            if not hasattr(parent, part):
                parent.add_module(part, nn.Module())
            parent = getattr(parent, part)
        parent.add_module(leaf, module)
    return root


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_")) or "Network"

