"""The classic networks of the zoo: AlexNet, ZFNet, VGG A–E, NIN, SqueezeNet, highway networks.

Parameter counts against the papers and torchvision, AlexNet's per-layer counts, ZFNet's map
sizes, outputs equal to torchvision's once its (random) weights are copied in, highway layers
equal to hand-written PyTorch ones, and one optimisation step that lowers the loss.
"""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

import cnndsl
from cnndsl.backends.torch.weights import load_weights
from tests.conftest import ZOO

# ---- parameter counts -------------------------------------------------------------------

COUNTS = [
    ("alexnet", 60_965_224),  # the 2012 paper, two GPUs (groups=2), 3x227x227
    ("variants/alexnet_torchvision", 61_100_840),  # torchvision alexnet
    ("zfnet", 62_357_608),
    ("vgg11", 132_863_336),  # config A, torchvision vgg11
    ("vgg11_lrn", 132_863_336),  # config A-LRN: LRN has no parameters
    ("vgg13", 133_047_848),  # config B, torchvision vgg13
    ("vgg16_c", 133_638_952),  # config C: 1x1 convolutions in the last three stages
    ("vgg16", 138_357_544),  # config D, torchvision vgg16
    ("vgg19", 143_667_240),  # config E, torchvision vgg19
    ("nin_cifar10", 966_986),  # Caffe model zoo NIN-CIFAR10
    ("nin_imagenet", 7_595_176),  # Caffe model zoo NIN-ImageNet
    ("squeezenet1_0", 1_248_424),  # torchvision squeezenet1_0
    ("squeezenet1_1", 1_235_496),  # torchvision squeezenet1_1
    ("highway_fc", 85_660),  # 784→50, 9 highway layers of 50, 50→10
    ("highway_cifar", 869_578),  # 3 stages of 2 convolutional highway layers
]


def compile_zoo(name: str, **kw) -> cnndsl.Network:
    return cnndsl.compile_file(ZOO / f"{name}.cnn", **kw)


@pytest.mark.parametrize(("name", "params"), COUNTS, ids=[c[0] for c in COUNTS])
def test_parameter_count(name: str, params: int):
    summary = compile_zoo(name).summary()
    assert summary.params == params
    assert summary.trainable_params == params


# torchvision's own counts, on the meta device (no memory, no initialisation)
TORCHVISION_COUNTS = [
    ("variants/alexnet_torchvision", "alexnet"),
    ("vgg11", "vgg11"),
    ("vgg13", "vgg13"),
    ("vgg16", "vgg16"),
    ("vgg19", "vgg19"),
    ("squeezenet1_0", "squeezenet1_0"),
    ("squeezenet1_1", "squeezenet1_1"),
]


@pytest.mark.parametrize(("name", "factory"), TORCHVISION_COUNTS, ids=[c[0] for c in TORCHVISION_COUNTS])
def test_tensor_shapes_match_torchvision(name: str, factory: str):
    """Same parameter count and the same parameter shapes in the same order as torchvision."""
    with torch.device("meta"):
        reference = getattr(torchvision.models, factory)(weights=None)
    ours = param_shapes(compile_zoo(name))
    theirs = [tuple(p.shape) for p in reference.parameters()]
    assert ours == theirs
    assert compile_zoo(name).summary().params == sum(p.numel() for p in reference.parameters())


