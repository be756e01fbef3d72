"""The model zoo: every network compiles, and its sizes match the papers and torchvision."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

import cnndsl

ZOO = Path(__file__).resolve().parent.parent / "zoo"
NETWORKS = sorted(ZOO.glob("*.cnn"))


@pytest.fixture(scope="module")
def googlenet() -> cnndsl.Network:
    return cnndsl.compile_file(ZOO / "googlenet.cnn")


def node_params(net: cnndsl.Network) -> dict[str, int]:
    return {row.name: row.params for row in net.summary().rows}


def module_output(graph: nx.MultiDiGraph, prefix: str) -> str:
    """The one node under `prefix.` whose consumers all lie outside it: the module's result."""
    inside = {n for n in graph if n.startswith(prefix + ".")}
    assert inside, f"no nodes named {prefix}.*"
    exits = [n for n in inside if not set(graph.successors(n)) & inside]
    assert len(exits) == 1, f"{prefix} has several exits: {exits}"
    return exits[0]


# ---- (a) everything compiles ----------------------------------------------------------


def test_zoo_is_not_empty():
    names = {p.stem for p in NETWORKS}
    assert {"resnet18", "resnet50", "resnet152", "vgg16", "googlenet", "lenet5"} <= names


@pytest.mark.parametrize("path", NETWORKS, ids=[p.stem for p in NETWORKS])
def test_zoo_compiles(path: Path):
    net = cnndsl.compile_file(path)
    assert net.graph.number_of_nodes() > 0
    assert net.summary().params > 0


# ---- (b) parameter counts -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("resnet18", 11_689_512),  # torchvision resnet18
        ("resnet50", 25_557_032),  # torchvision resnet50
        ("resnet152", 60_192_808),  # torchvision resnet152
        ("vgg16", 138_357_544),  # torchvision vgg16
        ("googlenet", 13_378_280),  # main path + both auxiliary heads, weights and biases
        ("lenet5", 60_840),  # 60,000 trainable + 840 fixed RBF codes
    ],
)
def test_parameter_counts(name: str, params: int):
    assert cnndsl.compile_file(ZOO / f"{name}.cnn").summary().params == params


def test_googlenet_main_path_params_by_name(googlenet):
    # The auxiliary heads are labelled aux1 and aux2, so every node of theirs is aux1.* / aux2.*.
    params = node_params(googlenet)
    aux = {n: p for n, p in params.items() if n.split(".")[0] in ("aux1", "aux2")}
    main = sum(p for n, p in params.items() if n not in aux)
    assert main == 6_998_552
    # Each head: conv 1x1 128 (C·128 + 128), fc 2048→1024 (2,098,176), fc 1024→1000 (1,025,000).
    assert sum(p for n, p in aux.items() if n.startswith("aux1.")) == 512 * 128 + 128 + 2_098_176 + 1_025_000
    assert sum(p for n, p in aux.items() if n.startswith("aux2.")) == 528 * 128 + 128 + 2_098_176 + 1_025_000
    assert main + sum(aux.values()) == 13_378_280


def test_googlenet_main_path_params_by_graph(googlenet):
    # Independent of names: the main path is everything the first output depends on.
    g = googlenet.graph
    main_out = g.graph["outputs"][0]
    params = node_params(googlenet)
    assert sum(params[n] for n in nx.ancestors(g, main_out) | {main_out}) == 6_998_552


# ---- (c) GoogLeNet against the paper's table 1 ------------------------------------------


@pytest.mark.parametrize(
    ("module", "shape"),
    [
        ("inception3a", (256, 28, 28)),
        ("inception3b", (480, 28, 28)),
        ("inception4a", (512, 14, 14)),
        ("inception4b", (512, 14, 14)),
        ("inception4c", (512, 14, 14)),
        ("inception4d", (528, 14, 14)),
        ("inception4e", (832, 14, 14)),
        ("inception5a", (832, 7, 7)),
        ("inception5b", (1024, 7, 7)),
    ],
)
def test_googlenet_inception_shapes(googlenet, module: str, shape: tuple[int, ...]):
    g = googlenet.graph
    out = module_output(g, module)
    assert g.nodes[out]["op"] == "concat"
    assert g.nodes[out]["shape"] == shape


def test_googlenet_grid_sizes(googlenet):
    g = googlenet.graph
    # the stem: 7x7/2 conv → 112, 3x3/2 max pool → 56, 3x3 conv → 56x56x192, 3x3/2 max pool → 28
    assert g.nodes["conv1"]["shape"] == (64, 112, 112)
    assert g.nodes["conv3"]["shape"] == (192, 56, 56)
    pools = [n for n in nx.topological_sort(g) if g.nodes[n]["op"] == "maxpool" and "." not in n]
    assert [g.nodes[n]["shape"] for n in pools] == [(64, 56, 56), (192, 28, 28), (480, 14, 14), (832, 7, 7)]
    avg = [n for n in g if g.nodes[n]["op"] == "avgpool" and "." not in n]
    assert [g.nodes[n]["shape"] for n in avg] == [(1024, 1, 1)]
    assert not any(d["op"] == "bn" for _, d in g.nodes(data=True))


