"""`cnndsl fmt`: rewrite `.cnn` files in one canonical layout.

The formatter works on tokens, not on the AST, so that it keeps every comment: the source is
parsed with the language's own grammar (`cnndsl/syntax/cnn.lark`, every token kept), each token
learns the rule it belongs to (a keyword `=` from a binding `=`, a stride `/` from a division,
a unary `-` from a subtraction), and the tokens are written out again with canonical spacing
and indentation. Comments live inside the grammar's newline (`_NL`) and arrow (`_ARROW`)
tokens and are taken from there. Line breaks are the author's: fmt never joins or wraps lines.

The canonical layout:

- Indentation: 2 spaces per `{ … }` level. A line that continues a statement (after a `->`
  at the end of a line, or after a backslash) is indented one level deeper than the
  statement. Inside parentheses, a line break after a `(` that ends its line gives a hanging
  indent (one level deeper than the line of the `(`); otherwise the continuation lines are
  aligned with the first token after the `(`, as in `block bottleneck(width, …, \\`. A line
  that starts with `}` or `)` is indented like the line that opened it; a body whose `{` is
  on a line inside parentheses (a block header broken in its parameter list) is indented
  from the header's first line.
- Spaces: one between tokens, and one around `->`, around a binding's `=` (`x = conv …`) and
  a parameter default's `=` (`block f(width, stride = 1)`). None in keyword arguments
  (`pad=1`, `basic(64, stride=2)`), after a stride's `/` (`/2`), after a unary minus
  (`bias=-2`), inside parentheses (`(1, 7)`), before `,` and `:` (`a, b`, `layer1: …`), between
  a block call's name and its `(`, or in an empty body `{}`. `x3` is attached with one space.
  Binary operators (`+ - * / // %`) get one space on each side, except that one written
  without any space on either side stays tight (`expansion*width`): inside a layer's
  space-separated arguments the tight form reads as one argument.
- Tokens are written as they are: numbers keep their text (`1e-4`, `0.10`), names their case.
- Comments stay where they are. A full-line comment is indented like the code line it sits
  among (a comment just before a `}` like the body above it). A trailing comment keeps its
  column when it is at least two spaces after the code (so aligned columns of comments stay
  aligned), else it goes two spaces after the code. Comment text is kept, trailing spaces
  dropped.
- Blank lines: the author's, at most one in a row; none at the start or end of the file, right
  after a line that ends with `{` or `(`, or right before a line that starts with `}` or `)`.
  Top-level items (`use`, `block`, `network`) are separated by one blank line (inserted after
  the previous item, so a comment just above an item stays with it); consecutive `use` lines
  may stay together.
- Backslash continuations are kept (` \\` at the end of the line) where they join two lines of
  code; one that only precedes a `->` line break or the end of a statement is dropped.
- Lines end in `\\n` (CRLF becomes LF), without trailing spaces; the file ends with one `\\n`.
- `# fmt: off` … `# fmt: on` (full-line comments) keep the lines between them, both
  included, exactly as written (a hand-aligned table, say); without `# fmt: on` to the end of
  the file.

The result is checked before anything is written: it must parse to the same AST as the input
(spans aside), or fmt refuses (`UnsafeFormat`) and leaves the file alone. Formatting is
idempotent: formatting a formatted file changes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lark import Lark, Tree
from lark.exceptions import UnexpectedInput

from cnndsl.diagnostics import CompileError, Span
from cnndsl.syntax.parser import grammar_text, parse
from cnndsl.syntax.source import MAX_SOURCE_BYTES, read_source
from cnndsl.tools.options import expand_files

INDENT = 2
TAB = 8  # columns of a tab when measuring where a trailing comment starts

_BINOPS = {"add", "sub", "mul", "div", "floordiv", "mod"}
_FMT_SWITCH = re.compile(r"#\s*fmt:\s*(off|on)")


class UnsafeFormat(RuntimeError):
    """The formatted text would not mean what the input means (a bug in fmt: please report it)."""


# ---- tokens ------------------------------------------------------------------------------


@dataclass
class _Tok:
    type: str
    value: str
    parent: str  # the grammar rule (or alias) the token belongs to
    start: int
    end: int
    line: int
    tight: bool = False  # a binary operator written with no space on either side


@lru_cache(maxsize=1)
def _lark():
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        keep_all_tokens=True,
        maybe_placeholders=False,
        start="start",
        cache=True,
    )


def _tokens(text: str) -> list[_Tok]:
    """Every token of TEXT (which parses), in order, with the rule it belongs to."""
    tree = _lark().parse(text)
    out: list[_Tok] = []
    todo: list[tuple[Any, str]] = [(tree, "start")]
    while todo:  # depth first, left to right, without recursion (programs may nest deeply)
        node, parent = todo.pop()
        if isinstance(node, Tree):
            todo.extend((child, node.data) for child in reversed(node.children))
        elif node is not None:
            out.append(_Tok(node.type, str(node), str(parent), node.start_pos, node.end_pos, node.line))
    for i, tok in enumerate(out):
        if tok.parent in _BINOPS and 0 < i < len(out) - 1:
            tok.tight = out[i - 1].end == tok.start and tok.end == out[i + 1].start
    return out


def _space(a: _Tok, b: _Tok) -> str:
    """The space between two tokens written on one line."""
    if a.type in ("LPAR", "DOT") or b.type in ("RPAR", "COMMA", "COLON", "DOT"):
        return ""
    if b.type == "LPAR" and (a.type == "FUNC" or b.parent in ("block_def", "network_def")):
        return ""
    if a.type == "LBRACE" and b.type == "RBRACE":
        return ""
    if (a.type == "EQUAL" and a.parent == "kw_arg") or (b.type == "EQUAL" and b.parent == "kw_arg"):
        return ""
    if (a.type == "SLASH" and a.parent == "stride_arg") or (a.type == "MINUS" and a.parent == "neg"):
        return ""
    if a.tight or b.tight:
        return ""
    return " "


# ---- layout ------------------------------------------------------------------------------


@dataclass
class _Line:
    kind: str  # "code", "comment" or "blank"
    src: int | None = None  # the source line it comes from (None: inserted by fmt)
    indent: int = 0
    text: str = ""  # the code, or the comment of a comment line
    comment: str | None = None  # a trailing comment
    comment_col: int = 0  # the trailing comment's column in the source (0-based)
    backslash: bool = False
    first: str = ""  # the first and last token types of a code line
    last: str = ""
    item: str | None = None  # USE, BLOCK or NETWORK when the line starts a top-level item
    base: int = 0  # the indent of the statement line it continues inside parentheses, else `indent`

    def opens(self) -> bool:
        return self.kind == "code" and self.last in ("LBRACE", "LPAR") and not self.backslash

    def closes(self) -> bool:
        return self.kind == "code" and self.first in ("RBRACE", "RPAR")


@dataclass
class _Frame:
    kind: str  # "{" (a body, or the file) or "("
    open_indent: int  # "{": the base of the line that opened it; "(": that line's indent
    base: int = 0  # "(": the base of the line that opened it
    stmt_indent: int = 0  # "{": the indent of its statements
    started: bool = False  # "{": a statement has begun and not yet ended
    pending: bool = False  # "(": the first token after it, on the same line, sets `visual`
    visual: int | None = None  # "(": the column continuation lines align with


class _Layout:
    """Lays tokens out into lines: indentation, spacing, comments, blank lines."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines: list[_Line] = []
        self.cur: _Line | None = None
        self.prev: _Tok | None = None
        self.stack = [_Frame("{", 0)]

    # -- the current line
    def content_indent(self) -> int:
        top = self.stack[-1]
        if top.kind == "(":
            return top.visual if top.visual is not None else top.open_indent + INDENT
        return top.stmt_indent + (INDENT if top.started else 0)

    def finish(self, backslash: bool = False) -> None:
        if self.cur is not None:
            self.cur.backslash = backslash
            self.lines.append(self.cur)
            self.cur = None
        for frame in self.stack:
            frame.pending = False

    def emit(self, tok: _Tok, value: str | None = None) -> None:
        top = self.stack[-1]
        if self.cur is None:
            indent = top.open_indent if tok.type in ("RBRACE", "RPAR") else self.content_indent()
            self.cur = _Line("code", tok.line, indent, first=tok.type)
            self.cur.base = top.base if top.kind == "(" else indent
            if len(self.stack) == 1 and not top.started:
                self.cur.item = tok.type
        else:
            assert self.prev is not None
            self.cur.text += _space(self.prev, tok)
        if top.kind == "(" and top.pending:
            top.visual, top.pending = self.cur.indent + len(self.cur.text), False
        self.cur.text += tok.value if value is None else value
        self.cur.last = tok.type
        self.prev = tok
        if tok.type == "RBRACE" or tok.type == "RPAR":
            self.stack.pop()
        if self.stack[-1].kind == "{":
            self.stack[-1].started = True
        if tok.type == "LBRACE":
            self.stack.append(_Frame("{", self.cur.base, stmt_indent=self.cur.base + INDENT))
        elif tok.type == "LPAR":
            self.stack.append(_Frame("(", self.cur.indent, self.cur.base, pending=True))

    # -- line breaks, comments and blank lines
    def column(self, offset: int) -> int:
        start = self.text.rfind("\n", 0, offset) + 1
        return len(self.text[start:offset].expandtabs(TAB))

    def full_line(self, segment: str, src: int) -> None:
        segment = segment.strip()
        if segment:
            self.lines.append(_Line("comment", src, self.content_indent(), segment))
        else:
            self.lines.append(_Line("blank", src))

    def newline(self, tok: _Tok, segments: str, offset: int) -> None:
        """A line break whose text (after the last code token) is SEGMENTS, at OFFSET."""
        parts = segments.split("\n")
        if self.cur is not None:
            hash_at = parts[0].find("#")
            if hash_at >= 0:
                self.cur.comment = parts[0][hash_at:].rstrip()
                self.cur.comment_col = self.column(offset + hash_at)
            self.finish()
        else:
            self.full_line(parts[0], tok.line)
        for k, segment in enumerate(parts[1:-1], 1):
            self.full_line(segment, tok.line + k)

    def run(self, tokens: list[_Tok]) -> list[_Line]:
        end = 0
        for tok in tokens:
            if "\\" in self.text[end : tok.start] and self.cur is not None:
                # a backslash joins two lines: keep the break unless a `->` or a newline makes it
                if tok.type == "_NL" or self.cur.last == "_ARROW":
                    self.finish()
                else:
                    self.finish(backslash=True)
            end = tok.end
            if tok.type == "_NL":
                if self.stack[-1].kind == "{":
                    self.stack[-1].started = False
                self.newline(tok, tok.value, tok.start)
            elif tok.type == "_ARROW":
                self.emit(tok, "->")
                if "\n" in tok.value:
                    self.newline(tok, tok.value[2:], tok.start + 2)
            else:
                self.emit(tok)
        self.finish()
        return self.lines


