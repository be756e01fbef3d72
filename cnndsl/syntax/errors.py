"""Lark's parse errors, told the way a user thinks about them.

Lark knows which token it met and which terminals it would have accepted; a user wants to
hear "`{` opened at 3:12 is never closed" or "a chain cannot end with `->`" instead.
"""

from __future__ import annotations

import re

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from cnndsl.diagnostics import CompileError, Span

# How terminals are named to a user in "expected …" lists, most helpful first.
_TERMINAL_WORDS = {
    "RBRACE": "`}`",
    "RPAR": "`)`",
    "_NL": "a new line",
    "_ARROW": "`->`",
    "NAME": "a layer or a name",
    "NUMBER": "a number",
    "DIMS": "sizes like 3x3",
    "REF": "a named value like @x",
    "STRING": 'a string like "lib/blocks.cnn"',
    "REPEAT": "a repetition like x3",
    "FUNC": "a call like `name(…)`",
    "COMPARE": "a comparison like `==`",
    "DOT": "`.`",
    "IF": "`if`",
    "ELSE": "`else`",
    "AND": "`and`",
    "OR": "`or`",
    "NOT": "`not`",
    "LBRACE": "`{`",
    "LPAR": "`(`",
    "COMMA": "`,`",
    "EQUAL": "`=`",
    "COLON": "`:`",
    "SLASH": "`/`",
    "PLUS": "`+`",
    "MINUS": "`-`",
    "STAR": "`*`",
    "PERCENT": "`%`",
    "__ANON_0": "`//`",
    "$END": "the end of the file",
}
_ORDER = {name: i for i, name in enumerate(_TERMINAL_WORDS)}
_PAIRS = {"{": "}", "(": ")"}


def describe_expected(expected: set[str] | list[str]) -> str:
    words: list[str] = []
    for term in sorted(expected, key=lambda t: (_ORDER.get(t, len(_ORDER)), t)):
        if term.startswith("__ANON") and term != "__ANON_0":
            continue
        word = _TERMINAL_WORDS.get(term) or (f"`{term.lower()}`" if term.isupper() and len(term) > 1 else term)
        if word not in words:
            words.append(word)
    if not words:
        return "something else"
    if len(words) > 6:
        words = words[:6] + ["…"]
    return ", ".join(words)


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    if token.type == "_NL":
        return "end of line"
    return f"`{token.value.strip()}`"


def _unclosed(text: str, upto: int) -> tuple[str, int, int] | None:
    """The innermost bracket opened before `upto` and not closed: (char, line, col)."""
    stack: list[tuple[str, int, int]] = []
    line, col, i = 1, 1, 0
    while i < min(upto, len(text)):
        ch = text[i]
        if ch == "#":
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        if ch == '"':
            end = text.find('"', i + 1)
            newline = text.find("\n", i + 1)
            if end == -1 or (newline != -1 and newline < end):
                end = newline if newline != -1 else len(text)
            col += end - i
            i = end
        elif ch in _PAIRS:
            stack.append((ch, line, col))
        elif ch in ")}" and stack and _PAIRS[stack[-1][0]] == ch:
            stack.pop()
        if i < len(text) and text[i] == "\n":
            line, col = line + 1, 1
        else:
            col += 1
        i += 1
    return stack[-1] if stack else None


def _offset(text: str, line: int, col: int) -> int:
    lines = text.split("\n")
    return sum(len(s) + 1 for s in lines[: line - 1]) + col - 1


def syntax_error(file: str, exc: UnexpectedInput, text: str) -> CompileError:
    """Turn a Lark exception into a `CompileError` at the offending token."""
    line, col = max(getattr(exc, "line", 1) or 1, 1), max(getattr(exc, "column", 1) or 1, 1)
    if isinstance(exc, (UnexpectedToken, UnexpectedEOF)):
        tok = getattr(exc, "token", None)
        at_end = tok is None or tok.type == "$END"
        if at_end:
            stripped = text.rstrip()
            lines = stripped.split("\n") if stripped else [""]
            line, col = len(lines), len(lines[-1]) + 1
        expected = describe_expected(getattr(exc, "accepts", None) or exc.expected)
        before = text[: len(text) if at_end else _offset(text, line, col)]
        arrow = re.search(r"->(?:\s|#[^\n]*)*$", before)
        if arrow and tok is not None and tok.type in ("RBRACE", "$END", "RPAR"):
            a_line = before.count("\n", 0, arrow.start()) + 1
            a_col = arrow.start() - (before.rfind("\n", 0, arrow.start()) + 1) + 1
            return CompileError("syntax error: a chain cannot end with `->`", Span(file, a_line, a_col, a_line, a_col + 2),
                                hint="put the next layer after the arrow, or remove it")
        opened = _unclosed(text, len(text) if at_end else _offset(text, line, col))
        mismatched = tok is not None and tok.type in ("RBRACE", "RPAR") and opened and _PAIRS[opened[0]] != tok.value
        if opened and (at_end or mismatched):
            ch, o_line, o_col = opened
            where = "the end of the file" if at_end else f"`{tok.value}` at {line}:{col}"
            return CompileError(f"syntax error: `{ch}` opened at {o_line}:{o_col} is not closed before {where}",
                                Span(file, o_line, o_col, o_line, o_col + 1), hint=f"add `{_PAIRS[ch]}`")
        found = _describe_token(tok) if tok is not None else "end of file"
        width = len(tok.value.splitlines()[0]) if tok is not None and tok.type not in ("$END", "_NL") and tok.value else 1
        return CompileError(f"syntax error: unexpected {found}", Span(file, line, col, line, col + max(width, 1)),
                            hint=f"expected {expected}")
    if isinstance(exc, UnexpectedCharacters):
        ch = text[exc.pos_in_stream] if 0 <= exc.pos_in_stream < len(text) else "?"
        return CompileError(f"syntax error: `{ch}` is not valid here", Span(file, line, col, line, col + 1),
                            hint=f"expected {describe_expected(exc.allowed or set())}")
    return CompileError(f"syntax error: {exc}", Span(file, line, col))
