"""Parse `.cnn` text into the AST (`cnndsl.syntax.ast`), or raise a `CompileError`.

The grammar ships inside the package (`cnndsl/syntax/cnn.lark`, read with `importlib.resources`,
so an installed wheel needs no checkout); Lark builds an LALR(1) parser once per process
(and caches its tables on disk), so parsing a zoo file costs milliseconds.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from importlib import resources

from lark import Lark, Transformer, v_args
from lark.exceptions import UnexpectedInput, VisitError

from cnndsl.diagnostics import CompileError, Diagnostic, Span
from cnndsl.syntax import ast
from cnndsl.syntax.errors import syntax_error


def grammar_text() -> str:
    """The language's Lark grammar (package data)."""
    return resources.files("cnndsl.syntax").joinpath("cnn.lark").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        start=["start", "expr"],
        cache=True,
    )


MAX_DIGITS = 30  # a literal's digits: far beyond any limit, far below Python's int-string limit
MAX_NESTING = 200  # brackets open at once; a construct nested deeper is an error where it opens


def _number(text: str, span: Span) -> int | float:
    if len(text.lstrip("0")) > MAX_DIGITS:
        raise CompileError(f"this number has {len(text):,} characters, more than the {MAX_DIGITS} a literal may have",
                           span)
    if not any(c in text for c in ".eE"):
        return int(text)
    value = float(text)
    if value.is_integer() and not Decimal(text) == int(value):  # 1.9999999999999999 reads as 2.0
        raise CompileError(f"the literal {text} is not a whole number, but reads as {value:g} in floating point",
                           span, hint="write the number you mean, with fewer digits")
    return value