def _tidy(lines: list[_Line]) -> list[_Line]:
    """Blank lines: at most one in a row, none after an opener, before a closer or at the ends;
    one between top-level items."""
    out: list[_Line] = []
    for line in lines:
        if line.kind == "blank":
            if not out or out[-1].kind == "blank" or out[-1].opens():
                continue
        elif line.closes() and out and out[-1].kind == "blank":
            out.pop()
        out.append(line)
    while out and out[-1].kind == "blank":
        out.pop()

    spaced: list[_Line] = []
    last_code, last_item = -1, None
    for line in out:
        if line.kind == "code" and line.item is not None:
            if last_item is not None and not (last_item == "USE" and line.item == "USE"):
                if not any(x.kind == "blank" for x in spaced[last_code + 1 :]):
                    spaced.insert(last_code + 1, _Line("blank"))
            last_item = line.item
        spaced.append(line)
        if line.kind == "code":
            last_code = len(spaced) - 1
    return spaced


def _render(line: _Line) -> str:
    if line.kind == "blank":
        return ""
    code = " " * line.indent + line.text
    if line.backslash:
        code += " \\"
    if line.comment is None:
        return code
    width = len(code.expandtabs(TAB))
    return code + " " * (max(line.comment_col, width + 2) - width) + line.comment


