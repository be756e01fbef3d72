"""Networks by name (issue 16, item 1): `list_models`, `create_model`, `cnndsl zoo` and a zoo
name wherever a command takes a FILE, from any working directory."""

from __future__ import annotations

import re
import urllib.error

import pytest
import torch
import torchvision

import cnndsl
from cnndsl import CompileError
from cnndsl.cli import main
from tests.conftest import ZOO


def test_every_zoo_file_has_a_name():
    names = cnndsl.list_models()
    stems = sorted(p.stem for p in ZOO.glob("*.cnn"))
    variants = sorted(f"variants/{p.stem}" for p in (ZOO / "variants").glob("*.cnn"))
    assert names == sorted(stems + variants)
    assert cnndsl.list_models("efficientnet_v2_*") == ["efficientnet_v2_l", "efficientnet_v2_m", "efficientnet_v2_s"]
    assert cnndsl.list_models("no_such*") == []


def test_create_model_sets_parameters_and_takes_weights(tmp_path):
    torch.manual_seed(0)
    a = cnndsl.create_model("resnet18", classes=10).eval()
    assert sum(p.numel() for p in a.parameters()) == 11_181_642
    x = torch.randn(2, 3, 64, 64)
    torch.save(a.state_dict(), tmp_path / "w.pt")
    for weights in (a.state_dict(), tmp_path / "w.pt", str(tmp_path / "w.pt")):
        b = cnndsl.create_model("resnet18", weights=weights, classes=10).eval()
        with torch.no_grad():
            assert torch.equal(a(x), b(x))
    with pytest.raises(CompileError, match="cannot load weights from"):
        cnndsl.create_model("resnet18", weights=tmp_path / "missing.pt")
    with pytest.raises(CompileError) as info:
        cnndsl.create_model("resnet19")
    assert "no zoo network of that name" in info.value.message and "`resnet18`" in info.value.first.hint


def test_reference_weights_come_through_the_reference_loader(monkeypatch):
    """weights="torchvision": torchvision's own pretrained model (here a stand-in, as nothing can be
    downloaded) mapped by load_weights; offline, a clear error."""
    torch.manual_seed(1)
    reference = torchvision.models.mobilenet_v2().eval()
    monkeypatch.setattr(torchvision.models, "get_model", lambda name, weights: reference)
    module = cnndsl.create_model("mobilenet_v2", weights="torchvision").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert ((module(x) - reference(x)).abs().max() / reference(x).abs().max()).item() < 1e-5

    def offline(name, weights):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torchvision.models, "get_model", offline)
    with pytest.raises(CompileError, match="cannot get torchvision's pretrained weights for 'mobilenet_v2'"):
        cnndsl.create_model("mobilenet_v2", weights="torchvision")


def test_commands_take_a_zoo_name_from_any_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["summary", "resnet152"]) == 0
    assert "60,192,808" in capsys.readouterr().out
    assert main(["check", "lenet5", "variants/googlenet_torchvision"]) == 0
    assert main(["check", "resnt50"]) == 1
    assert "did you mean `resnet50`" in capsys.readouterr().err
    (tmp_path / "resnet50").mkdir()  # an existing path wins over the zoo name: here a directory
    (tmp_path / "resnet50" / "mine.cnn").write_text("network mine {\n  input 3x8x8\n  relu\n}\n")
    assert main(["check", "resnet50"]) == 0
    assert capsys.readouterr().out == "resnet50/mine.cnn: ok (2 layers, 0 params, 0 MACs)\n"


def test_zoo_lists_and_shows(capsys):
    assert main(["zoo", "efficientnet_v2_*"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"efficientnet_v2_s +21,458,488 +8\.37 G +EfficientNetV2-S \(Tan and Le, 2021\)", out)
    assert out.rstrip().endswith("where it takes a FILE)") and "3 networks" in out
    assert main(["zoo", "show", "lenet5"]) == 0
    assert capsys.readouterr().out == (ZOO / "lenet5.cnn").read_text()
    assert main(["zoo", "nothing*"]) == 1
    assert main(["zoo", "show"]) == 2


def test_compile_file_and_compile_source_name_the_search_path_alike(tmp_path):
    """One name for one thing (issue 16): `search=` in both."""
    import inspect

    assert "search" in inspect.signature(cnndsl.compile_file).parameters
    assert "search" in inspect.signature(cnndsl.compile_source).parameters
    assert "path" not in inspect.signature(cnndsl.compile_source).parameters
    (tmp_path / "blocks.cnn").write_text("block twice() {\n  relu -> relu\n}\n")
    net = cnndsl.compile_source('use "blocks.cnn"\nnetwork n {\n  input 3x8x8\n  twice()\n}\n', search=[str(tmp_path)])
    assert net.graph.number_of_nodes() == 3


def test_the_python_api_names_the_extra_it_lacks():
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "import cnndsl\n"
            "net = cnndsl.compile_file('zoo/lenet5.cnn')\n"
            "print(net.summary().params)\n"
            "try:\n    net.to_torch()\nexcept cnndsl.CompileError as err:\n    print(err.render())\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ZOO.parent, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "60840"
    assert "the torch backend needs torch, which is not installed" in out.stdout and "cnndsl[torch]" in out.stdout
