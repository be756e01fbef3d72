"""The Triton launcher (cnndsl/backends/triton/launcher.py) under Triton's interpreter, on the CPU.

Each network is compiled, its torch module (random batch-norm statistics, eval mode) is the
reference, and `to_triton(state_dict, device="cpu")` must agree: max |a − b| / max |b| below
1e-3 in fp32 and 2e-2 in fp16. Inputs are tiny: the interpreter runs every program in Python.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import cnndsl
from cnndsl.cli import main
from tests.conftest import torch_reference as reference
from tests.hypothesis_setup import budget
from tests.kernel_checks import rel
from tests.pass_checks import compile_net
from tests.test_passes_zoo import networks as random_networks

os.environ.setdefault("TRITON_INTERPRET", "1")

from cnndsl.backends.triton import launcher  # noqa: E402
from cnndsl.backends.triton.launcher import TritonNetwork, plan_launch, to_triton  # noqa: E402

ZOO = Path(__file__).resolve().parents[1] / "zoo"


def assert_matches(graph, dtype=torch.float32, batch: int = 2, tol: float | None = None):
    tol = tol or (1e-3 if dtype == torch.float32 else 2e-2)
    module = reference(graph)
    gen = torch.Generator().manual_seed(1)
    xs = [torch.randn(batch, *graph.nodes[n]["shape"], generator=gen) for n in graph.graph["inputs"]]
    net = to_triton(graph, module.state_dict(), device="cpu", dtype=dtype)
    with torch.no_grad():
        want = module(*xs)
    got = net(*xs)
    want = want if isinstance(want, tuple) else (want,)
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert rel(g, w) < tol, (rel(g, w), net.check(xs, module, tol))
    return net


CONV_BN = """
network n {
  input 3x6x6
  conv 3x3 8 pad=1 bias=false -> bn -> relu
  conv 3x3 8 /2 pad=1 -> bn eps=0.001 -> scale -> relu
  conv 1x1 4 -> tanh
  conv 3x3 4 pad=1 groups=2 -> sigmoid
}
"""

RESIDUALS = """
use "lib/resnet.cnn"
network res {
  input 4x6x6
  basic(4)
  basic(6, stride=2, shortcut=project)
  basic(8, shortcut=zeropad)
  basic(10, stride=2, shortcut=zeropad)
  residual { conv 3x3 10 pad=1 -> stanh } scale=0.3 -> tanh
  x = conv 1x1 10
  add @x @x
  avgpool global -> fc 10 -> relu
  residual { fc 10 -> bn -> relu }
}
"""

CONCATS = """
use "lib/inception_bn.cnn"
network c {
  x = input 4x5x5
  m0: inception_bn(4, 3, 5, 2, 3, 2)
  m1: concat {
    conv 1x1 2 -> relu
    conv 3x3 3 pad=1
    branch { concat {
      conv 1x1 2
      maxpool 3x3 /1 pad=1
    } }
  }
  a = conv 1x1 2
  v2 = m2: concat @a @a
  b = conv 1x1 3
  v3 = m3: concat @b @a
  concat @v2 @v3
}
"""

HIGHWAY = """
network hw {
  input 4x5x5
  conv 3x3 6 pad=1 -> relu
  h1: highway {
    conv 3x3 6 pad=1 -> bn -> relu
    gate bias=-2 { conv 3x3 6 pad=1 -> sigmoid }
  }
  h3: highway {
    conv 3x3 6 pad=1 -> relu
    gate { conv 1x1 6 -> sigmoid }
  }
  avgpool global -> fc 6 -> relu
  h4: highway {
    fc 6 -> tanh
    gate bias=-1 { fc 6 -> sigmoid }
  }
  fc 3
}
"""

POOLS = """
network p {
  input 3x9x9
  conv 3x3 8 pad=1 -> relu
  a = maxpool 3x3 /2 ceil=true
  b = @a -> avgpool 3x3 /1 pad=1 count_pad=false
  c = @b -> lrn 5 -> avgpool 2x2 /2 ceil=true
  d = @c -> maxpool 2x2 adaptive=true
  s = @c -> flatten -> dropout 0.5 -> fc 7 -> relu -> fc 4 -> softmax
  f = @d -> flatten -> fc 3
  output @b
  output @s
  output @f
}
"""

ROUTED = """
network routed {
  input 3x5x5
  conv 3x3 8 pad=1 -> relu
  m1: concat {
    conv 1x1 4 -> relu
    conv 1x1 3 -> relu -> conv 3x3 5 pad=1 -> relu
  }
  m2: concat {
    conv 1x1 3 /2
    conv 1x1 4 /2 bias=false
    conv 1x1 2 -> relu -> maxpool 2x2 /2 ceil=true
  }
}
"""

# What the passes cannot fuse, each its own kernel: an add after an SE gate's mul, standalone
# bn / scale (x·s + t) and activations, a concat that reads the input and one value twice (copied).
UNFUSED = """
network unfused {
  x = input 6x5x5
  a = conv 3x3 6 pad=1 -> bn
  g = @a -> avgpool global -> conv 1x1 6 -> sigmoid
  m = mul @a @g
  add @m @x -> relu
  y = maxpool 3x3 stride=1 pad=1 -> bn -> relu -> gelu approximate=tanh -> scale
  c = concat @y @x @y
  output @c
  add @c @c @c scale=0.5 -> avgpool global -> flatten -> bn -> elu -> fc 3
}
"""

NETS = {"conv_bn": CONV_BN, "residuals": RESIDUALS, "concats": CONCATS, "highway": HIGHWAY, "pools": POOLS,
        "routed": ROUTED, "unfused": UNFUSED}


@pytest.mark.parametrize("name", sorted(NETS))
def test_hand_made_networks_fp32(name):
    assert_matches(compile_net(NETS[name]))


@pytest.mark.parametrize("name", ["residuals", "concats", "routed", "unfused"])
def test_hand_made_networks_fp16(name):
    assert_matches(compile_net(NETS[name]), dtype=torch.float16)


def test_fusions_and_fallbacks_are_reported():
    r = plan_launch(compile_net(RESIDUALS)).report
    assert r.optimize.residual_adds_fused == 6 and r.kernel_ops["conv2d"] == 11
    assert not r.fallbacks and r.kernel_ops["add (elementwise)"] == 1  # add @x @x: not fused, its own kernel
    hw = plan_launch(compile_net(HIGHWAY)).report
    assert hw.optimize.highways_fused == 2 and [f[0] for f in hw.fallbacks] == ["h3.highway1"]
    cc = plan_launch(compile_net(CONCATS)).report
    assert cc.optimize.concats_eliminated >= 2
    rt = plan_launch(compile_net(ROUTED)).report  # m1's 1x1 branch routed; m2's second slice copied by a kernel
    assert rt.routed == 2 and not rt.fallbacks and rt.kernel_ops["slice copy"] == 1
    un = plan_launch(compile_net(UNFUSED)).report
    assert not un.fallbacks and un.optimize.residual_adds_fused == 0
    assert {k: un.kernel_ops[k] for k in ("add (elementwise)", "bn (x·s + t)", "scale (x·s + t)", "concat copy",
                                          "relu (elementwise)", "gelu (elementwise)", "elu (elementwise)")} == {
        "add (elementwise)": 2, "bn (x·s + t)": 2, "scale (x·s + t)": 1, "concat copy": 1,
        "relu (elementwise)": 2, "gelu (elementwise)": 1, "elu (elementwise)": 1}


def test_check_names_the_source_line():
    graph = compile_net(CONV_BN)
    module = reference(graph)
    x = torch.randn(1, 3, 6, 6)
    net = to_triton(graph, module.state_dict(), device="cpu", dtype=torch.float32)
    assert net.check(x, module) is None
    sd = {k: v.clone() for k, v in module.state_dict().items()}
    sd["conv3.weight"] += 0.5
    bad = to_triton(graph, sd, device="cpu", dtype=torch.float32)
    msg = bad.check(x, module)
    assert msg is not None and msg.startswith("<string>:6:") and "conv3" in msg and "tanh1" in msg


def test_api_and_cuda_graph_guard():
    net = cnndsl.compile_source(CONV_BN)
    tn = net.to_triton(device="cpu", dtype=torch.float32)
    assert tn(torch.randn(1, 3, 6, 6)).shape == (1, 4, 3, 3)
    with pytest.raises(ValueError, match="CUDA device"):
        net.to_triton(device="cpu", cuda_graph=True)


@budget(60, 1000)
@given(source=random_networks(), dtype=st.sampled_from([torch.float32, torch.float16]))
def test_random_networks(source, dtype):
    """The passes' generated networks (chains, residuals of every shortcut, concats, highway
    gates, pre-activation units, fc heads) through the whole backend."""
    assert_matches(compile_net(source), dtype=dtype)


def test_cuda_graph_bookkeeping(monkeypatch):
    """The CUDA-graph path without a GPU: the capture is replaced by running the captured body at
    each replay, so what is left to check is the bookkeeping around it: one capture per input
    shape, inputs copied into the static buffers, outputs cloned out (not aliased across calls)."""
    graph = compile_net(POOLS)
    module = reference(graph)
    net = to_triton(graph, module.state_dict(), device="cpu", dtype=torch.float32)
    captures = []
    monkeypatch.setattr(TritonNetwork, "_capture", lambda self, body: captures.append(body) or body)
    net.cuda_graph = True
    results = []
    for seed, batch in enumerate((2, 3, 2)):
        x = torch.randn(batch, 3, 9, 9, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            want = module(x)
        got = net(x)
        assert len(got) == 3 and all(rel(g, w) < 1e-3 for g, w in zip(got, want))
        results.append((got, want))
    assert len(captures) == 2  # batch 2 is captured once, replayed twice
    first_got, first_want = results[0]
    assert all(rel(g, w) < 1e-3 for g, w in zip(first_got, first_want))  # not overwritten by later calls


def test_forward_does_no_planning(monkeypatch):
    """Every step is bound to its buffer views once per batch size: after construction a forward
    pass reads neither the graph nor the graph helpers (taken away here), on a network with
    eliminated, nested concats and routed slices, for new and seen batch sizes alike."""
    for source, shape in ((CONCATS, (4, 5, 5)), (ROUTED, (3, 5, 5)), (UNFUSED, (6, 5, 5))):
        graph = compile_net(source)
        module = reference(graph)
        net = to_triton(graph, module.state_dict(), device="cpu", dtype=torch.float32)
        with monkeypatch.context() as m:
            for name in ("resolve_slice", "inputs_of", "in_shapes"):
                m.setattr(launcher, name, lambda *a, name=name: pytest.fail(f"{name} called at run time"))
            net.graph = None
            for batch in (2, 1, 2):
                x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(batch))
                with torch.no_grad():
                    want = module(x)
                assert rel(net(x), want) < 1e-3
        assert sorted(net._bound) == [1, 2]


def test_planning_needs_neither_torch_nor_triton():
    code = ("import sys\nfrom cnndsl.cli import main\nassert main(['compile', 'zoo/googlenet.cnn', '--backend', "
            "'triton', '--emit', 'plan']) == 0\nprint(sorted(m for m in ('torch', 'triton') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ZOO.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[]"


def test_devices_that_cannot_run_the_kernels_are_refused():
    net = cnndsl.compile_source(CONV_BN)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device is available"):
            net.to_triton(device="cuda")
    with pytest.raises(ValueError, match="runs on 'cuda'"):
        net.to_triton(device="meta")
    code = ("import cnndsl\ntry:\n    cnndsl.compile_source('network n {\\n input 3x6x6\\n conv 3x3 4\\n}\\n')"
            ".to_triton(device='cpu')\nexcept ValueError as e:\n    print(e)\n")
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                         cwd=ZOO.parent).stdout
    assert "set TRITON_INTERPRET=1" in out


def test_resnet_cifar_small():
    graph = cnndsl.compile_file(ZOO / "resnet_cifar.cnn", set={"n": 1}, input="3x16x16").graph
    assert_matches(graph, batch=1)


def test_resnet18_small():
    graph = cnndsl.compile_file(ZOO / "resnet18.cnn", set={"classes": 10}, input="3x32x32").graph
    assert_matches(graph, batch=1)


def test_kernel_counts_at_full_size():
    """A fusion that silently stops shows up here (no launch: the passes and the plan only)."""
    r50 = plan_launch(cnndsl.compile_file(ZOO / "resnet50.cnn").graph).report
    assert r50.kernel_ops == {"conv2d": 53, "pool2d": 1, "global_pool2d": 1, "linear": 1}
    assert r50.optimize.residual_adds_fused == 16 and r50.optimize.bns_folded == 53 and not r50.fallbacks
    g = plan_launch(cnndsl.compile_file(ZOO / "googlenet.cnn").graph).report
    assert g.conv_kernels == 41 and g.optimize.concats_eliminated == 9 and not g.fallbacks and g.routed == 9
    pre = plan_launch(cnndsl.compile_file(ZOO / "preact_resnet50.cnn").graph).report
    assert pre.conv_kernels == 54 and pre.optimize.residual_adds_fused == 16 and not pre.fallbacks
    # 13 units pre-activate in their convs' prologues; at the 3 stage changes and before the pool
    # the bn -> relu follows a fused add alone, so that conv's epilogue applies it
    assert (pre.optimize.prologues, pre.optimize.post_norms, pre.optimize.bns_folded) == (13, 4, 32)
    v3 = plan_launch(cnndsl.compile_file(ZOO / "inception_v3.cnn").graph).report
    assert v3.conv_kernels == 77 and v3.optimize.concats_eliminated == 15 and not v3.fallbacks and v3.routed == 9


def test_cli_backend_triton(capsys):
    assert main(["compile", str(ZOO / "resnet50.cnn"), "--backend", "triton"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("resnet50: 53 convolutions → 53 kernels, 16 residual adds fused, 0 concats eliminated")
    assert "torch fallbacks: none" in out
    assert main(["compile", str(ZOO / "googlenet.cnn"), "--backend", "triton"]) == 0
    out = capsys.readouterr().out
    assert "9 concats eliminated" in out and "torch fallbacks: none" in out
    assert "9 merged-1x1 branch slices written straight into their concats" in out
    # --emit plan: every launch with the .cnn lines it covers; ir: the optimised graph
    assert main(["compile", str(ZOO / "preact_resnet18.cnn"), "--backend", "triton", "--emit", "plan"]) == 0
    listing = capsys.readouterr().out.split("\n\n", 1)[1].splitlines()
    assert len(listing) == 23 and listing[0].split()[:3] == ["1", "conv2d", "conv1"]
    unit = next(line for line in listing if " layer1.0.conv1 " in line)
    assert "zoo/lib/preact.cnn:21:5" in unit and unit.endswith("+ layer1.0.bn2, layer1.0.relu2, layer1.0.bn1, "
                                                                "layer1.0.relu1")
    assert main(["compile", str(ZOO / "resnet18.cnn"), "--backend", "triton", "--emit", "ir"]) == 0
    ir = json.loads(capsys.readouterr().out)
    assert {n["op"] for n in ir["nodes"]} == {"input", "fused_conv", "maxpool", "avgpool", "fused_fc"}
    assert main(["compile", str(ZOO / "resnet18.cnn"), "--backend", "triton", "--emit", "torch"]) == 2
    assert "drop --backend triton" in capsys.readouterr().err
