"""Reading a `.cnn` source from disk, safely: only regular files, with a size cap, as UTF-8.

Sources may come from strangers (a model-sharing site, a CI linter, an editor's language
server). A device (`/dev/zero`), a FIFO or a directory is refused before it is opened, so
nothing blocks or reads without end; a file over the cap is refused from its size before a
byte is read, and the read itself stops at the cap (a file that grows meanwhile). The error
names the path and never shows what the file holds.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cnndsl.diagnostics import CompileError, Span

MAX_SOURCE_BYTES = 4 * 2**20  # the zoo's largest file is about 6 KB
MAX_PATH_CHARS = 1024
BOM = "\ufeff"


def read_source(path: str | Path, span: Span | None = None, limit: int = MAX_SOURCE_BYTES,
                what: str = "") -> str:
    """The text of the regular file at `path` (a leading UTF-8 BOM dropped), or a `CompileError`
    at `span` that names the path: `what` says which path it is (e.g. 'for `use`')."""
    shown = str(path)
    where = f"{shown}{' ' + what if what else ''}"
    if len(shown) > MAX_PATH_CHARS:
        raise CompileError(f"the path is too long ({len(shown):,} characters; at most {MAX_PATH_CHARS:,})", span)
    try:
        info = os.stat(path)
    except (OSError, ValueError) as err:
        raise CompileError(f"cannot read {where}: {_reason(err)}", span) from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file (a device, FIFO or socket)"
        raise CompileError(f"cannot read {where}: it is {kind}", span)
    if info.st_size > limit:
        raise CompileError(f"cannot read {where}: it has {info.st_size:,} bytes, more than the source limit "
                           f"of {limit:,}", span, hint="raise it with --limit source=N")
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as err:
        raise CompileError(f"cannot read {where}: {_reason(err)}", span) from None
    if len(data) > limit:
        raise CompileError(f"cannot read {where}: it is larger than the source limit of {limit:,} bytes", span,
                           hint="raise it with --limit source=N")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CompileError(f"cannot read {where}: it is not UTF-8 text (byte {err.start:,})", span) from None
    return text.removeprefix(BOM)


def read_entry(path: str | Path, limit: int = MAX_SOURCE_BYTES) -> str:
    """`read_source` for the file a command or `compile_file` is given: it too must be a `.cnn`
    file (after symlinks), so a syntax error never quotes some other file's lines."""
    try:
        real = Path(path).resolve()
    except (OSError, RuntimeError, ValueError) as err:
        raise CompileError(f"cannot read {path}: {_reason(err)}") from None
    if real.suffix != ".cnn" and real.exists() and not real.is_dir():
        shown = f" (it is a link to {real})" if real.name != Path(path).name else ""
        raise CompileError(f"cannot read {path}: a cnndsl source is a .cnn file{shown}")
    return read_source(path, limit=limit)


def _reason(err: Exception) -> str:
    return err.strerror or str(err) if isinstance(err, OSError) else str(err)
