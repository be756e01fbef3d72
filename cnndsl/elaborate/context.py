"""Where elaboration stands (`Ctx`), its resource limits (`Limits`), and the error that stops it.

Shared by the elaborator (expand.py) and the construct builders (constructs.py), which
both import it; neither imports the other back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cnndsl.diagnostics import CompileError
from cnndsl.elaborate.scope import Scope
from cnndsl.ir.memory import default_memory_mib
from cnndsl.syntax.source import MAX_SOURCE_BYTES


@dataclass
class Limits:
    """Resource limits that turn pathological programs into errors instead of hangs.

    Each is named in the error it causes and can be raised (`--limit nodes=100000`).
    """

    nodes: int = 20_000  # layers in the elaborated network (ResNet-1202 has 4,208)
    repeat: int = 10_000  # one repetition's count
    depth: int = 100  # nested block calls
    errors: int = 50  # errors reported before giving up
    work: int = 1_000_000  # elaboration steps: statements, calls, repetitions, errors (ResNet-1202: 8,418)
    number: int = 10**12  # the magnitude of any number in a program
    source: int = MAX_SOURCE_BYTES  # bytes in one source file (the entry and each `use`)
    memory: int = field(default_factory=default_memory_mib)  # MiB a backend may allocate (half the RAM)

    def exceeded(self, name: str, what: str) -> str:
        return f"{what} (the `{name}` limit is {getattr(self, name):,}; raise it with --limit {name}=N)"


class Fatal(CompileError):
    """An error after which elaboration stops (a resource limit): nothing after it is trustworthy."""


@dataclass
class Ctx:
    """Where elaboration stands: parameter values, named tensors, names, the block stack."""

    env: dict[str, Any]
    values: dict[str, str]
    scope: Scope
    stack: tuple[str, ...] = ()
    outputs: list[str] | None = None  # only the network level may declare outputs
    inputs: list[str] = field(default_factory=list)

    def nested(self, scope: Scope) -> Ctx:
        return Ctx(self.env, self.values, scope, self.stack, self.outputs, self.inputs)
