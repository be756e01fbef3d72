"""Summaries: per layer or per block (--depth), the connections column, and the text, md, json and csv formats."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys

import pytest

import cnndsl
from cnndsl.cli import build_parser, main
from cnndsl.ir.summary import Summary, block_of
from cnndsl.tools.summary import render
from tests.conftest import ROOT, ZOO


def summary(name: str, **kw) -> Summary:
    return cnndsl.compile_file(ZOO / f"{name}.cnn", **kw).summary()


# GoogLeNet's table 1: output size of each inception module
GOOGLENET = {
    "inception3a": [256, 28, 28], "inception3b": [480, 28, 28],
    "inception4a": [512, 14, 14], "inception4b": [512, 14, 14], "inception4c": [512, 14, 14],
    "inception4d": [528, 14, 14], "inception4e": [832, 14, 14],
    "inception5a": [832, 7, 7], "inception5b": [1024, 7, 7],
}

# LeNet-5 (LeCun et al. 1998, section II.B): connections of the first four layers
LENET = {"c1": 122_304, "s2": 5_880, "c3": 151_600, "s4": 2_000}


def test_block_of():
    assert block_of("layer3.1.conv2", 1) == "layer3"
    assert block_of("layer3.1.conv2", 2) == "layer3.1"
    assert block_of("layer3.1.conv2", 5) == "layer3.1.conv2"
    assert block_of("layer3.1.conv2", None) == "layer3.1.conv2"
    with pytest.raises(ValueError):
        block_of("conv1", 0)


def test_depth_collapses_blocks_and_sums_their_counts():
    s = summary("resnet50")
    blocks = s.collapse(2)
    assert [r.name for r in blocks.rows[:6]] == ["input", "conv1", "bn1", "relu1", "maxpool1", "layer1.0"]
    assert len(blocks.rows) == 23 and sum(r.layers for r in blocks.rows) == len(s.rows)
    for row in blocks.rows:
        members = [r for r in s.rows if r.name == row.name or r.name.startswith(row.name + ".")]
        assert row.params == sum(r.params for r in members), row.name
        assert row.macs == sum(r.macs for r in members), row.name
        assert row.connections == sum(r.connections for r in members), row.name
        assert row.shape == members[-1].shape and row.layers == len(members)
        assert row.op == ("block" if len(members) > 1 else members[0].op)
    assert sum(r.params for r in blocks.rows) == s.params == 25_557_032
    assert sum(r.macs for r in blocks.rows) == s.macs
    layer1 = s.collapse(1).rows[5]
    assert (layer1.name, layer1.shape, layer1.layers) == ("layer1", [256, 56, 56], 12 + 10 + 10)
    assert layer1.params == sum(r.params for r in blocks.rows if r.name.startswith("layer1."))
    assert s.collapse(None) is s and len(s.collapse(9).rows) == len(s.rows)
    assert (blocks.params, blocks.macs, blocks.outputs) == (s.params, s.macs, s.outputs)


def test_googlenet_per_block_at_depth_1_has_the_papers_shapes():
    s = summary("googlenet")
    rows = {r.name: r for r in s.collapse(1).rows}
    for name, shape in GOOGLENET.items():
        assert rows[name].shape == shape and rows[name].op == "block", name
    assert rows["inception3a"].params == 163_696  # = tests/test_zoo.py's count of one module
    assert rows["aux1"].shape == [1000] and rows["fc"].op == "fc"
    text = render(s, "text", depth=1)
    for name, shape in GOOGLENET.items():
        assert re.search(rf"^{name} +block +14 +{'x'.join(map(str, shape))} ", text, re.M), name
    assert "inception3a.branch1" not in text


def test_lenet_connections_match_the_paper():
    s = summary("lenet5")
    rows = {r.name: r for r in s.rows}
    for name, count in LENET.items():
        assert rows[name].connections == count, name
    text = render(s, "text")
    assert text.splitlines()[1].split() == ["layer", "op", "output", "params", "MACs", "connections"]
    for name, count in LENET.items():
        assert re.search(rf"^{name} .* {count:,}$", text, re.M), name
    md = render(s, "md")
    assert "| layer | op | output | params | MACs | connections |" in md
    assert "| `c1` | conv | 6x28x28 | 156 | 117,600 | 122,304 |" in md
    assert "connections" not in render(s, "text", connections=False)


def test_connections_column_only_when_asked_for_other_networks():
    s = summary("resnet18")
    assert not s.shows_connections()
    assert "connections" not in render(s, "text") and "connections" not in render(s, "md")
    text = render(s, "text", connections=True)
    assert text.splitlines()[1].split()[-1] == "connections"
    conv1 = next(r for r in s.rows if r.name == "conv1")
    assert f"{conv1.connections:,}" in text and conv1.connections == 9_408 * 112 * 112


def test_default_text_format_is_unchanged():
    text = render(summary("vgg16"))
    lines = text.splitlines()
    assert lines[0] == "network vgg16"
    assert lines[1].split() == ["layer", "op", "output", "params", "MACs"]
    assert set(lines[2]) == {"-", " "}
    assert "\x1b[" not in text  # no terminal colours unless asked for
    assert lines[-5:] == [
        "inputs:  3x224x224",
        "outputs: 1000",
        "memory:  527.79 MiB parameters + 109.87 MiB activations of one example = 637.66 MiB (fp32; every layer's "
        "output, as a training step keeps them)",
        "params:  138,357,544 (138,357,544 trainable)",
        "MACs:    15,470,264,320 (15.47 G)",
    ]
    assert re.search(r"^features\.0\.conv1 +conv +64x224x224 +1,792 +86,704,128$", text, re.M)


def test_csv_parses():
    s = summary("googlenet")
    rows = list(csv.DictReader(io.StringIO(render(s, "csv"))))
    assert list(rows[0]) == ["layer", "op", "layers", "output", "params", "macs", "connections", "line"]
    assert len(rows) == len(s.rows) and rows[1]["layer"] == "conv1" and rows[1]["output"] == "64x112x112"
    assert sum(int(r["params"]) for r in rows) == s.params == 13_378_280
    assert sum(int(r["macs"]) for r in rows) == s.macs
    blocks = list(csv.DictReader(io.StringIO(render(s, "csv", depth=1))))
    row = next(r for r in blocks if r["layer"] == "inception4e")
    assert (row["op"], row["layers"], row["output"], row["line"]) == ("block", "14", "832x14x14", "")
    assert sum(int(r["params"]) for r in blocks) == s.params


def test_json_keys_are_stable():
    s = summary("resnet18")
    for depth in (None, 1, 2):
        data = json.loads(render(s, "json", depth=depth))
        assert {"name", "params", "trainable_params", "fixed_params", "macs", "inputs", "outputs", "rows"} <= set(data)
        assert data["params"] == 11_689_512 and data["outputs"] == [[1000]]
        assert {"name", "op", "shape", "params", "macs", "connections", "line", "layers"} == set(data["rows"][0])
    data = json.loads(render(s, "json", depth=1))
    assert [r["name"] for r in data["rows"]][5:9] == ["layer1", "layer2", "layer3", "layer4"]
    assert data["rows"][5]["layers"] > 1


def test_markdown_tables_are_well_formed():
    s = summary("resnet50")
    for depth, header in ((None, "| layer | op | output | params | MACs |"),
                          (2, "| layer | op | layers | output | params | MACs |")):
        md = render(s, "md", depth=depth)
        lines = md.splitlines()
        assert lines[0] == "### resnet50" and lines[2] == header
        table = [line for line in lines if line.startswith("|")]
        assert len(table) == 2 + len(s.collapse(depth).rows)
        assert {line.count("|") for line in table} == {header.count("|")}
    assert "| `layer1.0` | block | 12 | 256x56x56 | 75,008 | 231,211,008 |" in render(s, "md", depth=2)


def test_rich_table_for_a_terminal():
    s = summary("googlenet")
    out = render(s, "text", depth=1, tty=True, width=120)
    assert "\x1b[" in out and "inception5b" in out and "1024x7x7" in out
    assert "13,378,280" in out and "inception3a.branch1" not in out
    plain = re.sub(r"\x1b\[[0-9;]*m", "", render(s, "text", tty=True, width=120))
    assert "inception3a.branch1.conv1" in plain and "MACs" in plain


def test_bad_format_and_depth():
    s = summary("lenet5")
    with pytest.raises(ValueError, match="unknown summary format"):
        render(s, "xml")
    with pytest.raises(ValueError, match="depth"):
        render(s, "text", depth=0)


def test_rendering_imports_neither_torch_nor_rich():
    code = (
        "import sys, cnndsl\n"
        "from cnndsl.tools.summary import render\n"
        f"s = cnndsl.compile_file(r'{ZOO / 'googlenet.cnn'}').summary()\n"
        "for fmt in ('text', 'md', 'json', 'csv'):\n"
        "    render(s, fmt); render(s, fmt, depth=1, connections=True)\n"
        "assert 'torch' not in sys.modules and 'rich' not in sys.modules, 'a heavy import'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _summary_options() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return {opt for action in sub.choices["summary"]._actions for opt in action.option_strings}


def test_cli_depth_csv_and_connections(capsys):
    assert {"--depth", "--connections"} <= _summary_options()
    assert main(["summary", str(ZOO / "googlenet.cnn"), "--depth", "1", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["layer"]: r["output"] for r in rows}["inception5b"] == "1024x7x7"
    assert main(["summary", str(ZOO / "resnet18.cnn"), "--connections"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[-1] == "connections"
    assert main(["summary", str(ZOO / "resnet18.cnn"), "--depth", "1", "--format", "md"]) == 0
    assert "| `layer1` | block |" in capsys.readouterr().out


def test_counts_are_shown_in_the_unit_that_fits_them():
    from cnndsl.ir.summary import scaled

    assert [scaled(n) for n in (0, 42, 325_680, 4_455_531_264, 1_500_000)] == ["0", "42", "325.68 K", "4.46 G",
                                                                               "1.50 M"]


def test_lenet_totals_count_its_connections():
    """LeCun counts connections (340,908 for LeNet-5, the paper's figure); the totals do too when the
    column is shown, and leave it out otherwise."""
    assert render(summary("lenet5")).splitlines()[-1] == "connections: 340,908 (340.91 K)"
    assert "connections" not in render(summary("vgg16"))
