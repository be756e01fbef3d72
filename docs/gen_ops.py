"""Render the op table of docs/LANGUAGE.md from the op registry (`cnndsl/ir/ops/`).

Each row comes from one `OpDef`: its name and aliases, its signature (positional parameters
in CAPITALS, keywords as `[key=]`), its defaults, the output shape and trainable parameters
in words (`doc_shape`, `doc_params`) and its description. Run it after changing an op:

    python docs/gen_ops.py          # rewrite the table in docs/LANGUAGE.md
    python docs/gen_ops.py --check  # exit 1 if the table is stale (a test does this)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnndsl.ir.opdef import (  # noqa: E402
    FAMILIES,  # noqa: E402
    OpDef,
    ParamSpec,
    describe,
)
from cnndsl.ir.registry import ops  # noqa: E402

TARGET = ROOT / "docs" / "LANGUAGE.md"
BEGIN = "<!-- op table: generated from the registry by docs/gen_ops.py; do not edit by hand -->"
END = "<!-- end of the op table -->"


def signature(op: OpDef) -> str:
    parts = [op.name]
    if op.arity is None:
        parts.append("@a @b …")
    for p in op.params:
        if p.positional:
            parts.append(p.name.upper() if p.required else f"[{p.name.upper()}]")
        else:
            parts.append(f"[{p.name}=]")
    return ", ".join([f"`{' '.join(parts)}`", *(f"`{form}`" for form in op.forms)])


def _default(p: ParamSpec) -> str | None:
    name = p.name.upper() if p.positional else p.name
    if p.required:
        return None
    if p.default is None:
        return f"{name}: {p.doc[len('defaults to '):]}" if p.doc.startswith("defaults to ") else f"{name}: none"
    value = p.default
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        value = f"{value[0]}x{value[1]}" if p.positional or value[0] != value[1] else value[0]  # stride=1, KERNEL=2x2
    value = f"{value:g}" if isinstance(value, float) else describe(value)
    return f"{name}={value}"


def row(op: OpDef) -> str:
    name = f"`{op.name}`" + "".join(f" (alias `{a}`)" for a in op.aliases)
    defaults = ", ".join(d for d in map(_default, op.params) if d)
    cells = [name, signature(op), defaults, op.doc_shape, op.doc_params, op.doc]
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def render() -> str:
    user = sorted((op for op in ops() if op.user), key=lambda op: FAMILIES.index(op.family))
    lines = [BEGIN, "| op | arguments | defaults | output shape | trainable parameters | what it is |",
             "|---|---|---|---|---|---|", *map(row, user), END]
    return "\n".join(lines)


def updated(text: str) -> str:
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + render() + tail


def main(argv: list[str]) -> int:
    text = TARGET.read_text(encoding="utf-8")
    new = updated(text)
    if "--check" in argv:
        if new != text:
            print(f"{TARGET.relative_to(ROOT)} is stale: run python docs/gen_ops.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
