"""Every activation of the registry, end to end: the torch backend against an independent
reference (tests/activation_refs.py), fused into a conv's and an fc's epilogue by the passes,
run by the Triton backend under the interpreter, drawn folded into its layer, formatted and
parsed back. A new activation in cnndsl/ir/ops/activation.py is covered here with no edit."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import cnndsl  # noqa: E402
from cnndsl.passes import optimize  # noqa: E402
from cnndsl.tools.fmt import format_source  # noqa: E402
from cnndsl.tools.graph import to_dot  # noqa: E402
from tests.activation_refs import cases, reference, statements  # noqa: E402
from tests.kernel_checks import rel  # noqa: E402

CASES = list(zip(statements(), cases()))
IDS = [s.replace(" ", "_") for s, _ in CASES]


def network(stmt: str) -> str:
    return f"""network act_check {{
  input 3x6x6
  conv 3x3 4 pad=1 -> {stmt}
  residual {{ conv 3x3 4 pad=1 -> {stmt} -> conv 1x1 4 }} -> {stmt}
  fc 5 -> {stmt}
}}
"""


def inputs(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("stmt, case", CASES, ids=IDS)
def test_torch_lowering_matches_the_reference(stmt, case):
    name, values = case
    torch.manual_seed(0)
    module = cnndsl.compile_source(network(stmt)).to_torch().eval()
    x = inputs()
    f = reference(name, values)
    with torch.no_grad():
        conv1 = f(module.conv1(x))
        body = module.conv3(f(module.conv2(conv1)))
        want = f(module.fc1(f(body + conv1)))
        assert rel(module(x), want) < 1e-6


@pytest.mark.parametrize("stmt, case", CASES, ids=IDS)
def test_passes_fuse_it_into_every_epilogue(stmt, case):
    name, _ = case
    net = cnndsl.compile_source(network(stmt))
    module = net.to_torch().eval()
    fused, weights, report = optimize(net.graph, module.state_dict())
    assert report.acts_fused == 4
    assert not [n for n, d in fused.nodes(data=True) if d["op"] == name]
    acts = {(d["attrs"].get("act"), d["attrs"].get("post_act")) for _, d in fused.nodes(data=True)
            if d["op"] in ("fused_conv", "fused_fc")}
    assert (name, "none") in acts and ("none", name) in acts
    from cnndsl.backends.torch.lower import to_torch

    again = to_torch(fused)
    again.load_state_dict(weights)
    with torch.no_grad():
        assert rel(again.eval()(inputs()), module(inputs())) < 1e-5


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-4), (torch.float16, 2e-2)], ids=["fp32", "fp16"])
@pytest.mark.parametrize("stmt, case", CASES, ids=IDS)
def test_triton_runs_it_fused(stmt, case, dtype, tol):
    pytest.importorskip("triton")
    from cnndsl.backends.triton.launcher import to_triton

    net = cnndsl.compile_source(network(stmt))
    module = net.to_torch().eval()
    fast = to_triton(net.graph, module.state_dict(), device="cpu", dtype=dtype)
    assert not fast.report.fallbacks
    with torch.no_grad():
        assert rel(fast(inputs()), module(inputs())) < tol


@pytest.mark.parametrize("stmt, case", CASES, ids=IDS)
def test_drawn_folded_and_formatted(stmt, case):
    name, _ = case
    source = network(stmt)
    graph = cnndsl.compile_source(source).graph
    dot = to_dot(graph, depth=None)
    assert dot.count(f'color="#555555">{name}</font>') == 4  # under the conv's, the add's and the fc's label
    assert f"\t{name}1 [" not in dot  # not a box of its own
    assert format_source(format_source(source)) == format_source(source)
