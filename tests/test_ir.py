"""The IR: JSON round trips, shape re-inference, per-node statistics."""

from __future__ import annotations

import json

import networkx as nx
import pytest

import cnndsl
from cnndsl.ir.graph import dumps, from_json, loads, to_json
from cnndsl.ir.infer import infer_shapes
from tests.conftest import ZOO

ZOO_FILES = sorted(ZOO.glob("*.cnn"))


@pytest.mark.parametrize("path", ZOO_FILES, ids=[p.stem for p in ZOO_FILES])
def test_json_round_trip_and_reinference(path):
    net = cnndsl.compile_file(path)
    data = to_json(net.graph)
    back = loads(json.dumps(data))
    assert to_json(back) == data
    assert infer_shapes(back) == {}  # the stored shapes are exactly what the rules compute
    assert nx.is_directed_acyclic_graph(back)
    assert cnndsl.Network(back).summary().params == net.summary().params


def test_nodes_carry_op_attrs_span_shape_and_ports():
    net = cnndsl.compile_file(ZOO / "resnet18.cnn")
    g = net.graph
    node = g.nodes["layer2.0.conv1"]
    assert node["op"] == "conv" and node["attrs"]["stride"] == (2, 2) and node["shape"] == (128, 28, 28)
    assert node["span"].file.endswith("lib/resnet.cnn") and node["span"].line > 0
    ports = sorted((d["port"], u) for u, _, d in g.in_edges("layer2.0.add1", data=True))
    assert ports == [(0, "layer2.0.bn2"), (1, "layer2.0.shortcut1.bn1")]


def test_torch_module_from_a_loaded_ir():
    import torch

    net = cnndsl.compile_source("network n { input 3x8x8\n conv 3x3 4 pad=1 -> relu -> fc 2 }", file="n.cnn")
    back = cnndsl.Network(loads(dumps(net.graph)))
    assert back.to_torch()(torch.randn(1, 3, 8, 8)).shape == (1, 2)


def test_rejects_foreign_documents():
    with pytest.raises(ValueError, match="not a cnndsl IR document"):
        from_json({"format": "other"})
