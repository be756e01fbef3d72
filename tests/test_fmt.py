"""`cnndsl fmt`: the canonical layout, its safety (same AST, same IR) and idempotence, the CLI.

Properties (Hypothesis): generated programs written with random spacing, line breaks,
backslashes, blank lines and comments, and zoo files with their whitespace scrambled, format
idempotently and compile to the same IR as before (spans aside); scrambling only the spaces
and indentation of a zoo file changes nothing but the padding before trailing comments.
"""

from __future__ import annotations

import io
import random
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


# ---- generated programs -----------------------------------------------------------------------

WORDY = re.compile(r"[A-Za-z0-9_@\"]")


class Writer:
    """Writes a program (statements of tokens) with random but legal whitespace and comments."""

    COMMENTS = ["# c", "#", "# cnndsl: ignore", "# a -> b { ( , ) } x2", "#  spaced  "]

    def __init__(self, rnd: random.Random) -> None:
        self.r = rnd

    def spaces(self, least: int = 0) -> str:
        return self.r.choice([" ", "  ", "\t", " \t ", "    "]) if least or self.r.random() < 0.7 else ""

    def indent(self) -> str:
        return self.r.choice(["", " ", "  ", "    ", "\t", "         "])

    def newline(self) -> str:
        """A line end: maybe a trailing comment; maybe blank and comment lines; the next indent."""
        out = ""
        if self.r.random() < 0.3:
            out += self.spaces() + self.r.choice(self.COMMENTS)
        out += "\n"
        for _ in range(self.r.choice([0, 0, 0, 1, 2])):
            out += self.indent() + (self.r.choice(self.COMMENTS) if self.r.random() < 0.5 else "") + "\n"
        return out + self.indent()

    def sep(self, a: str, b: str) -> str:
        if a.endswith("(") and len(a) > 1:  # a block call's name and its `(`: always glued
            return ""
        if self.r.random() < 0.06:
            return self.spaces() + "\\\n" + self.indent()
        tight_ok = not (WORDY.search(a[-1]) and (WORDY.match(b[0]) or b == "(")) and not (
            a in ("/", "//") and b in ("/", "//"))
        return "" if tight_ok and self.r.random() < 0.4 else self.spaces(least=1)

    def stmt(self, items: list) -> str:
        out, prev = "", None
        for item in items:
            if item == "->":
                out += ("" if self.r.random() < 0.3 else self.spaces(1)) + "->"
                out += self.newline() if self.r.random() < 0.35 else self.spaces()
                prev = None
            elif item == "NL?":  # a line may break here (inside parentheses)
                if self.r.random() < 0.3:
                    out += self.newline()
                    prev = None
            elif isinstance(item, tuple):  # ("{", [statements])
                out += (self.spaces(1) if prev else "") + self.body(item[1])
                prev = "}"
            else:
                out += (self.sep(prev, item) if prev else "") + item
                prev = item
        return out

    def body(self, stmts: list) -> str:
        if len(stmts) == 1 and self.r.random() < 0.5:
            return "{" + self.spaces() + self.stmt(stmts[0]) + self.spaces() + "}"
        out = "{" + self.newline()
        out += self.newline().join(self.stmt(s) for s in stmts)
        return out + (self.spaces() if self.r.random() < 0.2 else self.newline()) + "}"


def program(r: random.Random) -> list:
    """A random well-formed program: a block and a network over 8-channel 8x8 maps."""
    labels = iter(f"l{i}" for i in range(1000))
    tup = ["(", "NL?", "3", ",", "NL?", "3", "NL?", ")"]

    def layer(depth: int) -> list:
        options = [
            ["conv", "3x3", "8", "pad", "=", "1"],
            ["conv", "1x1", "c"],
            ["conv", "3", "8", "pad", "=", "same", "bias_init", "=", "-", "2"],
            ["conv", *tup, "8", "/", "1", "pad", "=", "(", "1", ",", "1", ")"],
            ["conv", "1x1", "(", "NL?", "16", "//", "2", "NL?", ")"],
            ["conv", "1x1", "c", "*", "1"],
            ["conv", "1x1", "c", "-", "0", "bias", "=", "false"],
            ["relu"], ["sigmoid"], ["bn", "eps", "=", "1e-5"], ["bn", "momentum", "=", "0.10"],
            ["dropout", "0.25"], ["maxpool", "3x3", "/", "1", "pad", "=", "1"],
            ["avgpool", "3x3", "/", "(", "2", "-", "1", ")", "pad", "=", "1", "count_pad", "=", "false"],
            ["blk(", "NL?", "8", "NL?", ")"], ["blk(", "8", ",", "NL?", "k", "=", "1", ")"], ["blk", "8", "k", "=", "1"],
        ]
        if depth < 2:
            options += [
                ["residual", ("{", chains(depth + 1))],
                ["residual", ("{", chains(depth + 1)), "shortcut", "=", "project", "scale", "=", "0.5"],
                ["seq", ("{", chains(depth + 1))],
                ["repeat", "2", ("{", chains(depth + 1))],
                ["concat", ("{", [["conv", "1x1", "4"], ["conv", "1x1", "4", "->", "relu"]])],
            ]
        item = list(r.choice(options))
        if depth == 0 and r.random() < 0.2:  # labels inside a body could repeat (`repeat 2 { a: … }`)
            item = [next(labels), ":", *item]
        if r.random() < 0.15:
            item.append("x2")
        return item

    def chain(depth: int) -> list:
        out = layer(depth)
        for _ in range(r.choice([0, 0, 1, 2])):
            out += ["->", *layer(depth)]
        return out

    def chains(depth: int) -> list:
        return [chain(depth) for _ in range(r.choice([1, 1, 2]))]

    stmts, bound = [["input", "3x8x8"], ["conv", "3x3", "8", "pad", "=", "1"]], []
    for _ in range(r.randint(1, 5)):
        kind = r.random()
        if kind < 0.2 and bound:
            stmt = ["@" + r.choice(bound), "->", *chain(0)]
        elif kind < 0.3 and len(bound) >= 2:
            stmt = ["add", "@" + bound[-1], "@" + bound[-2]]
        else:
            stmt = chain(0)
        if r.random() < 0.4:
            bound.append(f"v{len(bound)}")
            stmt = [bound[-1], "=", *stmt]
        stmts.append(stmt)
    if bound and r.random() < 0.3:
        stmts.append(["output", "@" + bound[0]])
    block = ["block", "blk", "(", "w", ",", "k", "=", "1", ")",
             ("{", [["conv", "(", "k", "*", "3", ",", "3", ")", "w", "pad", "=", "(", "k", ",", "1", ")", "->", "relu"]])]
    network = ["network", "g", "(", "c", "=", "8", ")", ("{", stmts)]
    return [block, network]


