"""`cnndsl graph`: Graphviz drawings (dot, svg, png, html) and the TextMate grammar in editors/."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

import cnndsl
import cnndsl.cli
from cnndsl.cli import main
from cnndsl.ir.registry import REGISTRY
from cnndsl.tools import graph as drawing
from tests.conftest import ROOT, ZOO


# The graphviz package and Debian's `dot` are part of the test set-up (README): these tests
# need them and fail, rather than skip, without them.
def needs_graphviz(test):
    return test


needs_dot = needs_graphviz


@pytest.fixture(autouse=True)
def graph_command(monkeypatch):
    """The `graph` command, whether or not cnndsl/cli.py lists it yet."""
    if "cnndsl.tools.graph" not in cnndsl.cli.TOOL_COMMANDS:
        monkeypatch.setattr(cnndsl.cli, "TOOL_COMMANDS", [*cnndsl.cli.TOOL_COMMANDS, "cnndsl.tools.graph"])


def ir(name: str):
    return cnndsl.compile_file(ZOO / f"{name}.cnn").graph


def edges(source: str) -> list[tuple[str, str, str]]:
    """(from, to, label) of each edge line of dot source."""
    out = []
    for m in re.finditer(r'^\s*"?([^"\s]+)"? -> "?([^"\s]+)"? \[label=" ([^"]*)"\]', source, re.M):
        out.append(m.groups())
    return out


# ---- the picture ----------------------------------------------------------------------------


def test_views_collapse_blocks_and_fold_activations():
    g = ir("resnet50")
    blocks = drawing.make_view(g, 2)
    assert "layer1.0" in blocks.boxes and blocks.boxes["layer1.0"].block
    assert len(blocks.boxes["layer1.0"].nodes) == 12 and "layer1.0.conv1" not in blocks.boxes
    assert blocks.clusters() == ["layer1", "layer2", "layer3", "layer4"]
    every = drawing.make_view(g, None)
    assert every.boxes["conv1"].nodes == ["conv1", "bn1", "relu1"]  # bn and relu folded into the conv
    assert every.boxes["layer1.0.add1"].nodes == ["layer1.0.add1", "layer1.0.relu3"]
    assert every.clusters()[:3] == ["layer1", "layer1.0", "layer1.1"]
    assert every.placement()["layer1.0.shortcut1.conv1"] == ("layer1.0", "shortcut1")  # a block of one box: no cluster
    unfolded = drawing.make_view(g, None, fold=False)
    assert len(unfolded.boxes) == g.number_of_nodes() and "bn1" in unfolded.boxes
    assert drawing.auto_depth(g) == 2
    assert drawing.auto_depth(ir("googlenet")) == 2
    assert drawing.auto_depth(ir("lenet5")) is None


def test_labels():
    g = ir("resnet50")
    assert drawing.op_label(g, "conv1") == "conv 7x7/2, 64"
    assert drawing.op_label(g, "maxpool1") == "maxpool 3x3/2"
    assert drawing.op_label(g, "layer2.0.conv2") == "conv 3x3/2, 128"
    assert drawing.op_label(g, "avgpool1") == "avgpool global"
    assert drawing.op_label(g, "fc1") == "fc 1000"
    assert drawing.op_label(g, "layer1.0.add1") == "+"
    assert drawing.op_label(g, "input") == "input 3x224x224"
    nodes = drawing.make_view(g, 2).boxes["layer2.0"].nodes
    assert drawing.block_lines(g, nodes) == ["conv 1x1, 128 → conv 3x3/2, 128 → conv 1x1, 512",
                                             "shortcut: conv 1x1/2, 512"]
    nodes = drawing.make_view(g, 2).boxes["layer2.1"].nodes
    assert drawing.block_lines(g, nodes)[1] == "identity shortcut"
    g = ir("googlenet")
    assert drawing.block_lines(g, drawing.make_view(g, 1).boxes["inception3a"].nodes) == ["concat of 4 branches"]
    nodes = drawing.make_view(g, 2).boxes["inception3a.branch2"].nodes
    assert drawing.block_lines(g, nodes) == ["conv 1x1, 96 → conv 3x3, 128"]
    assert drawing.op_label(ir("lenet5"), "c3") == "conv 5x5, 16, table"


@needs_graphviz
def test_dot_source_has_clusters_and_shape_labelled_edges():
    source = drawing.to_dot(ir("resnet50"), depth=2)
    for name in ("layer1", "layer2", "layer3", "layer4"):
        assert re.search(rf'subgraph "?cluster_{name}"? \{{', source), name
    assert "cluster_layer1.0" not in source  # collapsed into one box
    pairs = {(a, b): label for a, b, label in edges(source)}
    assert pairs[("input", "conv1")] == "3x224x224"
    assert pairs[("conv1", "maxpool1")] == "64x112x112"
    assert pairs[("maxpool1", "layer1.0")] == "64x56x56"
    assert pairs[("layer1.0", "layer1.1")] == "256x56x56"
    assert pairs[("layer4.2", "avgpool1")] == "2048x7x7"
    assert pairs[("fc1", "__output0")] == "1000"
    assert "conv 7x7/2, 64" in source and "bn · relu" in source and "25,557,032 params" in source
    assert "rankdir=TB" in source and "rankdir=LR" in drawing.to_dot(ir("resnet50"), 2, direction="LR")

    every = drawing.to_dot(ir("resnet50"), depth=None)
    assert re.search(r'subgraph "cluster_layer1\.0" \{', every) and "cluster_layer1.0.shortcut1" not in every
    assert '"layer1.0.shortcut1.conv1" [label=<<b>shortcut1</b><br/>conv 1x1, 256' in every
    pairs = {(a, b): label for a, b, label in edges(every)}
    assert pairs[("layer1.0.conv1", "layer1.0.conv2")] == "64x56x56"
    assert pairs[("layer1.0.shortcut1.conv1", "layer1.0.add1")] == "256x56x56"


@needs_graphviz
def test_concat_branches_side_by_side_in_order():
    source = drawing.to_dot(ir("googlenet"), depth=2)
    for name in ("inception3a", "inception4e", "inception5b", "aux1"):
        assert re.search(rf'subgraph "?cluster_{name}"? \{{', source), name
    into = [a for a, b, _ in edges(source) if b == "inception3a.concat1"]
    assert into == [f"inception3a.branch{i}" for i in (1, 2, 3, 4)]
    assert re.search(r'"inception3a\.concat1" \[label=<concat>[^\]]*ordering=in', source)
    assert "conv 1x1, 96 → conv 3x3, 128" in source  # inception3a's branch2, collapsed


@needs_graphviz
@needs_dot
@pytest.mark.parametrize("name", ["resnet50", "googlenet"])
def test_svg_renders(name, tmp_path, capsys):
    target = tmp_path / f"{name}.svg"
    assert main(["graph", str(ZOO / f"{name}.cnn"), "-o", str(target)]) == 0
    assert f"wrote {target}" in capsys.readouterr().out
    svg = target.read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and svg.rstrip().endswith("</svg>")
    assert f"<title>cluster_{'layer1' if name == 'resnet50' else 'inception3a'}</title>" in svg
    assert "> 64x112x112<" in svg


@needs_graphviz
@needs_dot
def test_png_and_dot_files(tmp_path, capsys):
    png = tmp_path / "lenet.png"
    assert main(["graph", str(ZOO / "lenet5.cnn"), "-o", str(png)]) == 0
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    dot = tmp_path / "lenet.gv"
    assert main(["graph", str(ZOO / "lenet5.cnn"), "-o", str(dot), "--no-fold"]) == 0
    text = dot.read_text()
    assert text.startswith("digraph lenet5 {") and "stanh1" in text  # not folded
    assert main(["graph", str(ZOO / "lenet5.cnn")]) == 0  # no -o: the dot source on stdout
    out = capsys.readouterr().out
    assert "digraph lenet5 {" in out and "stanh1" not in out


@needs_graphviz
def test_depth_option(tmp_path):
    target = tmp_path / "r.dot"
    assert main(["graph", str(ZOO / "resnet50.cnn"), "-o", str(target), "--depth", "1"]) == 0
    text = target.read_text()
    assert "cluster_" not in text and re.search(r"^\s*layer3 \[", text, re.M) and "layer3.0" not in text
    assert main(["graph", str(ZOO / "resnet50.cnn"), "-o", str(target), "--depth", "all"]) == 0
    assert "layer3.5.conv2" in target.read_text()
    for bad in ("0", "two"):
        with pytest.raises(SystemExit) as info:
            main(["graph", str(ZOO / "resnet50.cnn"), "-o", str(target), "--depth", bad])
        assert info.value.code == 2


@needs_graphviz
@needs_dot
def test_html_page_with_expandable_blocks(tmp_path):
    target = tmp_path / "googlenet.html"
    assert main(["graph", str(ZOO / "googlenet.cnn"), "-o", str(target)]) == 0
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 3  # depth 1, depth 2, every layer
    assert '<button data-level="1"' in page and '<button data-level="all"' in page
    assert "const START = \"2\";" in page  # the automatic depth shown first
    assert 'xlink:href="#depth=2/inception3a"' in page  # a click on a block opens it
    assert '<details data-block="inception3a">' in page and '<details data-block="inception3a.branch2">' in page
    assert "inception3a.branch2.conv2" in page
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)  # self-contained
    assert main(["graph", str(ZOO / "resnet50.cnn"), "-o", str(target), "--depth", "1"]) == 0
    assert 'const START = "1";' in target.read_text(encoding="utf-8")


def test_unknown_extension_is_a_usage_error(tmp_path, capsys):
    assert main(["graph", str(ZOO / "lenet5.cnn"), "-o", str(tmp_path / "net.jpeg")]) == 2
    err = capsys.readouterr().err
    assert "cannot tell the format" in err and ".svg" in err and ".html" in err
    assert not (tmp_path / "net.jpeg").exists()


@needs_graphviz
def test_missing_dot_program_is_reported(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["graph", str(ZOO / "lenet5.cnn"), "-o", str(tmp_path / "net.svg")]) == 1
    assert "Graphviz's `dot` program" in capsys.readouterr().err


def test_compile_errors_exit_1(tmp_path, capsys):
    bad = tmp_path / "bad.cnn"
    bad.write_text("network bad {\n  input 3x8x8\n  cnov 3x3 8\n}\n")
    assert main(["graph", str(bad), "-o", str(tmp_path / "bad.svg")]) == 1
    assert "unknown layer or block `cnov`" in capsys.readouterr().err


def test_help_and_import_stay_light():
    code = (
        "import sys\nimport cnndsl.tools.graph\nimport cnndsl.cli\n"
        "if 'cnndsl.tools.graph' not in cnndsl.cli.TOOL_COMMANDS:\n"
        "    cnndsl.cli.TOOL_COMMANDS.append('cnndsl.tools.graph')\n"
        "try:\n    cnndsl.cli.main(['graph', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert not {'torch', 'graphviz', 'rich'} & set(sys.modules), 'a heavy import'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "--depth" in result.stdout and "--direction" in result.stdout


# ---- editors/: the TextMate grammar -------------------------------------------------------------

EDITORS = ROOT / "editors"


def grammar() -> dict:
    return json.loads((EDITORS / "cnndsl.tmLanguage.json").read_text(encoding="utf-8"))


def scope_of(word: str) -> str | None:
    """The scope the first matching top-level rule gives a whole word (in the grammar's rule order)."""
    g = grammar()
    for include in g["patterns"]:
        rule = g["repository"][include["include"][1:]]
        for r in rule.get("patterns", [rule]):
            m = re.match(r["match"], word)
            if m and m.end() == len(word):
                return r.get("name") or r["captures"]["1"]["name"]
    return None


def test_grammar_is_current_and_valid():
    sys.path.insert(0, str(EDITORS))
    try:
        import make_grammar
    finally:
        sys.path.remove(str(EDITORS))
    current = (EDITORS / "cnndsl.tmLanguage.json").read_text(encoding="utf-8")
    assert current == make_grammar.text(), "editors/cnndsl.tmLanguage.json is stale: run python editors/make_grammar.py"
    g = grammar()
    assert g["scopeName"] == "source.cnndsl" and g["fileTypes"] == ["cnn"]
    for include in g["patterns"]:
        assert include["include"][1:] in g["repository"]
    for rule in g["repository"].values():
        for r in rule.get("patterns", [rule]):
            re.compile(r["match"])
    package = json.loads((EDITORS / "package.json").read_text(encoding="utf-8"))
    (contributed,) = package["contributes"]["grammars"]
    assert contributed["scopeName"] == g["scopeName"] and (EDITORS / contributed["path"]).exists()
    assert package["contributes"]["languages"][0]["extensions"] == [".cnn"]
    json.loads((EDITORS / "language-configuration.json").read_text(encoding="utf-8"))


def test_grammar_lists_every_op_and_construct():
    from cnndsl.elaborate.constructs import CONSTRUCTS

    ops = {name for name, op in REGISTRY.items() if op.user}
    assert {"conv", "fc", "linear", "batchnorm", "maxpool"} <= ops
    for name in ops - set(CONSTRUCTS):
        assert scope_of(name) == "support.function.op.cnndsl", name
    for name in CONSTRUCTS:
        assert scope_of(name) == "keyword.control.construct.cnndsl", name
    for name in ("network", "block", "use", "input", "output"):
        assert scope_of(name) in ("keyword.other.cnndsl", "keyword.other.declaration.cnndsl"), name
    for name in ("if", "else", "as"):
        assert scope_of(name) == "keyword.control.conditional.cnndsl", name
    for name in ("and", "or", "not"):
        assert scope_of(name) == "keyword.operator.logical.cnndsl", name
    for text in ("in", "@in"):
        assert scope_of(text) == "variable.language.in.cnndsl", text
    for op in ("==", "!=", "<=", ">=", "<", ">"):
        assert scope_of(op) == "keyword.operator.comparison.cnndsl", op
    from cnndsl.elaborate.evaluate import BUILTINS

    builtin = grammar()["repository"]["builtin"]
    for name in BUILTINS:
        assert re.match(builtin["match"], f"{name}(1, 2)") and not re.match(builtin["match"], name), name
    expected = {
        "# a comment": "comment.line.number-sign.cnndsl", '"lib/resnet.cnn"': "string.quoted.double.cnndsl",
        "3x3": "constant.numeric.size.cnndsl", "3x224x224": "constant.numeric.size.cnndsl",
        "1e-4": "constant.numeric.cnndsl", "0.75": "constant.numeric.cnndsl", "x3": "keyword.operator.repeat.cnndsl",
        "@a": "variable.other.reference.cnndsl", "->": "keyword.operator.arrow.cnndsl",
        "same": "constant.language.cnndsl", "project": "constant.language.cnndsl",  # (identity: also an op)
        "conv1:": "entity.name.tag.label.cnndsl", "a =": "variable.other.definition.cnndsl",
        "bottleneck": None, "network resnet50": "keyword.other.declaration.cnndsl",
    }
    for text, scope in expected.items():
        assert scope_of(text) == scope, text
    rules = grammar()["repository"]
    assert [m.group(1) for m in re.finditer(rules["argument"]["match"], "conv 3x3 64 /2 pad=1 bias=false")] == ["pad", "bias"]
    assert re.search(rules["call"]["match"], "bottleneck(64, stride=2)").group(1) == "bottleneck"