def param_shapes(net: cnndsl.Network) -> list[tuple[int, ...]]:
    """Weight and bias shapes of every conv and fc in order, from the IR alone (no module built)."""
    out: list[tuple[int, ...]] = []
    g = net.graph
    for name in g.nodes:
        op, attrs = g.nodes[name]["op"], g.nodes[name]["attrs"]
        assert op not in ("bn", "scale"), "only conv and fc carry parameters in these networks"
        if op not in ("conv", "fc"):
            continue
        src = g.nodes[next(iter(g.predecessors(name)))]["shape"]
        if op == "conv":
            out.append((attrs["out"], src[0] // attrs["groups"], *attrs["kernel"]))
        else:
            out.append((attrs["out"], math.prod(src)))
        if attrs["bias"]:
            out.append((attrs["out"],))
    return out


# ---- AlexNet and ZFNet ------------------------------------------------------------------


def test_alexnet_per_layer_params():
    net = compile_zoo("alexnet")
    rows = [(r.name, r.params) for r in net.summary().rows if r.params]
    assert rows == [
        ("conv1", 34_944),
        ("conv2", 307_456),  # two groups of 128 5x5x48 filters
        ("conv3", 885_120),
        ("conv4", 663_936),  # two groups of 192 3x3x192
        ("conv5", 442_624),  # two groups of 128 3x3x192
        ("fc6", 37_752_832),
        ("fc7", 16_781_312),
        ("fc8", 4_097_000),
    ]
    assert sum(p for _, p in rows[:5]) == 2_334_080
    assert sum(p for _, p in rows[5:]) == 58_631_144
    shapes = {r.name: tuple(r.shape) for r in net.summary().rows}
    assert shapes["input"] == (3, 227, 227)
    assert shapes["conv1"] == (96, 55, 55)
    assert shapes["maxpool3"] == (256, 6, 6)
    groups = {n: net.graph.nodes[n]["attrs"]["groups"] for n in ("conv1", "conv2", "conv3", "conv4", "conv5")}
    assert groups == {"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}
    lrn = [net.graph.nodes[n]["attrs"] for n in net.graph if net.graph.nodes[n]["op"] == "lrn"]
    assert len(lrn) == 2
    assert all((a["size"], a["alpha"], a["beta"], a["k"]) == (5, 1e-4, 0.75, 2) for a in lrn)


def test_zfnet_feature_map_sizes():
    net = compile_zoo("zfnet")
    shapes = {r.name: tuple(r.shape) for r in net.summary().rows}
    assert shapes["input"] == (3, 224, 224)
    assert shapes["conv1"] == (96, 110, 110)
    assert shapes["maxpool1"] == (96, 55, 55)
    assert shapes["conv2"] == (256, 26, 26)
    assert shapes["maxpool2"] == (256, 13, 13)
    assert shapes["conv3"] == shapes["conv4"] == (384, 13, 13)
    assert shapes["conv5"] == (256, 13, 13)
    assert shapes["maxpool3"] == (256, 6, 6)
    conv1 = net.graph.nodes["conv1"]["attrs"]
    assert (conv1["kernel"], conv1["stride"]) == ((7, 7), (2, 2))
    conv2 = net.graph.nodes["conv2"]["attrs"]
    assert (conv2["kernel"], conv2["stride"]) == ((5, 5), (2, 2))


# ---- outputs equal torchvision's ---------------------------------------------------------

# (zoo file, torchvision factory, batch). The VGGs run one image: 224x224 is the only size their
# classifier takes, and they are the heaviest networks here.
OUTPUTS = [
    ("variants/alexnet_torchvision", "alexnet", 2),
    ("vgg11", "vgg11", 1),
    ("vgg13", "vgg13", 1),
    ("vgg19", "vgg19", 1),
    ("squeezenet1_0", "squeezenet1_0", 2),
    ("squeezenet1_1", "squeezenet1_1", 2),
]


@pytest.mark.parametrize(("name", "factory", "batch"), OUTPUTS, ids=[c[0] for c in OUTPUTS])
def test_output_matches_torchvision(name: str, factory: str, batch: int):
    torch.manual_seed(0)
    model = compile_zoo(name).to_torch().eval()
    if name.startswith("vgg"):
        # Initialising 130-140M parameters twice is most of the cost: build torchvision's VGG
        # without initialising it and copy the compiled module's weights into it instead.
        with torch.device("meta"):
            reference = getattr(torchvision.models, factory)(weights=None)
        reference = reference.to_empty(device="cpu").eval()
        load_weights(reference, model.state_dict())
    else:
        reference = getattr(torchvision.models, factory)(weights=None).eval()
        # a state_dict pairs by registration order (torchvision calls its layers in that order
        # too), which spares the two forward passes that pairing by call order costs
        load_weights(model, reference.state_dict())
    x = torch.randn(batch, 3, 224, 224)
    with torch.no_grad():
        expected, got = reference(x), model(x)
    assert got.shape == expected.shape == (batch, 1000)
    assert expected.std().item() > 1e-3  # not a vacuous comparison of near-zero outputs
    assert (got - expected).abs().max().item() < 1e-4


def test_squeezenet_names_follow_torchvision():
    keys = list(compile_zoo("squeezenet1_1").to_torch().state_dict())
    reference = torchvision.models.squeezenet1_1(weights=None)
    assert keys == list(reference.state_dict())


# ---- highway networks ---------------------------------------------------------------------


class Highway(nn.Module):
    """A hand-written highway layer: y = H(x)·T(x) + x·(1 − T(x))."""

    def __init__(self, h: nn.Module, t: nn.Module) -> None:
        super().__init__()
        self.h, self.t = h, t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.h(x)  # H before T: load_weights pairs layers in the order a forward pass calls them
        t = self.t(x)
        return h * t + x * (1 - t)


def fc_highway(width: int) -> Highway:
    return Highway(nn.Sequential(nn.Linear(width, width), nn.ReLU()), nn.Sequential(nn.Linear(width, width), nn.Sigmoid()))


def conv_highway(width: int) -> Highway:
    def conv() -> nn.Conv2d:
        return nn.Conv2d(width, width, 3, padding=1)

    return Highway(nn.Sequential(conv(), nn.ReLU()), nn.Sequential(conv(), nn.Sigmoid()))


def highway_fc_reference() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 50), nn.ReLU(), *[fc_highway(50) for _ in range(9)], nn.Linear(50, 10))


def highway_cifar_reference() -> nn.Module:
    def plain(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]

    return nn.Sequential(
        *plain(3, 32), conv_highway(32), conv_highway(32), nn.MaxPool2d(2, 2),
        *plain(32, 64), conv_highway(64), conv_highway(64), nn.MaxPool2d(2, 2),
        *plain(64, 128), conv_highway(128), conv_highway(128),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10),
    )


