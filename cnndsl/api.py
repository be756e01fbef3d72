"""The one path every command takes: source → parse → elaborate (shapes checked) → `Network`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx

from cnndsl.diagnostics import CompileError, Diagnostic, UsageError, is_silenced, missing_dependency
from cnndsl.elaborate.context import Limits
from cnndsl.elaborate.expand import elaborate
from cnndsl.elaborate.loader import Program, load_program
from cnndsl.ir import graph as ir_graph
from cnndsl.ir.lint import lint
from cnndsl.ir.memory import check_memory
from cnndsl.ir.summary import Summary, summarize
from cnndsl.syntax.source import read_entry

if TYPE_CHECKING:  # the torch backend is imported only when a module is asked for
    import torch


@dataclass
class Network:
    """A checked network: the IR graph plus the sources it came from."""

    graph: nx.MultiDiGraph
    sources: dict[str, str] = field(default_factory=dict)
    warnings: list[Diagnostic] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)  # `memory` bounds what the backends may allocate

    @property
    def name(self) -> str:
        return self.graph.graph["name"]

    def summary(self) -> Summary:
        """Per-layer shapes, parameters and MACs, with totals."""
        return summarize(self.graph)

    def check_memory(self, what: str, batch: int = 0, training: bool = False) -> None:
        """Raise a `CompileError` at the layer where `what` would pass the `memory` limit: the
        parameters, plus the activations of `batch` examples (and training's extra copies)."""
        check_memory(self.graph, self.limits.memory, what, batch, training)

    def to_torch(self) -> torch.nn.Module:
        """A trainable `torch.fx.GraphModule` whose submodules carry the `.cnn` names."""
        try:
            from cnndsl.backends.torch.lower import to_torch  # imports torch, which `import cnndsl` must not
        except ImportError as err:
            raise missing_dependency(err, "the torch backend") or err from None

        self.check_memory("building the torch module")
        return to_torch(self.graph)

    def to_triton(self, weights: Any = None, device: str = "cuda", dtype: Any = None, cuda_graph: bool = False) -> Any:
        """The optimised network on the Triton kernels (`cnndsl.backends.triton.launcher.TritonNetwork`).

        weights: a `to_torch()` module's `state_dict()` (a fresh module's when None); dtype:
        torch.float16 when None; device "cpu" works under Triton's interpreter (TRITON_INTERPRET=1)."""
        # imported here, as in to_torch: both backends import torch, which `import cnndsl` must not
        try:
            from cnndsl.backends.torch.lower import to_torch
            from cnndsl.backends.triton.launcher import to_triton
        except ImportError as err:
            raise missing_dependency(err, "the Triton backend") or err from None

        self.check_memory("building the Triton network", batch=1)
        if weights is None:
            weights = to_torch(self.graph).state_dict()
        return to_triton(self.graph, weights, device=device, dtype=dtype, cuda_graph=cuda_graph)

    def to_json(self) -> dict[str, Any]:
        return ir_graph.to_json(self.graph)


def parse_overrides(items: dict[str, Any] | list[str] | None) -> dict[str, str]:
    """`{"classes": 10}` or `["classes=10"]` → `{"classes": "10"}` (values parsed later as expressions)."""
    if not items:
        return {}
    if isinstance(items, dict):
        return {k: v if isinstance(v, str) else repr(v) for k, v in items.items()}
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_]\w*", key.strip()) or not value.strip():
            raise UsageError(f"--set {item[:60]!r}: expected NAME=VALUE, e.g. --set classes=10")
        out[key.strip()] = value.strip()
    return out


def parse_limits(items: list[str] | None) -> Limits:
    """`["nodes=100000"]` → `Limits(nodes=100000)`."""
    limits = Limits()
    names = [f.name for f in fields(Limits)]
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in names or not value.strip().isdigit() or len(value.strip()) > 18:
            raise UsageError(f"--limit {item[:60]!r}: expected NAME=N with NAME one of {', '.join(names)} "
                               "and N a whole number below 10^18")
        setattr(limits, key.strip(), int(value))
    return limits


def parse_input_shape(spec: str | tuple[int, ...] | list[int] | None) -> tuple[int, ...] | None:
    """`"3x32x32"` (or a tuple) → `(3, 32, 32)`."""
    if spec is None:
        return None
    if isinstance(spec, (tuple, list)):
        dims = tuple(spec)
    else:
        if not re.fullmatch(r"\s*\d{1,12}(\s*x\s*\d{1,12})*\s*", spec):
            raise UsageError(f"--input {spec[:60]!r}: expected sizes like 3x224x224 (or C for a flat input), "
                               "each below 10^12")
        dims = tuple(int(d) for d in spec.split("x"))
    if len(dims) not in (1, 3) or not all(isinstance(d, int) and d > 0 for d in dims):
        raise UsageError(f"--input {spec!r}: expected C or CxHxW positive sizes")
    return dims


def compile_source(
    text: str,
    file: str = "<string>",
    set: dict[str, Any] | list[str] | None = None,  # noqa: A002 - the public name the CLI mirrors
    input: str | tuple[int, ...] | None = None,  # noqa: A002
    search: list[str] | None = None,
    limits: Limits | None = None,
) -> Network:
    """Compile `.cnn` source text into a checked `Network`; raise `CompileError` on a mistake.

    search: directories `use` looks in (as `compile_file`'s and the CLI's --path)."""
    sources = {file: text}
    source_limit = (limits or Limits()).source
    try:
        if len(text) > source_limit:
            raise CompileError(f"{file}: the source has {len(text):,} characters, more than the source limit of "
                               f"{source_limit:,}", hint="raise it with --limit source=N")
        program = load_program(text, file, search, source_limit)
        sources = program.sources
        overrides, shape = parse_overrides(set), parse_input_shape(input)
        try:
            graph = elaborate(program, overrides, shape, limits)
        except CompileError as err:
            if not isinstance(err, UsageError):  # a well-formed option the program then rejects
                given = [f"--set {k}={v}" for k, v in overrides.items()] + ([f"--input {input}"] if shape else [])
                for diag in err.diagnostics if given else []:
                    diag.notes.append(f"with {' '.join(given)} (given on the command line)")
            raise
    except CompileError as err:
        err.sources = {**sources, **err.sources}
        raise
    warnings = [w for w in lint(graph) if not is_silenced(w, program.sources)]
    return Network(graph, program.sources, warnings, limits or Limits())


def load_library(path: str | Path, search: list[str] | None = None, limits: Limits | None = None) -> Program:
    """Parse a file and every library it `use`s without building a network (`check` on a library)."""
    source_limit = (limits or Limits()).source
    text = read_entry(path, limit=source_limit)
    try:
        return load_program(text, str(path), search, source_limit)
    except CompileError as err:
        err.sources = {str(path): text, **err.sources}
        raise


def compile_file(
    path: str | Path,
    set: dict[str, Any] | list[str] | None = None,  # noqa: A002
    input: str | tuple[int, ...] | None = None,  # noqa: A002
    search: list[str] | None = None,
    limits: Limits | None = None,
) -> Network:
    """Compile a `.cnn` file (its `use`s resolved relative to it)."""
    text = read_entry(path, limit=(limits or Limits()).source)
    return compile_source(text, str(path), set=set, input=input, search=search, limits=limits)
