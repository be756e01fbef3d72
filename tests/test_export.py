"""`cnndsl export`: ONNX (checked in onnxruntime), TorchScript and ExportedProgram files that
compute what the torch backend computes, a dynamic batch, and the command's exit codes."""

from __future__ import annotations

import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import cnndsl
from cnndsl.tools import export
from tests.conftest import ZOO

pytestmark = pytest.mark.usefixtures("one_thread")




def compiled(file: str, input: str | None = None) -> torch.nn.Module:  # noqa: A002
    torch.manual_seed(0)
    return cnndsl.compile_file(ZOO / file, input=input).to_torch().eval()


def onnxruntime_outputs(path, *inputs: torch.Tensor) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)})


def max_abs_diff(expected, got) -> float:
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = got if isinstance(got, (tuple, list)) else (got,)
    assert len(expected) == len(got)
    for e, g in zip(expected, got):
        assert tuple(e.shape) == tuple(g.shape)
    return max(float(np.abs(e.detach().numpy() - np.asarray(g)).max()) for e, g in zip(expected, got))


# ---- ONNX -----------------------------------------------------------------------------------

ONNX_CASES = [
    # file, input, batch, outputs: a residual net with batch norm; GoogLeNet with its
    # concatenations, LRN, ceil-mode pools and two auxiliary heads (the paper's net needs its
    # 224x224 input); a fully connected highway net (gates); LeNet-5 (partial connection
    # table, scaled tanh, RBF units)
    ("resnet18.cnn", "3x64x64", 2, ["fc1"]),
    ("googlenet.cnn", None, 1, ["fc", "aux1.fc2", "aux2.fc2"]),
    ("highway_fc.cnn", None, 2, ["fc2"]),
    ("lenet5.cnn", None, 2, None),
]


