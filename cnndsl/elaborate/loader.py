"""`use` resolution: gather a program's blocks from its file and the libraries it uses.

A `use "lib/resnet.cnn"` path is resolved relative to the importing file, then along the
search path (`CNNDSL_PATH`, `--path`). Libraries are only parsed, never executed; a cycle
of `use`s and a block defined twice are errors that name both places.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cnndsl.diagnostics import CompileError
from cnndsl.syntax import ast
from cnndsl.syntax.parser import parse


@dataclass
class Program:
    """The entry module plus every block visible to it, and the source text of each file."""

    module: ast.Module
    blocks: dict[str, ast.BlockDef] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)


def search_path(extra: list[str] | None = None) -> list[Path]:
    paths = [Path(p) for p in (extra or [])]
    env = os.environ.get("CNNDSL_PATH", "")
    paths += [Path(p) for p in env.split(os.pathsep) if p]
    return paths


def _resolve(use: ast.Use, importer: str, path: list[Path]) -> Path:
    base = Path(importer).parent if importer and not importer.startswith("<") else Path.cwd()
    for root in [base, *path]:
        candidate = root / use.path
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(p) for p in [base, *path])
    raise CompileError(f'cannot find "{use.path}" for `use`', use.span, hint=f"looked in: {looked}; set CNNDSL_PATH or --path")


def load_program(text: str, file: str, path: list[str] | None = None) -> Program:
    """Parse `text` and every library it `use`s (transitively)."""
    module = parse(text, file)
    program = Program(module, sources={file: text})
    dirs = search_path(path)
    _add_blocks(program, module)
    _load_uses(program, module, dirs, chain=[str(Path(file).resolve()) if not file.startswith("<") else file], seen=set())
    return program


def _add_blocks(program: Program, module: ast.Module) -> None:
    for block in module.blocks:
        previous = program.blocks.get(block.name)
        if previous is not None:
            raise CompileError(
                f"block `{block.name}` is defined twice",
                block.span,
                notes=[f"the first definition is at {previous.span}"],
            )
        program.blocks[block.name] = block


def _load_uses(program: Program, module: ast.Module, dirs: list[Path], chain: list[str], seen: set[str]) -> None:
    for use in module.uses:
        target = _resolve(use, module.file, dirs)
        key = str(target.resolve())
        if key in chain:
            cycle = " -> ".join(Path(c).name for c in chain[chain.index(key):] + [key])
            raise CompileError(f"`use` cycle: {cycle}", use.span)
        if key in seen:
            continue
        seen.add(key)
        try:
            text = target.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise CompileError(f'cannot read "{use.path}": {err}', use.span) from None
        shown = os.path.relpath(target) if not os.path.isabs(use.path) else str(target)
        program.sources[shown] = text
        try:
            lib = parse(text, shown)
        except CompileError as err:
            err.diagnostics[0].notes.append(f"in the library used at {use.span}")
            raise
        if lib.networks:
            raise CompileError(
                f'"{use.path}" defines a network; `use` imports libraries of blocks only',
                use.span,
            )
        _add_blocks(program, lib)
        _load_uses(program, lib, dirs, chain + [key], seen)
