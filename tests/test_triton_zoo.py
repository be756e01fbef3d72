"""Every zoo network through the Triton backend, end to end, against its torch module.

Each `.cnn` file under zoo/ (libraries aside) is compiled at a reduced input size (and 10 classes
where it has a `classes` parameter) that keeps Triton's interpreter run short, its torch module
(random batch-norm statistics, eval mode) is the reference, and `to_triton(state_dict)` must agree
on a random batch: max |a − b| / max |b| below 1e-3 in fp32 and 2e-2 in fp16, output by output. A
mismatch is reported by `.cnn` source line (`TritonNetwork.check`). And at full size, without
running anything, every zoo network's launch plan must have no torch fallback.

On the CPU the kernels run under ``TRITON_INTERPRET=1`` (conftest.py). On a GPU, run

    TRITON_INTERPRET=0 pytest tests/test_triton_zoo.py --full

to check every network at its real input size and class count on the CUDA device.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import cnndsl
from cnndsl.backends.triton.launcher import plan_launch, to_triton
from tests.conftest import torch_reference
from tests.kernel_checks import interpret_env, rel

ZOO = Path(__file__).resolve().parents[1] / "zoo"
TOL = {torch.float32: 1e-3, torch.float16: 2e-2}
SMALL = {"classes": 10}

# file -> the reduced input (None: the file's own, already small or fixed by the network's head)
REDUCED: dict[str, str | None] = {
    "alexnet.cnn": "3x67x67",
    "variants/alexnet_torchvision.cnn": "3x63x63",
    "zfnet.cnn": "3x47x47",
    "googlenet.cnn": None,  # 224: the paper's 7x7 average pool and aux heads fix the grid
    "variants/googlenet_torchvision.cnn": "3x32x32",
    "highway_cifar.cnn": "3x8x8",
    "highway_fc.cnn": None,
    "inception_resnet_v1.cnn": "3x75x75",
    "inception_resnet_v2.cnn": "3x75x75",
    "inception_v2.cnn": None,  # 299: fixed 8x8 average pool
    "inception_v3.cnn": None,  # 299: the aux head's fixed 5x5 pool and fc
    "inception_v4.cnn": "3x75x75",
    "lenet5.cnn": None,
    "nin_cifar10.cnn": "3x8x8",
    "nin_imagenet.cnn": "3x39x39",
    "plain18.cnn": "3x16x16",
    "plain34.cnn": "3x16x16",
    "plain_cifar.cnn": "3x8x8",
    "preact_resnet18.cnn": "3x16x16",
    "preact_resnet34.cnn": "3x16x16",
    "preact_resnet50.cnn": "3x16x16",
    "preact_resnet101.cnn": "3x16x16",
    "preact_resnet152.cnn": "3x16x16",
    "preact_resnet_cifar.cnn": "3x8x8",
    "resnet18.cnn": "3x16x16",
    "mobilenet_v2.cnn": "3x32x32",
    "efficientnet_b0.cnn": "3x32x32",
    **{f"densenet{n}.cnn": "3x32x32" for n in (121, 161, 169, 201)},
    **{f"efficientnet_b{b}.cnn": "3x32x32" for b in range(1, 8)},
    **{f"efficientnet_v2_{v}.cnn": "3x32x32" for v in "sml"},
    **{f"convnext_{v}.cnn": "3x32x32" for v in ("tiny", "small", "base", "large")},
    **{f: "3x16x16" for f in ("resnext50_32x4d.cnn", "resnext101_32x8d.cnn", "resnext101_64x4d.cnn",
                              "wide_resnet50_2.cnn", "wide_resnet101_2.cnn")},
    "mobilenet_v3_large.cnn": "3x32x32",
    "mobilenet_v3_small.cnn": "3x32x32",
    **{f"mnasnet{a}.cnn": "3x32x32" for a in ("0_5", "0_75", "1_0", "1_3")},
    **{f"shufflenet_v2_{x}.cnn": "3x32x32" for x in ("x0_5", "x1_0", "x1_5", "x2_0")},
    **{f"regnet_{k}_{s}.cnn": "3x32x32" for k in "xy" for s in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")},
    "regnet_y_128gf.cnn": "3x32x32",
    "resnet34.cnn": "3x16x16",
    "resnet50.cnn": "3x16x16",
    "resnet101.cnn": "3x16x16",
    "resnet152.cnn": "3x16x16",
    "resnet_cifar.cnn": "3x8x8",
    "squeezenet1_0.cnn": "3x21x21",
    "squeezenet1_1.cnn": "3x17x17",
    "vgg11.cnn": "3x32x32",
    "vgg11_lrn.cnn": "3x32x32",
    "vgg13.cnn": "3x32x32",
    "vgg16.cnn": "3x32x32",
    "vgg16_c.cnn": "3x32x32",
    "vgg19.cnn": "3x32x32",
}

FILES = sorted(p.relative_to(ZOO).as_posix() for p in ZOO.rglob("*.cnn") if p.parent.name != "lib")
# The forward check on CI: every classic network, and one member of each modern family (the
# others differ from it in widths and depths only: the same ops, so the same kernels).
# `pytest --variants` checks every file; every file's plan is checked for fallbacks always.
VARIANTS = {f for f in FILES if f.startswith(("convnext", "densenet", "efficientnet", "mobilenet_v3", "mnasnet",
                                              "shufflenet", "regnet", "resnext", "wide_resnet"))}
REPRESENTATIVES = {"convnext_tiny.cnn", "densenet121.cnn", "efficientnet_b0.cnn", "efficientnet_v2_s.cnn",
                   "mobilenet_v3_small.cnn", "mnasnet0_5.cnn", "shufflenet_v2_x0_5.cnn", "regnet_x_400mf.cnn",
                   "regnet_y_400mf.cnn", "resnext50_32x4d.cnn"}


def test_every_zoo_network_is_covered():
    assert sorted(REDUCED) == FILES


@pytest.mark.parametrize("file", FILES)
def test_zoo_network_runs_entirely_in_triton_kernels(file: str):
    """Every layer of every zoo network is a Triton kernel, a view or fused into one: a fusion or
    kernel that silently stops applying shows up here as a torch fallback (plan only, full size)."""
    report = plan_launch(cnndsl.compile_file(ZOO / file).graph).report
    assert not report.fallbacks, str(report)


def _graph(file: str, full: bool):
    path = ZOO / file
    params = cnndsl.compile_file(path).graph.graph.get("params", {})
    if full:
        return cnndsl.compile_file(path).graph
    sets = {k: v for k, v in SMALL.items() if k in params}
    return cnndsl.compile_file(path, input=REDUCED[file], set=sets).graph


def pytest_generate_tests(metafunc):
    if metafunc.function.__name__ == "test_zoo_network_matches_torch":
        every = metafunc.config.getoption("--variants") or metafunc.config.getoption("--full")
        metafunc.parametrize("file", [f for f in FILES if every or f not in VARIANTS or f in REPRESENTATIVES])


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_zoo_network_matches_torch(file: str, dtype: torch.dtype, request):
    full = request.config.getoption("--full")
    device = "cuda" if torch.cuda.is_available() and not interpret_env() else "cpu"
    graph = _graph(file, full)
    module = torch_reference(graph)
    gen = torch.Generator().manual_seed(2)
    xs = [torch.randn(1, *graph.nodes[n]["shape"], generator=gen) for n in graph.graph["inputs"]]
    net = to_triton(graph, module.state_dict(), device=device, dtype=dtype)
    with torch.no_grad():
        want = module(*xs)
    got = net(*xs)
    want = want if isinstance(want, tuple) else (want,)
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(want) == len(graph.graph["outputs"])
    for name, g, w in zip(graph.graph["outputs"], got, want):
        assert g.shape == w.shape, (name, g.shape, w.shape)
        assert torch.isfinite(w).all() and w.abs().max() > 0, f"{name}: a degenerate reference"
        err = rel(g, w)
        if not err < TOL[dtype]:
            where = net.check(xs, module, TOL[dtype])
            pytest.fail(f"{file} output {name}: relative error {err:.3g} ≥ {TOL[dtype]:g}; first differing "
                        f"node: {where}")


def test_every_benchmarked_network_is_a_zoo_file():
    """bench/triton_bench.py's default list (read, not imported: it needs a GPU to run) names zoo
    files, each of which the plan test above runs without fallbacks."""
    import ast

    tree = ast.parse((ZOO.parent / "bench" / "triton_bench.py").read_text())
    models = next(ast.literal_eval(node.value) for node in tree.body
                  if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "MODELS")
    assert {"mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0", "regnet_y_8gf", "convnext_tiny"} <= set(models)
    assert [m for m in models if f"{m}.cnn" not in FILES] == []