@pytest.mark.parametrize(("file", "shape", "batch", "outputs"), ONNX_CASES, ids=[c[0] for c in ONNX_CASES])
def test_onnx_round_trip_matches_the_torch_backend(tmp_path, file, shape, batch, outputs):
    net = cnndsl.compile_file(ZOO / file, input=shape)
    torch.manual_seed(0)
    module = net.to_torch().eval()
    path = tmp_path / "model.onnx"
    check = export.export_onnx(module, path, batch=batch, input_names=net.graph.graph["inputs"],
                               output_names=net.graph.graph["outputs"])
    assert check.diffs[batch] < 1e-4 * max(1.0, _scale(module, batch))
    onnx.checker.check_model(str(path), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    if outputs is not None:
        assert [o.name for o in session.get_outputs()] == outputs
    # independently of the exporter's own check: a fresh input, the file, the torch module
    x = torch.randn(batch, *module.input_shapes[0])
    with torch.no_grad():
        expected = module(x)
    diff = max_abs_diff(expected, onnxruntime_outputs(path, x))
    scale = max(float(e.abs().max()) for e in (expected if isinstance(expected, tuple) else (expected,)))
    print(f"{file}: onnxruntime vs torch max abs diff {diff:.2e} (largest output {scale:.3g})")
    assert diff < 1e-4 * max(1.0, scale)
    if file != "lenet5.cnn":  # LeNet-5's RBF outputs are sums of squares in the hundreds
        assert diff < 1e-4


def _scale(module, batch) -> float:
    with torch.no_grad():
        out = module(*export.example_inputs(module, batch, seed=batch))
    return max(float(o.abs().max()) for o in (out if isinstance(out, tuple) else (out,)))


def test_onnx_dynamic_batch(run, tmp_path):
    path = tmp_path / "googlenet.onnx"
    torch.manual_seed(0)  # the command's module gets the weights `compiled` gives below
    status, out, err = run("export", ZOO / "googlenet.cnn", "--onnx", path, "--dynamic-batch", "--batch", "1")
    assert status == 0, err
    assert re.search(r"onnx: wrote .* \(opset \d+, onnx.checker ok, onnxruntime [\d.]+\); "
                     r"max abs diff vs torch: \S+ \(batch 1\), \S+ \(batch 2\)", out)
    model = onnx.load(str(path), load_external_data=False)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [o.type.tensor_type.shape.dim[0].dim_param for o in model.graph.output] == ["batch"] * 3
    module = compiled("googlenet.cnn")
    for batch in (1, 3):
        x = torch.randn(batch, 3, 224, 224)
        with torch.no_grad():
            expected = module(x)
        got = onnxruntime_outputs(path, x)
        assert [g.shape for g in got] == [(batch, 1000)] * 3
        assert max_abs_diff(expected, got) < 1e-4


def test_static_batch_is_fixed(tmp_path):
    module = compiled("highway_fc.cnn")
    path = tmp_path / "h.onnx"
    export.export_onnx(module, path, batch=3, opset=18)
    model = onnx.load(str(path))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3
    assert next(o.version for o in model.opset_import if o.domain == "") == 18


# ---- TorchScript and ExportedProgram ----------------------------------------------------------


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_all_three_formats_round_trip(run, tmp_path):
    """The CIFAR ResNet (zero-padding shortcuts: strided slices and a channel pad) in every
    format at once, batch dynamic; each file loaded back here and run at a new batch size."""
    files = {kind: tmp_path / name for kind, name in
             [("onnx", "r.onnx"), ("torchscript", "r.pt"), ("exported-program", "r.pt2")]}
    torch.manual_seed(0)  # the command's module gets the weights `compiled` gives below
    status, out, err = run("export", ZOO / "resnet_cifar.cnn", "--dynamic-batch",
                           *[a for kind, path in files.items() for a in (f"--{kind}", path)])
    assert status == 0, err
    assert out.startswith("resnet_cifar: 269,722 parameters, input 2x3x32x32, batch dynamic, 1 output(s)")
    for kind in ("onnx", "torchscript", "exported program"):
        assert re.search(rf"^{kind}: wrote .*max abs diff vs torch: \S+ \(batch 2\), \S+ \(batch 3\)$", out, re.M)
    module = compiled("resnet_cifar.cnn")
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        expected = module(x)
        scripted = torch.jit.load(str(files["torchscript"]))(x)
        program = torch.export.load(str(files["exported-program"])).module()(x)
    assert max_abs_diff(expected, onnxruntime_outputs(files["onnx"], x)) < 1e-4
    assert max_abs_diff(expected, scripted) < 1e-5
    assert max_abs_diff(expected, program) < 1e-5


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_and_exported_program_keep_every_output(tmp_path):
    module = compiled("googlenet.cnn")
    ts = export.export_torchscript(module, tmp_path / "g.pt", batch=1)
    ep = export.save_exported_program(module, tmp_path / "g.pt2", batch=1)
    assert ts.diffs[1] < 1e-5 and ep.diffs[1] < 1e-5
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = module(x)
        assert len(expected) == 3
        assert max_abs_diff(expected, torch.jit.load(str(tmp_path / "g.pt"))(x)) < 1e-5
        assert max_abs_diff(expected, torch.export.load(str(tmp_path / "g.pt2")).module()(x)) < 1e-5


# ---- the command's exit codes and messages -----------------------------------------------------


def test_no_format_is_a_usage_error(run):
    status, out, err = run("export", ZOO / "highway_fc.cnn")
    assert status == 2
    assert "give at least one of --onnx, --torchscript, --exported-program" in err


def test_a_difference_above_the_tolerance_fails(run, tmp_path):
    # onnxruntime's kernels differ from torch's in the last bits: above a tolerance of 0
    status, out, err = run("export", ZOO / "highway_fc.cnn", "--onnx", tmp_path / "h.onnx", "--tolerance", "0")
    assert status == 1
    assert "onnx: wrote" not in out
    assert err.startswith("cnndsl export: error: onnxruntime differs from the torch backend at batch 2: max abs diff")
    assert "is above the tolerance 0" in err and "Traceback" not in err


def test_bad_paths_and_programs(run, tmp_path):
    status, _, err = run("export", ZOO / "highway_fc.cnn", "--onnx", tmp_path / "missing" / "h.onnx")
    assert status == 1 and "cannot write" in err and "no directory" in err
    broken = tmp_path / "broken.cnn"
    broken.write_text("network broken {\n  input 3x8x8\n  conv 9x9 4\n}\n")
    status, _, err = run("export", broken, "--onnx", tmp_path / "b.onnx")
    assert status == 1 and "broken.cnn:3:3: error:" in err
    with pytest.raises(SystemExit) as exc:
        run("export", ZOO / "highway_fc.cnn", "--onnx", tmp_path / "h.onnx", "--batch", "0")
    assert exc.value.code == 2


def test_overrides_apply(run, tmp_path):
    status, out, err = run("export", ZOO / "highway_fc.cnn", "--set", "highway_layers=2", "--input", "1x8x8",
                           "--exported-program", tmp_path / "h.pt2", "--batch", "4")
    assert status == 0, err
    assert out.startswith("highway_fc: ") and "input 4x1x8x8" in out
    assert "exported program: wrote" in out


def test_help(run, capsys):
    with pytest.raises(SystemExit) as exc:
        run("export", "--help")
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--onnx", "--torchscript", "--exported-program", "--opset", "--dynamic-batch", "--batch",
                   "--tolerance", "--set", "--input"):
        assert option in text


def test_default_opset_is_supported():
    opset = export.default_opset()
    assert 17 <= opset <= onnx.defs.onnx_opset_version()


def test_the_command_exports_given_weights_with_a_dynamic_batch_by_default(run, tmp_path):
    """--weights: a state_dict of this network (as `weights -o` or `train` write it) is what the
    ONNX file computes; ONNX is dynamic in the batch unless --no-dynamic-batch."""
    torch.manual_seed(7)
    trained = cnndsl.compile_file(ZOO / "lenet5.cnn").to_torch().eval()
    torch.save({"model": trained.state_dict(), "step": 3}, tmp_path / "ckpt.pt")  # a train checkpoint's layout
    path = tmp_path / "lenet.onnx"
    status, out, err = run("export", ZOO / "lenet5.cnn", "--weights", tmp_path / "ckpt.pt", "--onnx", path)
    assert status == 0, err
    assert "60,000 parameters from" in out and "batch dynamic" in out
    for batch in (1, 5):  # neither is the example batch (2)
        x = torch.randn(batch, 1, 32, 32)
        with torch.no_grad():
            assert max_abs_diff(trained(x), onnxruntime_outputs(path, x)) < 1e-4
    status, out, err = run("export", ZOO / "lenet5.cnn", "--onnx", path, "--no-dynamic-batch", "--batch", "3")
    assert status == 0, err
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3
    torch.save(cnndsl.compile_file(ZOO / "resnet18.cnn").to_torch().state_dict(), tmp_path / "other.pt")
    status, out, err = run("export", ZOO / "lenet5.cnn", "--weights", tmp_path / "other.pt", "--onnx", path)
    assert status == 1 and "is not a state_dict of this network" in err and "Traceback" not in err
