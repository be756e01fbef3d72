"""The AST: one dataclass per grammar rule, each carrying the `Span` it came from.

The AST is plain data: it knows nothing about ops, shapes or the IR. Elaboration gives it
meaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cnndsl.diagnostics import Span

# ---- expressions ---------------------------------------------------------------------


@dataclass
class Expr:
    span: Span


@dataclass
class Num(Expr):
    value: int | float


@dataclass
class Dims(Expr):
    """`3x3`, `1x7`, `3x224x224`: a literal tuple of sizes."""

    values: tuple[int, ...]


@dataclass
class Name(Expr):
    id: str


@dataclass
class Ref(Expr):
    """`@x`: a named value (a tensor), used to wire arbitrary DAGs."""

    id: str


@dataclass
class Str(Expr):
    value: str


@dataclass
class TupleExpr(Expr):
    items: list[Expr]


@dataclass
class BinOp(Expr):
    op: str  # one of + - * / // %
    left: Expr
    right: Expr


@dataclass
class Neg(Expr):
    operand: Expr


@dataclass
class Attr(Expr):
    """`in.c`, `@x.h`, `k.w`: a component of a tensor's shape or of a size."""

    value: Expr
    attr: str


@dataclass
class FuncCall(Expr):
    """`max(a, b)`, `make_divisible(v, 8)`: one of the language's built-in functions."""

    func: str
    args: list[Expr]


@dataclass
class Compare(Expr):
    op: str  # one of == != < <= > >=
    left: Expr
    right: Expr


@dataclass
class BoolOp(Expr):
    op: str  # "and" or "or"
    left: Expr
    right: Expr


@dataclass
class Not(Expr):
    operand: Expr


# ---- arguments, items and statements -------------------------------------------------


@dataclass
class Arg:
    """A positional (`name is None`) or keyword argument; `/2` is `stride=2`."""

    name: str | None
    value: Expr
    span: Span


@dataclass
class Call:
    """`conv 3x3 64 /2`, `bottleneck(64) x3`, `residual { … } shortcut=project`.

    Layers, block calls and structural constructs share this form; elaboration decides
    which one a name denotes. `body` is set for constructs with braces.
    """

    name: str
    args: list[Arg]
    span: Span
    name_span: Span
    label: str | None = None
    body: list[Stmt] | None = None
    repeat: int = 1


@dataclass
class Stmt:
    span: Span


@dataclass
class InputStmt(Stmt):
    shape: Expr
    bind: str | None = None


@dataclass
class OutputStmt(Stmt):
    ref: Ref | None = None


@dataclass
class ChainStmt(Stmt):
    """`[x =] [@src ->] item -> item …`"""

    items: list[Call]
    bind: str | None = None
    source: Ref | None = None


@dataclass
class IfStmt(Stmt):
    """`if COND { … } else if COND { … } else { … }`: only the branch taken is elaborated.

    `orelse` is None without `else`; an `else if` is an `orelse` holding one `IfStmt`.
    """

    cond: Expr
    then: list[Stmt]
    orelse: list[Stmt] | None = None


# ---- top level ------------------------------------------------------------------------


@dataclass
class Param:
    name: str
    default: Expr | None
    span: Span


@dataclass
class Use:
    path: str
    span: Span


@dataclass
class BlockDef:
    name: str
    params: list[Param]
    body: list[Stmt]
    span: Span
    file: str = ""


@dataclass
class NetworkDef:
    name: str
    params: list[Param]
    body: list[Stmt]
    span: Span


@dataclass
class Module:
    file: str
    uses: list[Use] = field(default_factory=list)
    blocks: list[BlockDef] = field(default_factory=list)
    networks: list[NetworkDef] = field(default_factory=list)