def test_one_highway_layer_matches_hand_written():
    """highway_fc with a single highway layer against Linear → ReLU → Highway → Linear."""
    torch.manual_seed(0)
    model = compile_zoo("highway_fc", set={"highway_layers": 1}).to_torch().eval()
    layer = fc_highway(50)
    reference = nn.Sequential(nn.Flatten(), nn.Linear(784, 50), nn.ReLU(), layer, nn.Linear(50, 10)).eval()
    with torch.no_grad():
        layer.t[0].bias.uniform_(-1, 1)  # gates well away from the initial -2, both paths matter
    pairs = load_weights(model, reference)
    assert pairs[2:6] == [
        ("layers.0.fc1.weight", "3.h.0.weight"), ("layers.0.fc1.bias", "3.h.0.bias"),
        ("layers.0.gate1.fc1.weight", "3.t.0.weight"), ("layers.0.gate1.fc1.bias", "3.t.0.bias"),
    ]
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max().item() < 1e-5
    # the hand-written layer itself is y = H(x)·T(x) + x·(1 − T(x)), written out
    h = torch.randn(4, 50)
    with torch.no_grad():
        t = torch.sigmoid(layer.t[0](h))
        assert torch.allclose(layer(h), torch.relu(layer.h[0](h)) * t + h * (1 - t))


# highway_cifar runs on 16x16 images (its layers take any size) to keep the test cheap
@pytest.mark.parametrize(
    ("name", "reference", "shape", "gates"),
    [("highway_fc", highway_fc_reference, (1, 28, 28), 9), ("highway_cifar", highway_cifar_reference, (3, 16, 16), 6)],
    ids=["highway_fc", "highway_cifar"],
)
def test_highway_network_matches_hand_written(name, reference, shape, gates):
    torch.manual_seed(0)
    model = compile_zoo(name, input="x".join(map(str, shape))).to_torch().eval()
    ref = reference().eval()
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters())
    # the compiled gates start at bias -2; randomise the reference's so both paths carry weight
    gate_biases = [m.bias for n, m in model.named_modules() if ".gate" in n and isinstance(m, (nn.Linear, nn.Conv2d))]
    assert len(gate_biases) == gates
    assert all(torch.equal(b, torch.full_like(b, -2.0)) for b in gate_biases)
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, Highway):
                m.t[0].bias.uniform_(-1, 1)
    load_weights(model, ref)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max().item() < 1e-5


def test_gate_bias_is_a_parameter():
    model = compile_zoo("highway_fc", set={"gate_bias": -3, "highway_layers": 2}).to_torch()
    biases = [m.bias for n, m in model.named_modules() if ".gate" in n and isinstance(m, nn.Linear)]
    assert len(biases) == 2 and all(torch.equal(b, torch.full_like(b, -3.0)) for b in biases)
    # H's biases keep PyTorch's default initialisation
    h_bias = dict(model.named_modules())["layers.0.fc1"].bias
    assert not torch.equal(h_bias, torch.full_like(h_bias, -3.0))


# ---- training ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "shape"), [("nin_cifar10", (3, 32, 32)), ("highway_fc", (1, 28, 28))])
def test_one_step_lowers_the_loss(name: str, shape: tuple[int, ...]):
    torch.manual_seed(0)
    model = compile_zoo(name).to_torch().train()
    x, y = torch.randn(8, *shape), torch.randint(0, 10, (8,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    def loss() -> torch.Tensor:
        torch.manual_seed(1)  # the same dropout masks for both evaluations
        return nn.functional.cross_entropy(model(x), y)

    before = loss()
    optimizer.zero_grad()
    before.backward()
    assert all(p.grad is not None for p in model.parameters())
    optimizer.step()
    with torch.no_grad():
        after = loss()
    assert after.item() < before.item() - 1e-3  # a real decrease, well above rounding