class _ToAst(Transformer):
    """Builds AST dataclasses; every node gets a `Span` from Lark's positions."""

    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file

    def _span(self, meta_or_tok) -> Span:
        m = meta_or_tok
        return Span(self.file, m.line, m.column, getattr(m, "end_line", None), getattr(m, "end_column", None))

    # ---- expressions
    def number(self, items):
        (tok,) = items
        return ast.Num(self._span(tok), _number(tok.value, self._span(tok)))

    def dims(self, items):
        (tok,) = items
        return ast.Dims(self._span(tok), tuple(int(_number(v, self._span(tok))) for v in tok.value.split("x")))

    def name(self, items):
        (tok,) = items
        return ast.Name(self._span(tok), tok.value)

    def ref(self, items):
        (tok,) = items
        return ast.Ref(self._span(tok), tok.value[1:])

    def string(self, items):
        (tok,) = items
        return ast.Str(self._span(tok), tok.value[1:-1])

    @v_args(meta=True)
    def tuple(self, meta, items):
        return ast.TupleExpr(self._span(meta), [i for i in items if i is not None])

    def _binop(op):  # noqa: N805 - a factory used in the class body
        @v_args(meta=True)
        def build(self, meta, items):
            left, right = items
            return ast.BinOp(self._span(meta), op, left, right)

        return build

    add = _binop("+")
    sub = _binop("-")
    mul = _binop("*")
    div = _binop("/")
    floordiv = _binop("//")
    mod = _binop("%")

    @v_args(meta=True)
    def neg(self, meta, items):
        return ast.Neg(self._span(meta), items[0])

    @v_args(meta=True)
    def not_(self, meta, items):
        return ast.Not(self._span(meta), items[0])

    @v_args(meta=True)
    def and_(self, meta, items):
        return ast.BoolOp(self._span(meta), "and", items[0], items[1])

    @v_args(meta=True)
    def or_(self, meta, items):
        return ast.BoolOp(self._span(meta), "or", items[0], items[1])

    @v_args(meta=True)
    def compare(self, meta, items):
        left, op, right = items
        return ast.Compare(self._span(meta), op.value, left, right)

    @v_args(meta=True)
    def attr(self, meta, items):
        value, name_tok = items
        return ast.Attr(self._span(meta), value, name_tok.value)

    @v_args(meta=True)
    def fcall(self, meta, items):
        name_tok, *args = items
        return ast.FuncCall(self._span(meta), name_tok.value, [a for a in args if a is not None])

    # ---- arguments
    @v_args(meta=True)
    def pos_arg(self, meta, items):
        return ast.Arg(None, items[0], self._span(meta))

    @v_args(meta=True)
    def kw_arg(self, meta, items):
        key, value = items
        return ast.Arg(key.value, value, self._span(meta))

    @v_args(meta=True)
    def stride_arg(self, meta, items):
        return ast.Arg("stride", items[0], self._span(meta))

    def cargs(self, items):
        return list(items)

    # ---- calls and statements
    def _call(self, meta, name_tok, args, body, tail, repeat) -> ast.Call:
        if name_tok.value == "else":  # a newline ended the `if`: caught here, so in blocks nobody calls too
            raise CompileError("`else` must follow the `}` of an `if`, on the same line", self._span(name_tok),
                               hint="write `} else {` (or `} else if COND {`)")
        return ast.Call(
            name=name_tok.value,
            args=list(args) + list(tail),
            span=self._span(meta),
            name_span=self._span(name_tok),
            body=body,
            repeat=int(_number(repeat.value[1:], self._span(repeat))) if repeat is not None else 1,
        )

    def body_tail(self, items):
        return items[0], list(items[1:])

    @v_args(meta=True)
    def layer_call(self, meta, items):
        name_tok, *args, tail, repeat = items
        body, trailing = tail if tail is not None else (None, [])
        return self._call(meta, name_tok, args, body, trailing, repeat)

    @v_args(meta=True)
    def func_call(self, meta, items):
        name_tok, cargs, tail, repeat = items
        body, trailing = tail if tail is not None else (None, [])
        return self._call(meta, name_tok, cargs or [], body, trailing, repeat)

    @v_args(meta=True)
    def item(self, meta, items):
        label, call = items
        if label is not None:
            call.label = label.value
            call.span = self._span(meta)
        return call

    def body(self, items):
        return [s for s in items if s is not None]

    @v_args(meta=True)
    def input_stmt(self, meta, items):
        bind, shape = items
        return ast.InputStmt(self._span(meta), shape, bind.value if bind is not None else None)

    @v_args(meta=True)
    def output_stmt(self, meta, items):
        (ref_tok,) = items
        ref = ast.Ref(self._span(ref_tok), ref_tok.value[1:]) if ref_tok is not None else None
        return ast.OutputStmt(self._span(meta), ref)

    @v_args(meta=True)
    def chain_stmt(self, meta, items):
        bind, source, *calls = items
        src = ast.Ref(self._span(source), source.value[1:]) if source is not None else None
        return ast.ChainStmt(self._span(meta), list(calls), bind.value if bind is not None else None, src)

    @v_args(meta=True)
    def if_stmt(self, meta, items):
        cond, then, orelse = items
        if isinstance(orelse, ast.IfStmt):
            orelse = [orelse]
        return ast.IfStmt(self._span(meta), cond, then, orelse)

    # ---- top level
    @v_args(meta=True)
    def param(self, meta, items):
        name_tok, default = items
        return ast.Param(name_tok.value, default, self._span(meta))

    def params(self, items):
        params = [p for p in items if p is not None]
        for p in params:
            first = next(q for q in params if q.name == p.name)
            if first is not p:
                raise CompileError(f"parameter `{p.name}` is declared twice", p.span,
                                   notes=[f"the first declaration is at {first.span}"])
        return params

    @v_args(meta=True)
    def use(self, meta, items):
        return ast.Use(items[0].value[1:-1], self._span(meta))

    @v_args(meta=True)
    def block_def(self, meta, items):
        name_tok, params, body = items
        return ast.BlockDef(name_tok.value, params or [], body, self._span(meta), self.file)

    @v_args(meta=True)
    def network_def(self, meta, items):
        name_tok, params, body = items
        return ast.NetworkDef(name_tok.value, params or [], body, self._span(meta))

    def start(self, items):
        module = ast.Module(self.file)
        for it in items:
            if isinstance(it, ast.Use):
                module.uses.append(it)
            elif isinstance(it, ast.BlockDef):
                module.blocks.append(it)
            elif isinstance(it, ast.NetworkDef):
                module.networks.append(it)
        return module


