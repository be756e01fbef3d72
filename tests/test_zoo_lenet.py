"""LeNet-5 as the 1998 paper and the seed articles count it, layer by layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import cnndsl
from cnndsl.backends.torch.layers import PartialConv2d
from tests.conftest import ZOO

# layer: (parameters, connections) — the seed's table (003, LeNet-5 section)
PAPER = {
    "c1": (156, 122_304),
    "s2": (12, 5_880),
    "c3": (1_516, 151_600),
    "s4": (32, 2_000),
    "c5": (48_120, 48_120),
    "f6": (10_164, 10_164),
}


def lenet():
    return cnndsl.compile_file(ZOO / "lenet5.cnn")


def test_per_layer_parameters_and_connections():
    rows = {r.name: r for r in lenet().summary().rows}
    for name, (params, connections) in PAPER.items():
        assert (rows[name].params, rows[name].connections) == (params, connections), name
    assert rows["c3"].shape == [16, 10, 10] and rows["c5"].shape == [120, 1, 1]


def test_totals_trainable_and_fixed():
    s = lenet().summary()
    assert (s.trainable_params, s.fixed_params, s.params) == (60_000, 840, 60_840)
    model = lenet().to_torch()
    assert sum(p.numel() for p in model.parameters()) == 60_000
    assert model.state_dict()["out.weight"].shape == (10, 84)  # the fixed codes: a buffer
    assert set(model.state_dict()["out.weight"].unique().tolist()) == {-1.0, 1.0}


def test_partial_convolution_equals_a_masked_dense_one():
    torch.manual_seed(0)
    table = ((0, 1), (1, 2), (0, 2))
    conv = PartialConv2d(3, table, (3, 3), (1, 1), (1, 1), (1, 1), True)
    mask = torch.zeros(3, 3, 1, 1)
    for o, inputs in enumerate(table):
        for i in inputs:
            mask[o, i] = 1
    dense = conv.dense_weight()
    assert torch.equal(dense * (1 - mask), torch.zeros_like(dense))
    x = torch.randn(2, 3, 6, 6)
    assert torch.allclose(conv(x), F.conv2d(x, dense, conv.bias, padding=1), atol=1e-6)


def test_training_step_lowers_the_loss():
    torch.manual_seed(0)
    model = lenet().to_torch().train()
    x, y = torch.randn(32, 1, 32, 32), torch.randint(0, 10, (32,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        # the paper's criterion: the RBF distance of the correct class (eq. 8)
        loss = model(x).gather(1, y[:, None]).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
