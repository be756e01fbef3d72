"""The command line: exit codes, outputs, overrides, and that check/summary never import torch."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from cnndsl.cli import main
from tests.conftest import ROOT, ZOO

BROKEN = """network broken {
  input 3x32x32
  conv 3x3 64 pad=1
  residual {
    conv 3x3 128 /2 pad=1 -> relu
    conv 3x3 128 pad=1
  } shortcut=identity
}
"""


def test_compile_prints_the_summary(capsys):
    assert main(["compile", str(ZOO / "resnet152.cnn")]) == 0
    out = capsys.readouterr().out
    assert "params:  60,192,808" in out
    assert "(11.51 G)" in out
    # 515 layers: one row per block by default (issue 16), every layer with --depth all
    assert re.search(r"^layer3\.35 +block +10 +1024x14x14", out, re.M) and "layer3.35.conv3" not in out
    assert len(out.splitlines()) < 90
    assert main(["summary", str(ZOO / "resnet152.cnn"), "--depth", "all"]) == 0
    out = capsys.readouterr().out
    assert "layer3.35.conv3" in out and len(out.splitlines()) > 515
    assert main(["summary", str(ZOO / "resnet18.cnn")]) == 0  # 69 layers: every one
    assert "layer4.1.conv2" in capsys.readouterr().out


def test_summary_json(capsys):
    assert main(["summary", str(ZOO / "resnet18.cnn"), "--format", "json", "--set", "classes=10",
                 "--input", "3x32x32"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == 11_689_512 - 512 * 990 - 990
    assert data["trainable_params"] == data["params"]
    assert data["outputs"] == [[10]] and data["inputs"] == [[3, 32, 32]]
    assert data["macs"] > 0 and data["rows"][1]["name"] == "conv1"


def test_summary_markdown(capsys):
    assert main(["summary", str(ZOO / "vgg16.cnn"), "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("### vgg16") and "| `features.0.conv1` | conv | 64x224x224 | 1,792 |" in out


def test_emit_ir_round_trips(tmp_path, capsys):
    from cnndsl.ir.graph import loads, to_json

    target = tmp_path / "r18.json"
    assert main(["compile", str(ZOO / "resnet18.cnn"), "--emit", "ir", "-o", str(target)]) == 0
    graph = loads(target.read_text())
    assert graph.number_of_nodes() > 60
    assert json.loads(target.read_text()) == to_json(graph)


def test_emit_torch_code_and_module(tmp_path, capsys):
    import importlib.util

    import torch

    assert main(["compile", str(ZOO / "resnet18.cnn"), "--emit", "torch", "--set", "classes=10", "--input", "3x32x32"]) == 0
    code = capsys.readouterr().out
    assert code.startswith('"""resnet18 as cnndsl lowers it to torch') and "def forward(self, input):" in code
    (tmp_path / "resnet18_module.py").write_text(code)  # importable: build() makes the module
    spec = importlib.util.spec_from_file_location("resnet18_module", tmp_path / "resnet18_module.py")
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    built = generated.build()
    assert built(torch.randn(2, 3, 32, 32)).shape == (2, 10) and sum(p.numel() for p in built.parameters()) == 11_181_642
    assert generated.FORWARD.strip() == built.code.strip()
    target = tmp_path / "m.pt"
    assert main(["compile", str(ZOO / "resnet18.cnn"), "--emit", "torch", "-o", str(target), "--input", "3x64x64"]) == 0
    module = torch.load(target, weights_only=False)
    assert module(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_error_has_location_caret_and_exit_1(tmp_path, capsys):
    bad = tmp_path / "broken.cnn"
    bad.write_text(BROKEN)
    assert main(["check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:7:5: error: residual add needs equal shapes, got 128x16x16" in err
    assert "64x32x32 (the identity shortcut)" in err
    assert "   |     ^^^^^^^^^^^^^^^^^" in err
    assert "shortcut=project" in err and err.rstrip().endswith("1 error")
    assert "Traceback" not in err


def test_check_reports_every_file(tmp_path, capsys):
    bad = tmp_path / "broken.cnn"
    bad.write_text(BROKEN)
    typo = tmp_path / "typo.cnn"
    typo.write_text("network t {\n  input 3x8x8\n  cnov 3x3 8\n}\n")
    assert main(["check", str(bad), str(ZOO / "resnet18.cnn"), str(typo)]) == 1
    captured = capsys.readouterr()
    assert "resnet18.cnn: ok" in captured.out
    assert "unknown layer or block `cnov`" in captured.err and "did you mean `conv`?" in captured.err
    assert captured.err.rstrip().endswith("2 errors")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--set", "clases=10"], "has no parameter `clases`"),
        (["--set", "classes"], "expected NAME=VALUE"),
        (["--set", "classes=(1"], "syntax error"),
        (["--input", "3by32"], "expected sizes like 3x224x224"),
        (["--input", "3x" + "9" * 5000], "each below 10^12"),
        (["--set", "classes=" + "9" * 5000], "--set classes:1:1: error: this number has 5,000 characters"),
        (["--limit", "nodes=" + "9" * 5000], "N a whole number below 10^18"),
    ],
)
def test_bad_overrides_are_usage_errors(argv, message, capsys):
    """A malformed option value is bad usage (exit 2); the message says which option."""
    assert main(["summary", str(ZOO / "resnet18.cnn"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_well_formed_override_the_program_rejects_is_an_error_in_the_program(capsys):
    assert main(["summary", str(ZOO / "resnet18.cnn"), "--set", "classes=0"]) == 1
    err = capsys.readouterr().err
    assert "fc: out must be positive, got 0" in err and "note: with --set classes=0 (given on the command line)" in err


def test_missing_file(capsys):
    assert main(["check", "no/such/file.cnn"]) == 1
    assert "cannot read no/such/file.cnn" in capsys.readouterr().err


def test_help_everywhere():
    for argv in (["--help"], ["compile", "--help"], ["check", "--help"], ["summary", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0


def test_bad_usage_exits_2():
    with pytest.raises(SystemExit) as exit_info:
        main(["compile"])
    assert exit_info.value.code == 2


def test_check_and_summary_do_not_import_torch():
    code = (
        "import sys\nfrom cnndsl.cli import main\n"
        f"main(['check', '-q', r'{ZOO / 'resnet152.cnn'}'])\n"
        f"main(['summary', '--format', 'json', r'{ZOO / 'resnet50.cnn'}'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_console_script_runs():
    exe = ROOT / ".venv" / "bin" / "cnndsl"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "cnndsl.cli"]
    result = subprocess.run([*cmd, "check", str(ZOO / "resnet50.cnn")], capture_output=True, text=True)
    assert result.returncode == 0 and "25,557,032 params" in result.stdout


def test_limit_flag(tmp_path, capsys):
    f = tmp_path / "big.cnn"
    f.write_text("network n { input 3x8x8\n repeat 300 { repeat 300 { relu } } }\n")
    assert main(["check", str(f)]) == 1
    assert "raise it with --limit nodes=N" in capsys.readouterr().err
    assert main(["check", str(f), "--limit", "nodes=100000"]) == 0
    assert main(["check", str(f), "--limit", "nodez=1"]) == 2
    assert "expected NAME=N with NAME one of nodes, repeat" in capsys.readouterr().err


def test_readme_error_example_is_what_the_cli_prints(tmp_path, monkeypatch, capsys):
    import re

    readme = (ROOT / "README.md").read_text()
    source = re.search(r"With `net.cnn`:\n\n```cnn\n(.*?)```", readme, re.S).group(1)
    expected = re.search(r"prints, and exits 1:\n\n```text\n(.*?)```", readme, re.S).group(1)
    (tmp_path / "net.cnn").write_text(source)
    monkeypatch.chdir(tmp_path)
    assert main(["check", "net.cnn"]) == 1
    assert capsys.readouterr().err == expected


def test_libraries_check_but_do_not_compile(capsys):
    assert main(["check", str(ZOO / "lib" / "resnet.cnn")]) == 0
    assert "resnet.cnn: ok (a library of 5 blocks)" in capsys.readouterr().out
    assert main(["summary", str(ZOO / "lib" / "resnet.cnn")]) == 1
    err = capsys.readouterr().err
    assert "lib/resnet.cnn:1:1: error:" in err and "defines no network (only blocks: basic, bottleneck, plain, bottleneck_stage, bottleneck_resnet)" in err


def test_check_takes_directories_counts_warnings_and_quiet_hides_them(tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ok.cnn").write_text("network a {\n  input 3x8x8\n  relu\n}\n")
    (tmp_path / "warn.cnn").write_text("network b {\n  x = input 3x8x8\n  @x -> conv 1x1 4\n  relu\n}\n")
    (tmp_path / "notes.txt").write_text("not a source\n")
    assert main(["check", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "sub/ok.cnn: ok (2 layers" in captured.out and "warn.cnn: ok (3 layers, 16 params, 768 MACs, 1 warning)" \
        in captured.out and "notes.txt" not in captured.out + captured.err
    assert "warning:" in captured.err
    assert main(["check", "-q", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_emit_plan_selects_the_triton_planner_and_a_saved_module_says_how_to_load_it(tmp_path, capsys):
    assert main(["compile", str(ZOO / "lenet5.cnn"), "--emit", "plan"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("lenet5: 3 convolutions → 5 kernels") and "euclidean_rbf" in out
    assert main(["compile", str(ZOO / "lenet5.cnn"), "--emit", "torch", "-o", str(tmp_path / "m.pt")]) == 0
    assert f"load it with torch.load({str(tmp_path / 'm.pt')!r}, weights_only=False)" in capsys.readouterr().out


def test_diagnostics_in_colour_when_asked_and_plain_in_a_pipe(capsys):
    import re

    bad = str(ROOT / "tests" / "diagnostics" / "parameter_declared_twice.cnn")
    assert main(["check", bad]) == 1  # captured: not a terminal, so plain
    plain = capsys.readouterr().err
    assert "\x1b[" not in plain and plain == (ROOT / "tests" / "diagnostics" / "parameter_declared_twice.expected") \
        .read_text().replace("tests/diagnostics/", str(ROOT / "tests" / "diagnostics") + "/")
    assert main(["check", bad, "--color", "always"]) == 1
    coloured = capsys.readouterr().err
    assert "\x1b[1;31merror\x1b[0m" in coloured and re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain
    assert main(["check", bad, "--color", "never"]) == 1
    assert capsys.readouterr().err == plain
