"""Reference tests: zoo models against torchvision's implementations of the same networks.

Same parameter count, and the same outputs once torchvision's (randomly initialised) weights
are copied in: both register their tensors in the same order, so an ordered walk over the
two state_dicts pairs them up; every pair must agree in shape.
"""

from __future__ import annotations

import pytest
import torch
import torchvision

import cnndsl
from cnndsl.backends.torch.weights import WeightMismatch, load_weights
from tests.conftest import ZOO

CASES = [
    ("resnet18", torchvision.models.resnet18, 11_689_512, (3, 224, 224)),
    ("resnet50", torchvision.models.resnet50, 25_557_032, (3, 160, 160)),
    ("resnet152", torchvision.models.resnet152, 60_192_808, (3, 128, 128)),
    ("vgg16", torchvision.models.vgg16, 138_357_544, (3, 224, 224)),
]


def _random_statistics(reference: torch.nn.Module) -> None:
    """Non-trivial batch-norm statistics, so that a mis-paired BN would show."""
    with torch.no_grad():
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)


@pytest.mark.parametrize("name, factory, params, shape", CASES, ids=[c[0] for c in CASES])
def test_matches_torchvision(name, factory, params, shape):
    torch.manual_seed(0)
    net = cnndsl.compile_file(ZOO / f"{name}.cnn", input="x".join(map(str, shape)) if name != "vgg16" else None)
    reference = factory(weights=None).eval()
    model = net.to_torch().eval()
    assert net.summary().params == params
    assert sum(p.numel() for p in model.parameters()) == params
    assert sum(p.numel() for p in reference.parameters()) == params
    load_weights(model, reference)
    _random_statistics(reference)
    load_weights(model, reference)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        expected, got = reference(x), model(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-4


def test_mismatch_is_reported_by_name():
    model = cnndsl.compile_file(ZOO / "resnet18.cnn").to_torch()
    with pytest.raises(WeightMismatch, match="`layer1.0.conv1.weight` has shape \\(64, 64, 3, 3\\)"):
        load_weights(model, torchvision.models.resnet50(weights=None))


class _PreAct(torch.nn.Module):
    """A pre-activation unit that registers its projection before the layers that run first."""

    def __init__(self):
        super().__init__()
        self.downsample = torch.nn.Conv2d(8, 16, 1, 2, bias=False)
        self.norm1 = torch.nn.BatchNorm2d(8)
        self.conv1 = torch.nn.Conv2d(8, 16, 3, 2, 1, bias=False)
        self.norm2 = torch.nn.BatchNorm2d(16)
        self.conv2 = torch.nn.Conv2d(16, 16, 3, 1, 1, bias=False)

    def forward(self, x):
        x = torch.relu(self.norm1(x))
        return self.downsample(x) + self.conv2(torch.relu(self.norm2(self.conv1(x))))


def test_pairing_follows_the_call_order_when_registration_differs():
    net = cnndsl.compile_source(
        """network preact { input 8x8x8
             bn -> relu
             residual {
               shortcut { conv 1x1 16 /2 bias=false }
               conv 3x3 16 /2 pad=1 bias=false -> bn -> relu -> conv 3x3 16 pad=1 bias=false
             }
           }""",
        file="preact.cnn",
    )
    assert list(net.graph.nodes)[3] == "shortcut1.conv1"  # built first, as written
    model, reference = net.to_torch().eval(), _PreAct().eval()
    for m in reference.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.running_var, 0.5, 1.5)
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
    pairs = load_weights(model, reference)
    assert pairs[0] == ("bn1.weight", "norm1.weight") and ("shortcut1.conv1.weight", "downsample.weight") in pairs
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max() < 1e-5


# EfficientNet-B1 … B7 are B0's network with torchvision's width, depth and dropout (and, from
# B5, its batch norm's eps and momentum); their outputs are checked in test_zoo_torchvision.py.


def _hyperparameters(model: torch.nn.Module) -> tuple[list, list, list]:
    """Batch norms' eps and momentum, dropout rates, and the stochastic depth of every residual."""
    from torchvision.models.efficientnet import MBConv

    bns = [(m.eps, m.momentum) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    drops = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    depths = [m.stochastic_depth.p for m in model.modules() if isinstance(m, MBConv) and m.use_res_connect] \
        or [m.p for m in model.modules() if type(m).__name__ == "StochasticDepth"]
    return bns, drops, [round(p, 9) for p in depths]


@pytest.mark.parametrize("b", range(8))
def test_efficientnet_hyperparameters_equal_torchvision(b):
    model = cnndsl.compile_file(ZOO / f"efficientnet_b{b}.cnn", input="3x32x32").to_torch()
    reference = getattr(torchvision.models, f"efficientnet_b{b}")(weights=None)
    assert _hyperparameters(model) == _hyperparameters(reference)