MAX_SYNTAX_ERRORS = 20


def parse(text: str, file: str = "<string>") -> ast.Module:
    """Parse a whole `.cnn` source into an `ast.Module`; raise `CompileError` on bad syntax.

    After a syntax error the parser recovers by blanking the rest of the offending line
    (brackets kept, so nesting survives) and parsing again, so one run reports the
    independent mistakes of a file, each at its own place.
    """
    source = text if text.endswith("\n") else text + "\n"
    _check_nesting(source, file)
    errors: list[Diagnostic] = []
    attempt = source
    while True:
        try:
            tree = _lark().parse(attempt, start="start")
            break
        except UnexpectedInput as exc:
            err = syntax_error(file, exc, attempt)
            errors.extend(err.diagnostics)
            attempt, progressed = _blank_rest_of_line(attempt, exc)
            if not progressed or len(errors) >= MAX_SYNTAX_ERRORS:
                raise CompileError(errors) from None
        except RecursionError:
            raise CompileError("the program nests too deeply to parse", Span(file, 1, 1)) from None
    if errors:
        raise CompileError(errors)
    try:
        return _ToAst(file).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, CompileError):
            raise exc.orig_exc from None
        if isinstance(exc.orig_exc, RecursionError):
            raise CompileError("the program nests too deeply to parse", Span(file, 1, 1)) from None
        raise
    except RecursionError:
        raise CompileError("the program nests too deeply to parse", Span(file, 1, 1)) from None


def _check_nesting(text: str, file: str) -> None:
    """Refuse brackets nested deeper than MAX_NESTING where the one too many opens, before the
    parser (whose tree would be as deep) sees them. Comments and strings are skipped."""
    depth, line, col, i = 0, 1, 1, 0
    closing = {"(": ")", "[": "]", "{": "}"}
    n = len(text)
    while i < n:
        c = text[i]
        if c == "#" or c == '"':
            end = text.find("\n" if c == "#" else '"', i + 1)
            end = n if end < 0 else end
            skipped = text[i:end]
            if "\n" in skipped:
                line += skipped.count("\n")
                col = len(skipped) - skipped.rindex("\n")
            else:
                col += len(skipped)
            i = end
            continue
        if c in closing:
            depth += 1
            if depth > MAX_NESTING:
                raise CompileError(f"brackets nest more than {MAX_NESTING} deep here", Span(file, line, col, line, col + 1),
                                   hint="flatten the program: `repeat N { … }` or `xN` repeats without nesting")
        elif c in ")]}":
            depth = max(0, depth - 1)
        if c == "\n":
            line, col = line + 1, 1
        else:
            col += 1
        i += 1


def _blank_rest_of_line(text: str, exc: UnexpectedInput) -> tuple[str, bool]:
    """Blank from the error to the end of its line, keeping brackets; (new text, changed?)."""
    token = getattr(exc, "token", None)
    if token is not None and token.type in ("$END", "RBRACE", "RPAR", "LBRACE", "LPAR"):
        return text, False
    pos = getattr(exc, "pos_in_stream", None)
    if pos is None or not 0 <= pos < len(text):
        return text, False
    if token is None:  # a bad character: blank just that one
        return text[:pos] + " " + text[pos + 1 :], text[pos] not in "\n"
    end = text.find("\n", pos)
    end = len(text) if end == -1 else end
    blanked = "".join(c if c in "{}()" else " " for c in text[pos:end])
    return text[:pos] + blanked + text[end:], blanked != text[pos:end]


def parse_expr(text: str, file: str = "<command line>") -> ast.Expr:
    """Parse one full expression (for `--set name=value`)."""
    _check_nesting(text, file)
    try:
        tree = _lark().parse(text, start="expr")
    except UnexpectedInput as exc:
        raise syntax_error(file, exc, text) from None
    try:
        return _ToAst(file).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, CompileError):
            raise exc.orig_exc from None
        raise