def write(prog: list, r: random.Random) -> str:
    w = Writer(r)
    head = "".join(w.newline() for _ in range(r.choice([0, 1])))
    return head + w.newline().join(w.stmt(s) for s in prog) + w.newline()


@PROPERTY
@given(st.randoms(use_true_random=False), st.randoms(use_true_random=False))
def test_generated_programs(shape, spacing):
    prog = program(shape)
    text = write(prog, spacing)
    once = format_source(text, "gen.cnn")
    assert format_source(once, "gen.cnn") == once
    assert ir(once, "gen.cnn") == ir(text, "gen.cnn")


# ---- zoo files with scrambled whitespace ------------------------------------------------------

_WORDS = {"NAME", "FUNC", "NUMBER", "DIMS", "REF", "REPEAT", "STRING", "USE", "BLOCK", "NETWORK", "INPUT", "OUTPUT"}


def scramble(text: str, r: random.Random, lines: bool) -> str:
    """TEXT with its spaces and indentation randomised (and, with LINES, blank lines, backslash
    continuations and tight operators too), tokens unchanged."""
    source = text if text.endswith("\n") else text + "\n"
    toks = fmt._tokens(source)

    def spaces(least: int) -> str:
        return r.choice([" ", "  ", "\t", "   "]) if least or r.random() < 0.6 else ""

    def indent() -> str:
        return r.choice(["", " ", "  ", "   ", "      ", "\t"])

    def segments(value: str, last_is_indent: bool) -> str:
        parts = value.split("\n")
        out = []
        for k, part in enumerate(parts[:-1]):
            comment = part[part.find("#"):] if "#" in part else ""
            out.append((spaces(0) if k == 0 else indent()) + comment)
            if lines and r.random() < 0.2:
                out.append(indent())
        out.append(indent() if last_is_indent else "")
        return "\n".join(out)

    out, prev = [], None
    for tok in toks:
        gap = source[prev.end if prev else 0 : tok.start]
        if "\\" in gap:
            gap = spaces(0) + "\\\n" + indent()
        elif prev is None or prev.type == "_NL":
            gap = indent()
        elif prev.type == "_ARROW" and "\n" in prev.value:
            gap = ""
        elif prev.type == "FUNC":
            gap = ""
        elif tok.type == "_NL":
            gap = ""
        else:
            op = tok.parent in fmt._BINOPS and tok.type != "NAME" or prev.parent in fmt._BINOPS and prev.type != "NAME"
            wordy = prev.type in _WORDS and (tok.type in _WORDS or tok.type == "LPAR")
            slashes = prev.value in ("/", "//") and tok.value in ("/", "//")
            tight_ok = not wordy and not slashes and (lines or not op)
            if op and not lines:
                gap = "" if gap == "" else spaces(1)
            elif lines and tok.type != "_ARROW" and r.random() < 0.05:
                gap = spaces(0) + "\\\n" + indent()
            else:
                gap = spaces(0) if tight_ok else spaces(1)
        out.append(gap)
        if tok.type == "_NL":
            out.append(segments(tok.value, False))
        elif tok.type == "_ARROW":
            out.append("->" + (segments(tok.value[2:], True) if "\n" in tok.value else spaces(0)))
        else:
            out.append(tok.value)
        prev = tok
    return "".join(out)


def without_comment_padding(text: str) -> str:
    return "\n".join(re.sub(r"^(\s*[^#\s][^#]*?)\s+#", r"\1  #", line) for line in text.split("\n"))


# lines under `# fmt: off` are kept as written, scrambled or not: those files are left out here
VERBATIM_FREE = [p for p in ALL if "# fmt: off" not in p.read_text(encoding="utf-8")]


@PROPERTY
@given(st.sampled_from(VERBATIM_FREE), st.randoms(use_true_random=False))
def test_scrambled_spaces_format_back(path, r):
    text = path.read_text(encoding="utf-8")
    scrambled = scramble(text, r, lines=False)
    assert same_ast(scrambled, text)
    once = format_source(scrambled, str(path))
    assert format_source(once, str(path)) == once
    assert without_comment_padding(once) == without_comment_padding(format_source(text, str(path)))


@PROPERTY
@given(st.sampled_from(ALL), st.randoms(use_true_random=False))
def test_scrambled_lines_keep_the_program(path, r):
    text = path.read_text(encoding="utf-8")
    scrambled = scramble(text, r, lines=True)
    assert same_ast(scrambled, text)
    once = format_source(scrambled, str(path))
    assert format_source(once, str(path)) == once
    if path in NETWORKS:
        assert ir(once, path) == ir(text, path)


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
