"""The Inception family in the zoo: parameter counts, the grids of Inception-v2's table, and
outputs equal to torchvision's and timm's implementations once their weights are copied in.

GoogLeNet (torchvision's batch-normalised variant) and Inception-v3 follow torchvision,
Inception-v4 and Inception-ResNet-v2 follow timm, layer for layer and name for name: the
weights pair up tensor by tensor and the state_dict keys are the same. Inception-v2 and
Inception-ResNet-v1 exist only as papers, so they are checked by their sizes.
"""

from __future__ import annotations

import math

import networkx as nx
import pytest
import torch
import torchvision

import cnndsl
from cnndsl.backends.torch.weights import load_weights
from tests.conftest import ZOO

timm = pytest.importorskip("timm")

PARAMS = {
    "variants/googlenet_torchvision": 13_004_888,  # torchvision googlenet, aux_logits=True
    "inception_v2": 25_954_248,  # table 1 of "Rethinking the Inception Architecture" (widths: v3's)
    "inception_v3": 27_161_264,  # torchvision inception_v3, aux_logits=True
    "inception_v4": 42_679_816,  # timm inception_v4
    "inception_resnet_v1": 22_756_328,  # the paper's figures 10-14
    "inception_resnet_v2": 55_843_464,  # timm inception_resnet_v2
}


def compile_zoo(name: str, **kwargs) -> cnndsl.Network:
    return cnndsl.compile_file(ZOO / f"{name}.cnn", **kwargs)


def module_output(graph: nx.MultiDiGraph, prefix: str) -> str:
    """The one node under `prefix` whose consumers all lie outside it: the module's result."""
    inside = {n for n in graph if n == prefix or n.startswith(prefix + ".")}
    assert inside, f"no nodes named {prefix}*"
    exits = [n for n in inside if not set(graph.successors(n)) & inside]
    assert len(exits) == 1, f"{prefix} has several exits: {exits}"
    return exits[0]


def shape_of(net: cnndsl.Network, prefix: str) -> tuple[int, ...]:
    return net.graph.nodes[module_output(net.graph, prefix)]["shape"]


# ---- parameter counts ----------------------------------------------------------------


@pytest.mark.parametrize(("name", "params"), PARAMS.items(), ids=list(PARAMS))
def test_parameter_count(name, params):
    assert compile_zoo(name).summary().params == params


@pytest.mark.parametrize(
    ("name", "aux", "main"),
    [
        ("variants/googlenet_torchvision", ("aux1.", "aux2."), 6_624_904),  # googlenet(aux_logits=False)
        ("inception_v3", ("AuxLogits.",), 23_834_568),  # inception_v3(aux_logits=False)
    ],
)
def test_main_path_without_auxiliary_heads(name, aux, main):
    rows = compile_zoo(name).summary().rows
    assert sum(r.params for r in rows if not r.name.startswith(aux)) == main


# ---- Inception-v2: table 1 of the paper ------------------------------------------------


def test_inception_v2_follows_table_1():
    net = compile_zoo("inception_v2")
    expected = {
        "conv1": (32, 149, 149),
        "conv2": (32, 147, 147),
        "conv3": (64, 147, 147),
        "pool1": (64, 73, 73),
        "conv4": (80, 71, 71),
        "conv5": (192, 35, 35),
        "conv6": (288, 35, 35),
        "mixed_35.0": (288, 35, 35),
        "mixed_35.1": (288, 35, 35),
        "mixed_35.2": (288, 35, 35),
        "reduction_17": (768, 17, 17),
        **{f"mixed_17.{i}": (768, 17, 17) for i in range(5)},
        "reduction_8": (1280, 8, 8),
        "mixed_8.0": (2048, 8, 8),
        "mixed_8.1": (2048, 8, 8),
        "pool2": (2048, 1, 1),
        "fc": (1000,),
    }
    assert {name: shape_of(net, name) for name in expected} == expected
    # 3 x figure 5, 5 x figure 6, 2 x figure 7
    kids = {stage: {n.split(".")[1] for n in net.graph if n.startswith(stage + ".")}
            for stage in ("mixed_35", "mixed_17", "mixed_8")}
    assert {k: len(v) for k, v in kids.items()} == {"mixed_35": 3, "mixed_17": 5, "mixed_8": 2}
    # figure 5 has no 5x5 convolution; figure 6 factorises 7x7 into 1x7 and 7x1
    kernels = {d["attrs"]["kernel"] for n, d in net.graph.nodes(data=True) if d["op"] == "conv"}
    assert (5, 5) not in kernels and {(1, 7), (7, 1), (1, 3), (3, 1)} <= kernels


