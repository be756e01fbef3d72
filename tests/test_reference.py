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
from cnndsl.tools.weights import WeightMismatch, load_weights
from tests.conftest import ZOO

CASES = [
    ("resnet18", torchvision.models.resnet18, 11_689_512, (3, 224, 224)),
    ("resnet50", torchvision.models.resnet50, 25_557_032, (3, 160, 160)),
    ("resnet152", torchvision.models.resnet152, 60_192_808, (3, 128, 128)),
    ("vgg16", torchvision.models.vgg16, 138_357_544, (3, 224, 224)),
]


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
    # non-trivial batch-norm statistics, so that a mis-paired BN would show
    with torch.no_grad():
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
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
