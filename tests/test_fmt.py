"""`cnndsl fmt`: the canonical layout, its safety (same AST, same IR) and idempotence, the CLI.

The Hypothesis properties (generated programs, scrambled zoo files) are in test_fmt_properties.py.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import cnndsl
import cnndsl.cli
from cnndsl import CompileError
from cnndsl.ir.graph import to_json
from cnndsl.syntax.parser import parse
from cnndsl.tools import fmt
from cnndsl.tools.fmt import ast_key, format_source

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "zoo"
NETWORKS = sorted(ZOO.glob("*.cnn")) + sorted(ZOO.glob("variants/*.cnn"))
LIBRARIES = sorted((ZOO / "lib").glob("*.cnn"))
ALL = NETWORKS + LIBRARIES
MODULE = "cnndsl.tools.fmt"

# Zoo files whose hand-aligned tables (extra indentation, double spaces between arguments) are
# not in the canonical layout; wrapping the tables in `# fmt: off` / `# fmt: on` makes them so.
NOT_CANONICAL = {"googlenet.cnn", "variants/googlenet_torchvision.cnn"}

PROPERTY = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def rel(path: Path) -> str:
    return path.relative_to(ZOO).as_posix()


def ir(text: str, file: Path | str) -> dict:
    """The IR of a program as plain data, without spans (line and column change in formatting)."""
    data = to_json(cnndsl.compile_source(text, file=str(file)).graph)
    for node in data["nodes"]:
        node.pop("span")
    return data


def same_ast(a: str, b: str) -> bool:
    return ast_key(parse(a)) == ast_key(parse(b))


@pytest.fixture
def cli(monkeypatch):
    if MODULE not in cnndsl.cli.TOOL_COMMANDS:
        monkeypatch.setattr(cnndsl.cli, "TOOL_COMMANDS", [*cnndsl.cli.TOOL_COMMANDS, MODULE])
    return cnndsl.cli.main


# ---- the zoo ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL, ids=rel)
def test_zoo_formats_idempotently_to_the_same_program(path):
    text = path.read_text(encoding="utf-8")
    once = format_source(text, str(path))
    assert format_source(once, str(path)) == once
    assert ast_key(parse(once)) == ast_key(parse(text))
    if path in NETWORKS:
        assert ir(once, path) == ir(text, path)
    if rel(path) not in NOT_CANONICAL:
        assert once == text, f"{rel(path)} is not in the canonical layout"


def test_formatted_zoo_compiles_to_the_same_ir(tmp_path):
    """Format a copy of the whole zoo, libraries included; every network keeps its IR."""
    copy = tmp_path / "zoo"
    shutil.copytree(ZOO, copy)
    for path in copy.rglob("*.cnn"):
        path.write_text(format_source(path.read_text(encoding="utf-8"), str(path)), encoding="utf-8")
    for path in NETWORKS:
        twin = copy / rel(path)
        assert ir(twin.read_text(encoding="utf-8"), twin) == ir(path.read_text(encoding="utf-8"), path), rel(path)


def test_fmt_off_keeps_the_googlenet_tables():
    for name in sorted(NOT_CANONICAL):
        lines = (ZOO / name).read_text(encoding="utf-8").split("\n")
        start = next(i for i, line in enumerate(lines) if "#1x1" in line)
        end = lines.index("", start)
        lines[start:end] = ["  # fmt: off", *lines[start:end], "  # fmt: on"]
        text = "\n".join(lines)
        assert format_source(text) == text, name


# ---- the layout, rule by rule -----------------------------------------------------------------


def check(source: str, expected: str) -> None:
    out = format_source(source)
    assert out == expected, f"\n{out}"
    assert format_source(out) == out
    assert same_ast(source, out)


def test_spacing():
    check(
        "block  f(a,b=2 /3,  c = a*b) {conv 3x3 a/c pad = (0 ,1) bias_init= - 2 -> relu}\n"
        "network n(classes=10){\n"
        "x=input 3x8x8\n"
        "l1 : f(8,c=2)x2->g : conv 1x1 (8 // 2)->bn  eps=1e-5 momentum=0.10\n"
        "y=@x->f 8 /1 c=1\n"
        "add @y  @x scale= 0.5\n"
        "residual{}\n"
        "}\n",
        "block f(a, b = 2 / 3, c = a*b) { conv 3x3 a /c pad=(0, 1) bias_init=-2 -> relu }\n"
        "\n"
        "network n(classes = 10) {\n"
        "  x = input 3x8x8\n"
        "  l1: f(8, c=2) x2 -> g: conv 1x1 (8 // 2) -> bn eps=1e-5 momentum=0.10\n"
        "  y = @x -> f 8 /1 c=1\n"
        "  add @y @x scale=0.5\n"
        "  residual {}\n"
        "}\n",
    )


def test_operators_keep_tight_or_get_spaces():
    check("network n {\n  input 8\n  fc 2*4 -> fc 2 *4 -> fc (16 /2) -> fc 9-1 -> fc  9 - 1\n}\n",
          "network n {\n  input 8\n  fc 2*4 -> fc 2 * 4 -> fc (16 / 2) -> fc 9-1 -> fc 9 - 1\n}\n")


def test_a_name_before_a_tuple_keeps_its_space():
    check("network n(k = 1) {\n  input 3x8x8\n  conv (k, 3) 8 pad=(0,1)\n}\n",
          "network n(k = 1) {\n  input 3x8x8\n  conv (k, 3) 8 pad=(0, 1)\n}\n")


def test_indentation_bodies_and_chains():
    check(
        "network n {\n"
        "      input 3x8x8\n"
        "conv 3x3 8 pad=1 ->\n"
        "bn -> relu ->\n"
        "        # the residual\n"
        "         residual {\n"
        "conv 3x3 8 pad=1\n"
        "   concat {\n"
        " conv 1x1 4\n"
        "      conv 1x1 4 ->\n"
        "relu\n"
        "      }\n"
        "             } shortcut=project ->\n"
        "relu\n"
        "}\n",
        "network n {\n"
        "  input 3x8x8\n"
        "  conv 3x3 8 pad=1 ->\n"
        "    bn -> relu ->\n"
        "    # the residual\n"
        "    residual {\n"
        "      conv 3x3 8 pad=1\n"
        "      concat {\n"
        "        conv 1x1 4\n"
        "        conv 1x1 4 ->\n"
        "          relu\n"
        "      }\n"
        "    } shortcut=project ->\n"
        "    relu\n"
        "}\n",
    )


def test_line_breaks_in_parentheses():
    check(
        "block stage(width, mid = width // 4) { conv 1x1 mid -> conv 1x1 width }\n"
        "network n {\n"
        "  input 3x8x8\n"
        "  stage(\n"
        "64,   # width\n"
        "        mid=8\n"
        "      )\n"
        "  conv 5x5 3 table=((0, 1, 2),\n"
        "  (1, 2, 3),\n"
        "     5)\n"
        "}\n",
        "block stage(width, mid = width // 4) { conv 1x1 mid -> conv 1x1 width }\n"
        "\n"
        "network n {\n"
        "  input 3x8x8\n"
        "  stage(\n"
        "    64,  # width\n"
        "    mid=8\n"
        "  )\n"
        "  conv 5x5 3 table=((0, 1, 2),\n"
        "                    (1, 2, 3),\n"
        "                    5)\n"
        "}\n",
    )


def test_backslashes():
    check(
        "block f(a, \\\n b = 1) {\nrelu\n}\n"
        "network n {\n  input 3x8x8\n  conv 3x3 8\\\n pad=1 -> \\\n relu \\\n -> bn \\\n\n  relu\n}\n",
        "block f(a, \\\n        b = 1) {\n  relu\n}\n"
        "\n"
        "network n {\n  input 3x8x8\n  conv 3x3 8 \\\n    pad=1 ->\n    relu \\\n    -> bn\n\n  relu\n}\n",
    )


def test_comments_stay_in_place():
    check(
        "   # header\n"
        "network n {     # the network\n"
        "  input 3x8x8 # one space before\n"
        "  conv 3x3 8 pad=1                # aligned\n"
        "  relu                            # aligned\n"
        "    # inside\n"
        "  conv 3x3 8 pad=1 ->   # after an arrow\n"
        "     # between\n"
        "   relu\n"
        "        # before the brace\n"
        "}\n"
        "# the end\n",
        "# header\n"
        "network n {     # the network\n"
        "  input 3x8x8  # one space before\n"
        "  conv 3x3 8 pad=1                # aligned\n"
        "  relu                            # aligned\n"
        "  # inside\n"
        "  conv 3x3 8 pad=1 ->   # after an arrow\n"
        "    # between\n"
        "    relu\n"
        "  # before the brace\n"
        "}\n"
        "# the end\n",
    )


def test_blank_lines():
    check(
        "\n\n# a library\n\n\n"
        'use "a.cnn"\nuse "b.cnn"\n'
        "# the first block\n"
        "block f() {\n\n  relu\n\n\n  relu\n\n}\n"
        "block g() { relu }\n\n\n",
        "# a library\n\n"
        'use "a.cnn"\nuse "b.cnn"\n\n'
        "# the first block\n"
        "block f() {\n  relu\n\n  relu\n}\n\n"
        "block g() { relu }\n",
    )


def test_fmt_off_region():
    source = (
        "network n {\n"
        "      input 3x8x8\n"
        "  # fmt: off\n"
        "  conv 3x3   8   pad=1      # kept\n"
        "      relu\n"
        "  # fmt: on\n"
        "      relu\n"
        "}\n"
    )
    check(source, source.replace("      input", "  input").replace("      relu\n}", "  relu\n}"))


def test_line_endings_and_the_last_newline():
    assert format_source("network n {\r\n  input 3\r\n  fc 2}") == "network n {\n  input 3\n  fc 2 }\n"
    assert format_source("") == ""
    assert format_source("\n\n# only a comment   \n\n") == "# only a comment\n"


def test_syntax_errors_are_compile_errors():
    with pytest.raises(CompileError) as err:
        format_source("network n {\n  input 3x8x8\n  conv 1x1 8 ; relu\n}\n", "bad.cnn")
    assert str(err.value).startswith("bad.cnn:3:14: syntax error")


def test_a_changed_meaning_is_refused(monkeypatch):
    monkeypatch.setattr(fmt, "_space", lambda a, b: "")  # glues `conv` to `1x1`
    with pytest.raises(fmt.UnsafeFormat):
        format_source("network n {\n  input 3x8x8\n  conv 1x1 8\n}\n")


# ---- the command line -------------------------------------------------------------------------

MESSY = "network n {\n      input 3x8x8\n  conv 3x3 8 pad = 1->relu\n}\n"
TIDY = "network n {\n  input 3x8x8\n  conv 3x3 8 pad=1 -> relu\n}\n"


def test_cli_rewrites_files(cli, tmp_path, capsys):
    messy, tidy = tmp_path / "messy.cnn", tmp_path / "tidy.cnn"
    messy.write_text(MESSY)
    tidy.write_text(TIDY)
    before = tidy.stat().st_mtime_ns
    assert cli(["fmt", str(messy), str(tidy)]) == 0
    assert messy.read_text() == TIDY and tidy.read_text() == TIDY
    assert tidy.stat().st_mtime_ns == before  # an unchanged file is not written
    assert capsys.readouterr().err == f"reformatted {messy}\n"


def test_cli_check(cli, tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    messy, tidy = tmp_path / "sub" / "messy.cnn", tmp_path / "tidy.cnn"
    messy.write_text(MESSY)
    tidy.write_text(TIDY)
    assert cli(["fmt", "--check", str(tidy)]) == 0
    assert cli(["fmt", "--check", str(tmp_path)]) == 1  # a directory: its .cnn files, recursively
    assert capsys.readouterr().out == f"would reformat {messy}\n"
    assert messy.read_text() == MESSY


def test_cli_diff(cli, tmp_path, capsys):
    messy = tmp_path / "messy.cnn"
    messy.write_text(MESSY)
    assert cli(["fmt", "--diff", str(messy)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"--- {messy}\n+++ {messy} (formatted)\n@@")
    assert "-      input 3x8x8\n" in out and "+  input 3x8x8\n+  conv 3x3 8 pad=1 -> relu\n" in out
    assert messy.read_text() == MESSY
    assert cli(["fmt", "--diff", "--check", str(messy)]) == 1


def test_cli_stdin(cli, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(MESSY))
    assert cli(["fmt", "-"]) == 0
    assert capsys.readouterr().out == TIDY
    monkeypatch.setattr("sys.stdin", io.StringIO(TIDY))
    assert cli(["fmt", "-"]) == 0
    assert capsys.readouterr().out == TIDY
    monkeypatch.setattr("sys.stdin", io.StringIO(MESSY))
    assert cli(["fmt", "--check", "-"]) == 1
    assert capsys.readouterr().out == "would reformat <stdin>\n"


def test_cli_syntax_error_leaves_the_file(cli, tmp_path, monkeypatch, capsys):
    bad, messy = tmp_path / "bad.cnn", tmp_path / "messy.cnn"
    source = "network n {\n  input 3x8x8\n    conv 1x1 8 ; relu\n}\n"
    bad.write_text(source)
    messy.write_text(MESSY)
    assert cli(["fmt", str(bad), str(messy)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3:16: error: syntax error: `;` is not valid here\n 3 |     conv 1x1 8 ; relu\n" in err
    assert err.endswith("1 error\n")
    assert bad.read_text() == source
    assert messy.read_text() == TIDY  # the other files are still formatted
    monkeypatch.setattr("sys.stdin", io.StringIO(source))
    assert cli(["fmt", "-"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "<stdin>:3:16: error: syntax error" in captured.err


def test_cli_missing_file(cli, tmp_path, capsys):
    assert cli(["fmt", str(tmp_path / "nope.cnn")]) == 1
    assert "cnndsl fmt: error: cannot read" in capsys.readouterr().err


def test_cli_help(cli, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(["fmt", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--check" in out and "--diff" in out and "standard input" in out


def test_cli_diff_of_a_file_without_its_last_newline(cli, tmp_path, capsys):
    messy = tmp_path / "messy.cnn"
    messy.write_text(TIDY.rstrip("\n"))
    assert cli(["fmt", "--diff", str(messy)]) == 0
    assert capsys.readouterr().out.endswith("-}\n\\ No newline at end of file\n+}\n")


# ---- the examples of docs/LANGUAGE.md --------------------------------------------------------


def _doc_examples() -> list[tuple[int, str]]:
    from tests.test_docs import DOC, fences

    return [(f.line, f.text) for f in fences(DOC.read_text(encoding="utf-8"))
            if f.lang == "cnn" and "# expect-error" not in f.text]


@pytest.mark.parametrize(("line", "text"), _doc_examples(), ids=lambda v: f"line{v}" if isinstance(v, int) else "")
def test_language_examples_format_idempotently_to_the_same_ir(line, text, monkeypatch):
    """Every construct's documented example: fmt is idempotent on it and keeps its IR."""
    monkeypatch.setenv("CNNDSL_PATH", str(ZOO))
    once = format_source(text, "example.cnn")
    assert format_source(once, "example.cnn") == once
    assert ir(once, ZOO / "example.cnn") == ir(text, ZOO / "example.cnn"), f"docs/LANGUAGE.md:{line}"
