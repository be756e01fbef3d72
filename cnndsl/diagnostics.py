"""Diagnostics: source spans, `CompileError`, and rendering with carets.

This is the ground floor of the compiler: every stage reports a user's mistake as a
`Diagnostic` with a `Span`, and the CLI renders it the way mypy or rustc would::

    zoo/broken.cnn:14:5: error: residual add needs equal shapes, got 256x56x56 and 64x56x56
       14 |   } shortcut=identity
          |     ^^^^^^^^^^^^^^^^^
       = help: use `shortcut=project` to add a 1x1 projection (Wx)
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """A region of a source file; lines and columns are 1-based, `end_col` exclusive."""

    file: str
    line: int
    col: int
    end_line: int | None = None
    end_col: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def short(self) -> str:
        return f"{self.line}:{self.col}"


@dataclass
class Diagnostic:
    """One message for the user: what went wrong, where, and (optionally) what to do."""

    message: str
    span: Span | None = None
    hint: str | None = None
    severity: str = "error"
    notes: list[str] = field(default_factory=list)
    code: str | None = None  # a warning's kind, for `# cnndsl: ignore[code]`

    def render(self, sources: dict[str, str] | None = None) -> str:
        """Render as `file:line:col: error: message`, the source line, a caret and the hint."""
        where = f"{self.span}: " if self.span else ""
        lines = [f"{where}{self.severity}: {self.message}"]
        text = _source_line(self.span, sources)
        if self.span is not None and text is not None:
            lineno = str(self.span.line)
            pad = " " * len(lineno)
            lines.append(f" {lineno} | {text}")
            start = max(self.span.col - 1, 0)
            if self.span.end_line == self.span.line and self.span.end_col:
                width = max(self.span.end_col - self.span.col, 1)
            else:
                width = max(len(text.rstrip()) - start, 1)
            lines.append(f" {pad} | {' ' * start}{'^' * width}")
        for note in self.notes:
            lines.append(f"   = note: {note}")
        if self.hint:
            lines.append(f"   = help: {self.hint}")
        return "\n".join(lines)


def _source_line(span: Span | None, sources: dict[str, str] | None) -> str | None:
    if span is None:
        return None
    # only a source the compiler read and accepted is shown, never a file re-read from disk
    text = (sources or {}).get(span.file)
    if text is None:
        return None
    all_lines = [line.rstrip("\r") for line in text.split("\n")]  # spans count "\n" only
    if 1 <= span.line <= len(all_lines):
        return all_lines[span.line - 1].expandtabs(1)
    return None


class CompileError(Exception):
    """A user's mistake in a `.cnn` program (or its overrides), with where and why.

    Carries one or more `Diagnostic`s; the first one's fields are exposed directly
    (`file`, `line`, `column`, `message`, `hint`) for the common case.
    """

    def __init__(
        self,
        message: str | list[Diagnostic],
        span: Span | None = None,
        hint: str | None = None,
        notes: list[str] | None = None,
    ) -> None:
        if isinstance(message, list):
            self.diagnostics = message
        else:
            self.diagnostics = [Diagnostic(message, span, hint, notes=list(notes or []))]
        self.sources: dict[str, str] = {}
        # an empty list is an error already reported elsewhere (see elaborate's `Unknown`)
        super().__init__(self.diagnostics[0].message if self.diagnostics else "")

    @property
    def first(self) -> Diagnostic:
        return self.diagnostics[0]

    @property
    def message(self) -> str:
        return self.first.message

    @property
    def span(self) -> Span | None:
        return self.first.span

    @property
    def hint(self) -> str | None:
        return self.first.hint

    @property
    def file(self) -> str | None:
        return self.span.file if self.span else None

    @property
    def line(self) -> int | None:
        return self.span.line if self.span else None

    @property
    def column(self) -> int | None:
        return self.span.col if self.span else None

    def render(self) -> str:
        return "\n".join(d.render(self.sources) for d in self.diagnostics)

    def __str__(self) -> str:
        d = self.first
        return f"{d.span}: {d.message}" if d.span else d.message


# which extra of `pip install 'cnndsl[…]'` brings each optional import (pyproject.toml)
EXTRAS = {"torch": "torch", "triton": "triton", "torchvision": "weights", "timm": "weights", "onnx": "onnx",
          "onnxruntime": "onnx", "onnxscript": "onnx", "sklearn": "train", "tqdm": "train"}


def missing_dependency(err: ImportError, what: str) -> CompileError | None:
    """The error to show for an optional dependency that is not installed (None: not one of ours)."""
    top = (err.name or "").split(".")[0]
    if top not in EXTRAS:
        return None
    return CompileError(f"{what} needs {top}, which is not installed",
                        hint=f"pip install 'cnndsl[{EXTRAS[top]}]' (or 'cnndsl[all]')")


class UsageError(CompileError):
    """A malformed command-line option value (`--set`, `--input`, `--limit`): bad usage, exit
    status 2, where a mistake in the program itself is exit status 1."""


def is_silenced(diag: Diagnostic, sources: dict[str, str]) -> bool:
    """True when the diagnostic's line carries `# cnndsl: ignore` (or `ignore[its code]`)."""
    text = _source_line(diag.span, sources)
    if text is None or "# cnndsl: ignore" not in text:
        return False
    rest = text.split("# cnndsl: ignore", 1)[1]
    if not rest.startswith("["):
        return True
    codes = rest[1:].split("]", 1)[0]
    return diag.code in {c.strip() for c in codes.split(",")}


def did_you_mean(name: str, candidates: list[str] | set[str]) -> str | None:
    """A 'did you mean …' hint from the closest names in scope (None when nothing is close)."""
    import difflib

    close = difflib.get_close_matches(name, sorted(candidates), n=3, cutoff=0.6)
    if not close:
        return None
    return "did you mean " + " or ".join(f"`{c}`" for c in close) + "?"
