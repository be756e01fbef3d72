"""`cnndsl fmt` properties (Hypothesis, and every zoo file under fixed seeds): generated programs written with random spacing, line
breaks, backslashes, blank lines and comments, and zoo files with their whitespace scrambled,
format idempotently and compile to the same IR as before (spans aside); scrambling only the
spaces and indentation of a zoo file changes nothing but the padding before trailing comments.
"""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnndsl.tools import fmt
from cnndsl.tools.fmt import format_source
from tests.test_fmt import ALL, NETWORKS, PROPERTY, ir, rel, same_ast

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

_WORDS = {"NAME", "FUNC", "NUMBER", "DIMS", "REF", "REPEAT", "STRING", "USE", "BLOCK", "NETWORK", "INPUT", "OUTPUT",
          "IF", "ELSE", "AND", "OR", "NOT"}


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


# Every zoo file, not just those Hypothesis happens to sample: three fixed seeds each way.
@pytest.mark.parametrize("path", ALL, ids=rel)
def test_every_zoo_file_survives_scrambling(path):
    text = path.read_text(encoding="utf-8")
    canonical = format_source(text, str(path))
    for seed in range(3):
        for lines in (False, True):
            if not lines and path not in VERBATIM_FREE:
                continue
            scrambled = scramble(text, random.Random(seed), lines)
            assert same_ast(scrambled, text), (seed, lines)
            once = format_source(scrambled, str(path))
            assert format_source(once, str(path)) == once, (seed, lines)
            if not lines:
                assert without_comment_padding(once) == without_comment_padding(canonical), seed
    if path in NETWORKS:
        once = format_source(scramble(text, random.Random(0), True), str(path))
        assert ir(once, path) == ir(text, path)
