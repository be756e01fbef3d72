"""The modern zoo against torchvision: every file named after a torchvision model has its exact
parameter count, the MACs torchvision publishes in the weights' metadata (`_ops`, GMACs to three
decimals, of the main output: auxiliary heads do not run in eval mode) at the file's own input size, and torchvision's outputs once its (randomly
initialised) weights are loaded, in fp32 and eval mode.

The forward check runs at the file's own input size up to `NATIVE_GMACS`; the bigger networks
(every global-pooled architecture allows it) run at `SMALL`, and `pytest --full` runs them all
at their own size.
"""

from __future__ import annotations

import re

import networkx as nx
import pytest
import torch
import torchvision
from torchvision.models import get_model_weights

import cnndsl
from cnndsl.backends.torch.weights import load_weights
from tests.conftest import ZOO
from tests.test_reference import _random_statistics
from tests.zoo_table import ROWS, TV

# every row of the zoo table checked against a torchvision model: file -> torchvision's name
MODELS = {row.file: re.search(r"`(\w+)`", row.checked)[1] for row in ROWS if row.checked.startswith(TV) and not row.set}
# the classic ones' outputs are checked in test_reference.py and the test_zoo_* modules
CLASSIC = ("alexnet", "vgg", "googlenet", "inception", "squeezenet", "resnet")
MODERN = sorted(file for file, name in MODELS.items() if not name.startswith(CLASSIC))
NATIVE_GMACS = 1.0
SMALL = "3x96x96"


def _reference(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None).eval()
    _random_statistics(model)
    return model


@pytest.mark.parametrize("file", sorted(MODELS))
def test_macs_equal_torchvision_metadata(file):
    net = cnndsl.compile_file(ZOO / file)
    size = net.summary().inputs[0][1]
    # the weights evaluated at the file's input size (RegNet's SWAG weights are for 384x384)
    published = {w.meta["_ops"] for w in get_model_weights(MODELS[file]) if w.transforms().crop_size == [size]}
    assert len(published) == 1
    # torchvision counts the eval-mode forward pass: the first output's layers, no auxiliary head
    main = nx.ancestors(net.graph, net.graph.graph["outputs"][0]) | {net.graph.graph["outputs"][0]}
    macs = sum(row.macs for row in net.summary().rows if row.name in main)
    assert round(macs / 1e9, 3) == published.pop()


@pytest.mark.parametrize("file", MODERN)
def test_outputs_equal_torchvision(file, request):
    native = cnndsl.compile_file(ZOO / file)
    big = native.summary().macs > NATIVE_GMACS * 1e9 and not request.config.getoption("--full")
    net = cnndsl.compile_file(ZOO / file, input=SMALL) if big else native
    reference = _reference(MODELS[file])
    model = net.to_torch().eval()
    params = sum(p.numel() for p in reference.parameters())
    assert net.summary().params == params == sum(p.numel() for p in model.parameters())
    load_weights(model, reference)
    torch.manual_seed(1)
    x = torch.randn(2, *net.summary().inputs[0])
    with torch.no_grad():
        expected, got = reference(x), model(x)
    assert got.shape == expected.shape
    assert ((got - expected).abs().max() / expected.abs().max()).item() <= 1e-5