def _verbatim(lines: list[_Line], source_lines: list[str]) -> list[str]:
    """Render LINES, keeping the source of `# fmt: off` … `# fmt: on` regions as it is."""
    regions: list[tuple[int, int]] = []
    off: int | None = None
    for line in lines:
        if line.kind != "comment" or line.src is None:
            continue
        switch = _FMT_SWITCH.fullmatch(line.text)
        if switch and switch.group(1) == "off" and off is None:
            off = line.src
        elif switch and switch.group(1) == "on" and off is not None:
            regions.append((off, line.src))
            off = None
    if off is not None:
        regions.append((off, len(source_lines)))
    out: list[str] = []
    i = 0
    while i < len(lines):
        region = next((r for r in regions if lines[i].src is not None and r[0] <= lines[i].src <= r[1]), None)
        if region is None:
            out.append(_render(lines[i]))
            i += 1
            continue
        last = max(k for k, x in enumerate(lines) if x.src is not None and region[0] <= x.src <= region[1])
        out.extend(s.rstrip("\r") for s in source_lines[region[0] - 1 : region[1]])
        i = last + 1
    return out


def format_source(text: str, file: str = "<string>", check: bool = True) -> str:
    """TEXT in the canonical layout; raise `CompileError` if it does not parse.

    With `check` (the default), the result must parse to the same AST as TEXT, else
    `UnsafeFormat` is raised.
    """
    before = parse(text, file)  # a syntax error is reported as the compiler reports it
    source = text.replace("\r\n", "\n")
    if not source.endswith("\n"):
        source += "\n"
    try:
        tokens = _tokens(source)
    except (UnexpectedInput, RecursionError):
        raise CompileError("the program cannot be formatted: it does not parse", Span(file, 1, 1)) from None
    lines = _tidy(_Layout(source).run(tokens))
    rendered = _verbatim(lines, source.split("\n"))
    result = "\n".join(rendered).rstrip("\n") + "\n" if rendered else ""
    if check:
        try:
            after = parse(result, file)
        except CompileError as err:
            raise UnsafeFormat(f"{file}: the formatted program does not parse: {err}") from None
        if ast_key(after) != ast_key(before):
            raise UnsafeFormat(f"{file}: the formatted program differs from the original")
    return result