def test_inception_resnet_v1_grids():
    net = compile_zoo("inception_resnet_v1")
    assert shape_of(net, "conv2d_4b") == (256, 35, 35)
    assert {shape_of(net, f"repeat.{i}") for i in range(5)} == {(256, 35, 35)}
    assert shape_of(net, "mixed_6a") == (896, 17, 17)
    assert {shape_of(net, f"repeat_1.{i}") for i in range(10)} == {(896, 17, 17)}
    assert shape_of(net, "mixed_7a") == (1792, 8, 8)
    assert {shape_of(net, f"repeat_2.{i}") for i in range(5)} == {(1792, 8, 8)}
    scales = [d["attrs"]["scale"] for _, d in net.graph.nodes(data=True) if d["op"] == "add"]
    assert scales == [0.17] * 5 + [0.1] * 10 + [0.2] * 5


# ---- outputs equal to the reference implementations -----------------------------------


def randomise(model: torch.nn.Module) -> None:
    """Weights of a sensible scale and non-trivial batch-norm statistics, so that a
    mis-paired tensor (or a wrong eps or pooling mode) shows in the outputs."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=gen)
                if m.bias is not None:
                    m.bias.uniform_(-0.1, 0.1, generator=gen)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.1, 0.1, generator=gen)
                m.running_mean.uniform_(-0.1, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)


def googlenet():
    return torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)


def inception_v3():
    return torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=True, transform_input=False)


REFERENCES = [
    # name, reference, input (the auxiliary heads fix GoogLeNet's and v3's), by call order
    ("variants/googlenet_torchvision", googlenet, (3, 224, 224), True),
    ("inception_v3", inception_v3, (3, 299, 299), False),
    ("inception_v4", lambda: timm.create_model("inception_v4", pretrained=False), (3, 107, 107), False),
    ("inception_resnet_v2", lambda: timm.create_model("inception_resnet_v2", pretrained=False), (3, 107, 107), False),
]


@pytest.mark.parametrize(("name", "factory", "shape", "by_calls"), REFERENCES, ids=[r[0] for r in REFERENCES])
def test_matches_reference(name, factory, shape, by_calls):
    torch.manual_seed(0)
    net = compile_zoo(name, input="x".join(map(str, shape)))
    model = net.to_torch().eval()
    reference = factory().eval()
    assert sum(p.numel() for p in reference.parameters()) == PARAMS[name]
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    # the same layers under the same names
    assert set(model.state_dict()) == set(reference.state_dict())
    randomise(reference)
    # torchvision registers GoogLeNet's auxiliary heads after inception5b but calls them after
    # 4a and 4d, where the .cnn file computes them: that pairing needs the forward-pass order.
    # The other networks register their layers in the order they call them.
    pairs = load_weights(model, reference if by_calls else reference.state_dict())
    assert all(ours == theirs for ours, theirs in pairs)
    x = torch.randn(1, *shape)
    with torch.no_grad():
        expected, got = reference(x), model(x)
    if isinstance(got, tuple):  # (main, aux …): the reference in eval mode gives the main logits
        got = got[0]
    assert got.shape == expected.shape == (1, 1000)
    assert expected.abs().max().item() > 0.1
    assert (got - expected).abs().max().item() < 1e-4


def test_googlenet_aux_heads_match_torchvision_in_training_mode():
    """The aux heads pool adaptively to 4x4, as torchvision's do: equal outputs in training too."""
    torch.manual_seed(0)
    net = cnndsl.compile_file(ZOO / "variants" / "googlenet_torchvision.cnn")
    model = net.to_torch()
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    cnndsl.load_weights(model, reference)
    model.train()
    reference.train()
    for m in list(model.modules()) + list(reference.modules()):
        if isinstance(m, (torch.nn.Dropout, torch.nn.BatchNorm2d)):
            m.eval()  # deterministic: no dropout masks, running statistics
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ours, theirs = model(x), reference(x)
    for a, b in zip(ours, (theirs.logits, theirs.aux_logits1, theirs.aux_logits2)):
        assert (a - b).abs().max() < 1e-4