def test_googlenet_outputs(googlenet):
    g = googlenet.graph
    outs = g.graph["outputs"]
    assert [g.nodes[o]["shape"] for o in outs] == [(1000,)] * 3
    main, aux1, aux2 = outs
    assert not main.startswith("aux") and aux1.startswith("aux1.") and aux2.startswith("aux2.")
    # aux1 reads the output of 4a, aux2 that of 4d
    a4, b4, d4, e4 = (module_output(g, f"inception4{m}") for m in "abde")
    assert a4 in nx.ancestors(g, aux1) and b4 not in nx.ancestors(g, aux1)
    assert d4 in nx.ancestors(g, aux2) and e4 not in nx.ancestors(g, aux2)
    # each head pools 14x14 down to 4x4 (5x5/3), so its first fc sees 128·4·4 = 2048 features
    assert g.nodes["aux1.avgpool1"]["shape"] == (512, 4, 4)
    assert g.nodes["aux2.avgpool1"]["shape"] == (528, 4, 4)


def test_googlenet_classes_parameter():
    net = cnndsl.compile_file(ZOO / "googlenet.cnn", set={"classes": 10})
    g = net.graph
    assert [g.nodes[o]["shape"] for o in g.graph["outputs"]] == [(10,)] * 3


# ---- (d) MACs -------------------------------------------------------------------------


def test_resnet152_macs():
    macs = cnndsl.compile_file(ZOO / "resnet152.cnn").summary().macs
    assert 11.4e9 <= macs <= 11.7e9  # about 11.5 G multiply-accumulates (the paper's "11.3 billion FLOPs")


# ---- (e) naive vs reduced Inception 3a --------------------------------------------------

TINY = """
use "{lib}"

network tiny {{
  input 192x28x28
  {call}
}}
"""


def tiny(call: str) -> cnndsl.Network:
    lib = (ZOO / "lib" / "inception.cnn").as_posix()
    return cnndsl.compile_source(TINY.format(lib=lib, call=call), file="<test>")


def test_inception_3a_reduced_params():
    # inception(64, 96, 128, 16, 32, 32) on 192 channels, weights + biases:
    #   1x1         192·64      + 64  =  12,352
    #   3x3 reduce  192·96      + 96  =  18,528
    #   3x3         96·9·128    + 128 = 110,720
    #   5x5 reduce  192·16      + 16  =   3,088
    #   5x5         16·25·32    + 32  =  12,832
    #   pool proj   192·32      + 32  =   6,176
    #                                   -------
    #                                   163,696   (163,328 weights = 159.5 Ki: the table's "159K")
    net = tiny("inception(64, 96, 128, 16, 32, 32)")
    assert net.summary().params == 163_696
    g = net.graph
    assert g.nodes[g.graph["outputs"][0]]["shape"] == (256, 28, 28)


def test_inception_3a_naive_params():
    # inception_naive(64, 128, 32) on 192 channels, weights + biases:
    #   1x1         192·64      + 64  =  12,352
    #   3x3         192·9·128   + 128 = 221,312
    #   5x5         192·25·32   + 32  = 153,632
    #   max pool                      =       0
    #                                   -------
    #                                   387,296
    # and 64 + 128 + 32 + 192 = 416 output channels (the pooling branch keeps all 192).
    net = tiny("inception_naive(64, 128, 32)")
    assert net.summary().params == 387_296
    g = net.graph
    assert g.nodes[g.graph["outputs"][0]]["shape"] == (416, 28, 28)


def test_inception_reduction_saves_params():
    # The 1x1 reductions cut the 3a module to 42% of the naive one while giving fewer channels
    # (256 vs 416) to the next layer.
    assert tiny("inception(64, 96, 128, 16, 32, 32)").summary().params * 100 // 387_296 == 42


def test_inception_via_search_path():
    text = 'use "lib/inception.cnn"\nnetwork t {\n  input 480x14x14\n  googlenet_aux(10)\n}\n'
    net = cnndsl.compile_source(text, file="<test>", search=[str(ZOO)])
    assert net.summary().params == 480 * 128 + 128 + 2_098_176 + 1024 * 10 + 10


# ---- the torch backend ----------------------------------------------------------------


def test_googlenet_runs_in_torch(googlenet):
    torch = pytest.importorskip("torch")
    module = googlenet.to_torch()
    assert sum(p.numel() for p in module.parameters()) == 13_378_280
    module.eval()
    with torch.no_grad():
        outs = module(torch.randn(1, 3, 224, 224))
    assert len(outs) == 3
    assert [tuple(o.shape) for o in outs] == [(1, 1000)] * 3


def test_lenet5_runs_in_torch():
    torch = pytest.importorskip("torch")
    module = cnndsl.compile_file(ZOO / "lenet5.cnn").to_torch()
    assert tuple(module(torch.randn(2, 1, 32, 32)).shape) == (2, 10)
