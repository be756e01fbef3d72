"""`cnndsl weights`: reference models' tensors mapped onto compiled networks, through the CLI,
and weight import with equal outputs for every zoo row checked against torchvision or timm."""

from __future__ import annotations

import re

import pytest
import timm
import torch
import torchvision

import cnndsl
from tests.conftest import ZOO
from tests.zoo_table import ROWS

pytestmark = pytest.mark.usefixtures("one_thread")




def randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Batch norm with non-trivial affine parameters and statistics: a mis-paired one would show."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.1, 0.1, generator=gen)
                m.running_mean.uniform_(-0.1, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)


def outputs_equal(model: torch.nn.Module, reference: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        got, expected = model.eval()(x), reference.eval()(x)
    got = got[0] if isinstance(got, tuple) else got  # (main, aux …): a reference in eval gives the main logits
    assert got.shape == expected.shape
    assert expected.abs().max().item() > 1e-3  # not a vacuous comparison of near-zero outputs
    return (got - expected).abs().max().item() / max(1.0, expected.abs().max().item())


# ---- the command ----------------------------------------------------------------------------


def test_resnet18_from_torchvision(run, tmp_path):
    out_file = tmp_path / "resnet18.pt"
    status, out, err = run("weights", ZOO / "resnet18.cnn", "--input", "3x64x64",
                           "--from", "torchvision:resnet18", "-o", out_file)
    assert status == 0, err
    assert "paired 102 tensors of resnet18 with torchvision:resnet18 by registration order" in out
    assert re.search(r"conv1\.weight\s+<-\s+conv1\.weight\s+\(64, 3, 7, 7\)", out)
    assert re.search(r"layer2\.0\.shortcut1\.conv1\.weight\s+<-\s+layer2\.0\.downsample\.0\.weight", out)
    assert "unmatched: none" in out
    assert re.search(r"outputs equal torchvision:resnet18's: max abs diff \S+ on a random 2x3x64x64 input", out)
    assert f"11,689,512 parameters) to {out_file}" in out
    # the saved state_dict loads into a freshly compiled module
    model = cnndsl.compile_file(ZOO / "resnet18.cnn", input="3x64x64").to_torch()
    model.load_state_dict(torch.load(out_file, weights_only=True))


def test_inception_v4_from_timm(run):
    # 75x75 is the smallest input whose grids all fit Inception-v4's valid convolutions
    status, out, err = run("weights", ZOO / "inception_v4.cnn", "--input", "3x75x75", "--from", "timm:inception_v4",
                           "--batch", "1")
    assert status == 0, err
    assert re.search(r"paired \d+ tensors of inception_v4 with timm:inception_v4 by registration order", out)
    assert "outputs equal timm:inception_v4's" in out and "1x3x75x75" in out


def test_preact_pairs_by_call_order(run):
    status, out, err = run("weights", ZOO / "preact_resnet18.cnn", "--input", "3x32x32", "--from", "timm:resnetv2_18")
    assert status == 0, err
    assert "by call order" in out
    assert re.search(r"conv1\.weight\s+<-\s+stem\.conv\.weight\s+\(64, 3, 7, 7\)", out)


def test_from_a_state_dict_file(run, tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    randomise(reference)
    torch.save(reference.state_dict(), tmp_path / "pretrained.pt")
    torch.save({"epoch": 3, "state_dict": reference.state_dict()}, tmp_path / "checkpoint.pt")
    for source in ("pretrained.pt", "checkpoint.pt"):
        status, out, err = run("weights", ZOO / "resnet18.cnn", "--input", "3x64x64",
                               "--from", tmp_path / source, "-o", tmp_path / "ours.pt")
        assert status == 0, err
        assert "paired 102 tensors" in out and "by registration order" in out
        assert "no reference outputs to compare" in out
        model = cnndsl.compile_file(ZOO / "resnet18.cnn", input="3x64x64").to_torch()
        model.load_state_dict(torch.load(tmp_path / "ours.pt", weights_only=True))
        assert outputs_equal(model, reference, torch.randn(2, 3, 64, 64)) < 1e-4


def test_a_state_dict_in_another_order_pairs_by_name(run, tmp_path):
    """torchvision registers GoogLeNet's auxiliary heads last; a state_dict has no forward pass
    to order them by, but it carries the names the .cnn file uses."""
    torch.manual_seed(0)
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    randomise(reference)
    torch.save(reference.state_dict(), tmp_path / "googlenet.pt")
    file = ZOO / "variants" / "googlenet_torchvision.cnn"
    status, out, err = run("weights", file, "--input", "3x96x96", "--from", tmp_path / "googlenet.pt",
                           "-o", tmp_path / "ours.pt")
    assert status == 0, err
    assert "paired 305 tensors" in out and "by equal names" in out
    model = cnndsl.compile_file(file, input="3x96x96").to_torch()
    model.load_state_dict(torch.load(tmp_path / "ours.pt", weights_only=True))
    assert outputs_equal(model, reference, torch.randn(2, 3, 96, 96)) < 1e-4
    # by registration order alone the auxiliary heads do not pair
    status, _, err = run("weights", file, "--input", "3x96x96", "--from", tmp_path / "googlenet.pt",
                         "--order", "registration")
    assert status == 1 and "has shape" in err


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("torchvision:resnet1800", "unknown torchvision model 'resnet1800' (did you mean resnet18"),
        ("timm:no_such_net", "unknown timm model 'no_such_net'"),
        ("torchvision:", "expected torchvision:MODEL"),
        ("hub:resnet18", "--from hub:resnet18: no such file; expected torchvision:MODEL, timm:MODEL or a state_dict"),
    ],
)
def test_unknown_models_are_one_line_errors(run, source, message):
    status, out, err = run("weights", ZOO / "resnet18.cnn", "--from", source)
    assert status == 1
    assert err.startswith("cnndsl weights: error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert out == ""


def test_a_mismatch_names_the_first_mismatching_tensor(run, tmp_path):
    status, out, err = run("weights", ZOO / "resnet18.cnn", "--input", "3x64x64", "--from", "torchvision:resnet50",
                           "-o", tmp_path / "w.pt")
    assert status == 1
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "`layer1.0.conv1.weight` has shape (64, 64, 3, 3) but the reference's `layer1.0.conv1.weight` has " \
           "(64, 64, 1, 1)" in err
    assert "the module has 102 tensors, the reference 267" in err
    assert not (tmp_path / "w.pt").exists()


def test_other_errors(run, tmp_path):
    (tmp_path / "notes.txt").write_text("not a state_dict\n")
    torch.save({"a": 1}, tmp_path / "empty.pt")
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pt")
    cases = [
        (["--from", tmp_path / "notes.txt"], "cannot load"),
        (["--from", tmp_path / "empty.pt"], "holds no state_dict"),
        (["--from", tmp_path / "r18.pt", "--order", "calls"], "pairing by call order needs a reference nn.Module"),
        (["--from", "torchvision:resnet18", "--arg", "num_classes=10"], "`fc1.weight` has shape (1000, 512)"),
        (["--from", "torchvision:resnet18", "--arg", "10"], "expected NAME=VALUE"),
        (["--from", "torchvision:resnet18", "-o", tmp_path / "no" / "w.pt"], "cannot write"),
    ]
    for extra, message in cases:
        status, _, err = run("weights", ZOO / "resnet18.cnn", "--input", "3x32x32", *extra)
        assert status == 1, extra
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_constructor_arguments(run):
    status, out, err = run("weights", ZOO / "resnet18.cnn", "--input", "3x32x32", "--set", "classes=10",
                           "--from", "torchvision:resnet18", "--arg", "num_classes=10")
    assert status == 0, err
    assert "outputs equal" in out


def test_help_says_where_pretrained_weights_come_from(run, capsys):
    with pytest.raises(SystemExit) as exc:
        run("weights", "--help")
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "random weights" in text and "nothing is downloaded" in text
    assert "save its state_dict" in text and "pass that file to --from" in text


# ---- every zoo row checked against torchvision or timm ---------------------------------------

REFERENCE = re.compile(r"outputs equal (torchvision|timm) `(\w+)`")
TABLE = [(row.file, *REFERENCE.search(row.checked).groups()) for row in ROWS if REFERENCE.search(row.checked)]

# The smallest cheap input each network takes. VGG's and AlexNet's classifiers are sized for
# 224x224 (no adaptive pool in the .cnn files) and Inception-v3's auxiliary head for 299x299:
# those run at their full size, batch 1.
INPUTS = {
    "variants/alexnet_torchvision.cnn": (3, 224, 224),
    "variants/googlenet_torchvision.cnn": (3, 96, 96),
    "inception_v3.cnn": (3, 299, 299),
    "inception_v4.cnn": (3, 75, 75),
    "inception_resnet_v2.cnn": (3, 75, 75),
    **{f"vgg{d}.cnn": (3, 224, 224) for d in (11, 13, 16, 19)},
}
DEFAULT_INPUT = (3, 64, 64)


def test_the_table_has_the_references():
    assert len(TABLE) == 71  # one per row whose check names a reference: grows with the zoo
    assert {lib for _, lib, _ in TABLE} == {"torchvision", "timm"}


def _reference(library: str, name: str) -> torch.nn.Module:
    if library == "timm":
        return timm.create_model(name, pretrained=False)
    kwargs = {"init_weights": True} if name in ("googlenet", "inception_v3") else {}
    return torchvision.models.get_model(name, weights=None, **kwargs)


@pytest.mark.parametrize(("file", "library", "name"), TABLE, ids=[f"{t[0]}-{t[2]}" for t in TABLE])
def test_weight_import_gives_equal_outputs(file, library, name):
    shape = INPUTS.get(file, DEFAULT_INPUT)
    torch.manual_seed(0)
    reference = _reference(library, name)
    randomise(reference)
    # the compiled module's own initialisation is overwritten: skip it (meta device, then empty)
    net = cnndsl.compile_file(ZOO / file, input="x".join(map(str, shape)))
    with torch.device("meta"):
        model = net.to_torch()
    model = model.to_empty(device="cpu")
    pairs = cnndsl.load_weights(model, reference)
    assert len(pairs) == len(model.state_dict()) - sum(k.endswith("num_batches_tracked") for k in model.state_dict())
    batch = 1 if shape[1] >= 224 else 2
    assert outputs_equal(model, reference, torch.randn(batch, *shape)) < 1e-4
