"""The parser: every construct of the grammar becomes the right AST, with positions;
bad syntax becomes a CompileError at the offending token."""

from __future__ import annotations

import pytest

from cnndsl.diagnostics import CompileError
from cnndsl.syntax import ast
from cnndsl.syntax.parser import parse, parse_expr


def body_of(text: str) -> list[ast.Stmt]:
    return parse(f"network n {{\n{text}\n}}", "t.cnn").networks[0].body


def test_layer_arguments():
    (stmt,) = body_of("  conv 3x3 64 /2 pad=same groups=2 bias=false")
    (call,) = stmt.items
    assert call.name == "conv"
    assert [a.name for a in call.args] == [None, None, "stride", "pad", "groups", "bias"]
    assert call.args[0].value.values == (3, 3)
    assert call.span.line == 2 and call.span.col == 3
    assert call.args[2].span.col == 15


def test_chain_continues_after_arrow_and_comments():
    (stmt,) = body_of("  conv 1x1 8 ->   # reduce\n\n    bn ->\n    relu")
    assert [c.name for c in stmt.items] == ["conv", "bn", "relu"]


def test_call_form_repeat_label_and_binding():
    stmts = body_of("  layer1: basic(64, stride=2) x3\n  y = @x -> conv (1, 7) 64 pad=(0, 3)")
    call = stmts[0].items[0]
    assert (call.label, call.name, call.repeat) == ("layer1", "basic", 3)
    assert call.args[1].name == "stride"
    second = stmts[1]
    assert second.bind == "y" and second.source.id == "x"
    assert isinstance(second.items[0].args[0].value, ast.TupleExpr)


def test_construct_with_body_and_trailing_arguments():
    (stmt,) = body_of("  residual {\n    conv 3x3 8 pad=1\n    shortcut { conv 1x1 8 }\n  } scale=0.2")
    call = stmt.items[0]
    assert call.name == "residual" and len(call.body) == 2
    assert call.args[0].name == "scale" and call.args[0].value.value == 0.2


def test_division_needs_parentheses_and_stride_is_slash():
    (stmt,) = body_of("  conv 1x1 (c / 2) /2")
    args = stmt.items[0].args
    assert isinstance(args[1].value, ast.BinOp) and args[1].value.op == "/"
    assert args[2].name == "stride"


def test_expression_precedence():
    e = parse_expr("1 + 2 * 3 - -4 // 2")
    assert isinstance(e, ast.BinOp) and e.op == "-"


def test_top_level_items():
    m = parse('use "lib/a.cnn"\n# comment\nblock b(x, y = x * 2) {\n  conv 1x1 y\n}\nnetwork n(k = 3) {\n  input 3x8x8\n  b(4)\n}', "t.cnn")
    assert [u.path for u in m.uses] == ["lib/a.cnn"]
    assert m.blocks[0].params[1].default is not None
    assert m.networks[0].params[0].name == "k"


def test_input_output_statements():
    stmts = body_of("  img = input 3x32x32\n  output\n  output @aux")
    assert isinstance(stmts[0], ast.InputStmt) and stmts[0].bind == "img"
    assert stmts[1].ref is None and stmts[2].ref.id == "aux"


@pytest.mark.parametrize(
    "text, line, col, message",
    [
        ("network n {\n  conv 3x3 64 ->\n}", 2, 15, "a chain cannot end with `->`"),
        ("network n {\n  input 3x8x8\n  conv 3x3 $\n}", 3, 12, "`$` is not valid here"),
        ("network n {\n  input 3x8x8\n", 1, 11, "`{` opened at 1:11 is not closed before the end of the file"),
        ("network n {\n  input 3x8x8\n  conv (1, 7 64\n}", 3, 14, "unexpected `64`"),
        ("network n {\n  input 3x8x8\n  conv (1, 7\n}", 3, 8, "`(` opened at 3:8 is not closed before `}` at 4:1"),
        ("network n {\n  conv 3x3 64 / / 2\n}", 2, 17, "unexpected `/`"),
        ("block (x) {}", 1, 7, "unexpected `(`"),
    ],
)
def test_syntax_errors_point_at_the_token(text, line, col, message):
    with pytest.raises(CompileError) as info:
        parse(text, "bad.cnn")
    err = info.value
    assert (err.file, err.line, err.column) == ("bad.cnn", line, col)
    assert message in err.message
    assert err.hint