def ast_key(node: Any) -> Any:
    """An AST as plain nested tuples, without its spans (for comparing two parses)."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return (type(node).__name__,) + tuple(
            ast_key(getattr(node, f.name)) for f in dataclasses.fields(node) if f.name not in ("span", "name_span")
        )
    if isinstance(node, (list, tuple)):
        return tuple(ast_key(x) for x in node)
    return node


# ---- the command -------------------------------------------------------------------------

EPILOG = """examples:
  cnndsl fmt net.cnn                  rewrite net.cnn in place
  cnndsl fmt --check zoo              exit 1 and list the files (of zoo/, recursively) that would change
  cnndsl fmt --diff net.cnn           print what would change
  cnndsl fmt - < net.cnn              format standard input to standard output
"""


def add_command(subparsers, common) -> None:
    """Add `cnndsl fmt` (it takes none of the compile options that `common` adds)."""
    p = subparsers.add_parser(
        "fmt", help="rewrite .cnn files in the canonical layout",
        description="Rewrite each FILE in the canonical layout: 2-space indentation and canonical spacing,\n"
                    "with the comments, the line breaks and single blank lines kept. Files that would not\n"
                    "change are not written; a file with a syntax error is reported and left alone.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", metavar="FILE", nargs="+",
                   help="a .cnn file, a directory (its .cnn files, recursively), or - for standard input "
                        "(formatted to standard output)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; list the files that would change and exit 1 if there are any")
    p.add_argument("--diff", action="store_true", help="write nothing; print a unified diff of the changes")
    p.set_defaults(run=run)


def _diff(before: str, after: str, label: str) -> str:
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                 label, f"{label} (formatted)")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def run(args: argparse.Namespace) -> int:
    errors = changed = 0
    for name in expand_files(args.files):
        stdin = name == "-"
        label = "<stdin>" if stdin else name
        try:
            text = sys.stdin.read(MAX_SOURCE_BYTES + 1) if stdin else read_source(name)
            if len(text) > MAX_SOURCE_BYTES:
                raise CompileError(f"cannot read <stdin>: more than the source limit of {MAX_SOURCE_BYTES:,} bytes")
        except (CompileError, UnicodeDecodeError) as err:
            print(f"cnndsl fmt: error: {err}", file=sys.stderr)
            errors += 1
            continue
        try:
            result = format_source(text, label)
        except CompileError as err:
            err.sources = {label: text, **err.sources}
            print(err.render(), file=sys.stderr)
            errors += len(err.diagnostics)
            continue
        except UnsafeFormat as err:
            print(f"cnndsl fmt: error: {err}; the file is left alone (a bug in fmt: please report it)",
                  file=sys.stderr)
            errors += 1
            continue
        if result == text:
            if stdin and not (args.check or args.diff):
                sys.stdout.write(result)
            continue
        changed += 1
        if args.diff:
            sys.stdout.write(_diff(text, result, label))
        if args.check:
            print(f"would reformat {label}")
        elif args.diff:
            pass
        elif stdin:
            sys.stdout.write(result)
        else:
            with open(name, "w", encoding="utf-8", newline="\n") as f:
                f.write(result)
            print(f"reformatted {label}", file=sys.stderr)
    if errors:
        print(f"{errors} error{'s' if errors != 1 else ''}", file=sys.stderr)
        return 1
    return 1 if args.check and changed else 0
