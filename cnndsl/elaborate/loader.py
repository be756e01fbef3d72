"""`use` resolution: gather a program's blocks from its file and the libraries it uses.

A `use "lib/resnet.cnn"` path is resolved relative to the importing file, then along the
search path (`CNNDSL_PATH`, `--path`), then in the zoo that ships with the package. Libraries
are only parsed, never executed; a cycle of `use`s and a block defined twice are errors that
name both places.

`use` is confined, because sources may come from strangers: it reads only `.cnn` files, only
regular ones, and only inside its roots (the entry file's directory tree, the search path,
the packaged zoo), after symlinks are followed; anything else is refused with an error that
names the path and never shows the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from cnndsl.diagnostics import CompileError
from cnndsl.elaborate.constructs import CONSTRUCTS
from cnndsl.ir.registry import REGISTRY
from cnndsl.syntax import ast
from cnndsl.syntax.parser import parse
from cnndsl.syntax.source import BOM, MAX_PATH_CHARS, MAX_SOURCE_BYTES, read_source


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


def packaged_zoo() -> Path:
    """The zoo that ships inside the package (its `lib/` is on every search path)."""
    return Path(str(resources.files("cnndsl").joinpath("zoo")))


def _roots(entry: str, path: list[Path]) -> list[Path]:
    base = Path(entry).parent if entry and not entry.startswith("<") else Path.cwd()
    return [r.resolve() for r in [base, *path, packaged_zoo()]]


def _shown(path: Path) -> str:
    """A directory as messages name it: relative to the working directory when it lies below it."""
    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") else str(path.resolve())


def _resolve(use: ast.Use, importer: str, reading: _Reading) -> Path:
    """The resolved path of a `use` (symlinks followed), inside `reading.roots`, or a CompileError."""
    if len(use.path) > MAX_PATH_CHARS:
        raise CompileError(f"`use`: the path has {len(use.path):,} characters, more than {MAX_PATH_CHARS:,}", use.span)
    if not use.path.endswith(".cnn"):
        raise CompileError(f'`use` imports .cnn libraries only, not "{use.path}"', use.span)
    base = Path(importer).parent if importer and not importer.startswith("<") else Path.cwd()
    refused = None
    for root in [base, *reading.dirs, packaged_zoo()]:
        try:
            candidate = (root / use.path).resolve()
            if not any(candidate.is_relative_to(r) for r in reading.roots):
                refused = refused or candidate
            elif candidate.exists():
                return candidate
        except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte, a name too long
            continue
    allowed = ", ".join(_shown(r) for r in [base, *reading.dirs, packaged_zoo()])
    if refused is not None:
        raise CompileError(f'`use "{use.path}"` leads outside the directories a program may read', use.span,
                           hint=f"a library must lie under {allowed} (symlinks followed); add its directory "
                                "with --path or CNNDSL_PATH")
    raise CompileError(f'cannot find "{use.path}" for `use`', use.span, hint=f"looked in: {allowed}; set CNNDSL_PATH or --path")


def load_program(text: str, file: str, path: list[str] | None = None, source_limit: int = MAX_SOURCE_BYTES) -> Program:
    """Parse `text` and every library it `use`s (transitively), each at most `source_limit` bytes."""
    text = text.removeprefix(BOM)
    module = parse(text, file)
    program = Program(module, sources={file: text})
    dirs = search_path(path)
    _add_blocks(program, module)
    reading = _Reading(dirs, _roots(file, dirs), source_limit)
    try:
        _load_uses(program, module, reading, chain=[str(Path(file).resolve()) if not file.startswith("<") else file],
                   seen=set())
    except CompileError as err:  # a library's error shows the library's lines
        err.sources = {**program.sources, **err.sources}
        raise
    return program


@dataclass
class _Reading:
    dirs: list[Path]  # the search path
    roots: list[Path]  # where `use` may read (resolved)
    limit: int  # bytes per source


def _add_blocks(program: Program, module: ast.Module) -> None:
    for block in module.blocks:
        if block.name in CONSTRUCTS or (block.name in REGISTRY and REGISTRY[block.name].user):
            what = "construct" if block.name in CONSTRUCTS else "layer"
            raise CompileError(f"block `{block.name}` has the name of the {what} `{block.name}`", block.span,
                               hint=f"a call `{block.name} …` means the {what}; give the block another name")
        previous = program.blocks.get(block.name)
        if previous is not None:
            raise CompileError(
                f"block `{block.name}` is defined twice",
                block.span,
                notes=[f"the first definition is at {previous.span}"],
            )
        program.blocks[block.name] = block


def _load_uses(program: Program, module: ast.Module, reading: _Reading, chain: list[str], seen: set[str]) -> None:
    for use in module.uses:
        target = _resolve(use, module.file, reading)
        key = str(target)
        if key in chain:
            cycle = " -> ".join(Path(c).name for c in chain[chain.index(key):] + [key])
            raise CompileError(f"`use` cycle: {cycle}", use.span)
        if key in seen:
            continue
        seen.add(key)
        text = read_source(target, use.span, reading.limit, what="for `use`")
        shown = _shown(target) if not os.path.isabs(use.path) else str(target)
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
        _load_uses(program, lib, reading, chain + [key], seen)
