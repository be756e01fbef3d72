"""docs/LANGUAGE.md stays honest: every example compiles (or fails) as the text says.

- Every ```cnn fence is a complete program, compiled with the zoo on the search path.
  `# expect: params=N output=10,10x1x1 layers=N macs=N` lines are checked against
  `net.summary()` (`output` lists every output shape, comma-separated).
- `warnings=unused,pool-drops` lists the codes of the warnings the example must give (none
  when left out); when the next fence is a ```text block starting with `example.cnn:`, it
  must be exactly the rendered warnings of the program compiled as `example.cnn`.
- `# expect-error: MESSAGE` marks a program that must fail with MESSAGE in its error; when
  the next fence is a ```text block starting with `example.cnn:`, it must be exactly the
  rendered diagnostic of that program compiled as `example.cnn`.
- Every `cnndsl …` line of a ```sh fence runs (from the repository root) and exits 0.
- The op table lists every op a program can name, with each of its arguments.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

import cnndsl
from cnndsl.cli import main as cli_main
from cnndsl.ir.opdef import fmt_shape
from cnndsl.ir.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "LANGUAGE.md"
ZOO = ROOT / "zoo"
DOC_NAME = "docs/LANGUAGE.md"


@dataclass
class Fence:
    lang: str
    line: int  # 1-based line of the opening ``` in the document
    text: str


def fences(markdown: str) -> list[Fence]:
    out: list[Fence] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        opening = re.match(r"^```(\w*)\s*$", lines[i])
        if opening:
            start = i
            i += 1
            body = []
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise AssertionError(f"{DOC_NAME}:{start + 1}: unclosed ``` fence")
            out.append(Fence(opening.group(1), start + 1, "\n".join(body) + "\n"))
        i += 1
    return out


FENCES = fences(DOC.read_text(encoding="utf-8"))
EXAMPLES = [(i, f) for i, f in enumerate(FENCES) if f.lang == "cnn"]
SHELL = [(f.line, line.strip()) for f in FENCES if f.lang == "sh"
         for line in f.text.splitlines() if line.strip().startswith("cnndsl ")]


def example_named(network: str) -> str:
    """The text of the document's example that defines `network` (other tests prove it against torchvision)."""
    found = [f.text for _, f in EXAMPLES if re.search(rf"^network {network} \{{", f.text, re.M)]
    assert len(found) == 1, f"{DOC_NAME}: {len(found)} examples define network {network}"
    return found[0]


def expectations(text: str) -> tuple[dict[str, str], str | None]:
    expect: dict[str, str] = {}
    error = None
    for line in text.splitlines():
        m = re.match(r"\s*#\s*expect:\s*(.*)$", line)
        if m:
            for item in m.group(1).split():
                key, sep, value = item.partition("=")
                assert sep and key in {"params", "output", "layers", "macs", "warnings"}, f"bad expectation {item!r}"
                expect[key] = value
        m = re.match(r"\s*#\s*expect-error:\s*(.*?)\s*$", line)
        if m:
            error = m.group(1)
    return expect, error


def compile_example(text: str, file: str = DOC_NAME) -> cnndsl.Network:
    return cnndsl.compile_source(text, file=file, search=[str(ZOO)])


def following_rendering(index: int) -> str | None:
    """The ```text fence right after example `index`, when it shows diagnostics of `example.cnn`."""
    following = FENCES[index + 1] if index + 1 < len(FENCES) else None
    if following is not None and following.lang == "text" and following.text.startswith("example.cnn:"):
        return following.text.rstrip("\n")
    return None


def test_the_document_has_examples():
    assert len(EXAMPLES) >= 20
    assert SHELL


@pytest.mark.parametrize("index,fence", EXAMPLES, ids=[f"line{f.line}" for _, f in EXAMPLES])
def test_example(index: int, fence: Fence):
    expect, error = expectations(fence.text)
    where = f"{DOC_NAME}:{fence.line}"
    if error is not None:
        with pytest.raises(cnndsl.CompileError) as info:
            compile_example(fence.text)
        assert error in info.value.message, f"{where}: expected an error with {error!r}, got {info.value}"
        shown = following_rendering(index)
        if shown is not None:
            with pytest.raises(cnndsl.CompileError) as again:
                compile_example(fence.text, file="example.cnn")
            assert again.value.render() == shown, f"{where}: the diagnostic shown differs"
        return
    try:
        net = compile_example(fence.text)
    except cnndsl.CompileError as err:
        pytest.fail(f"{where}: the example does not compile:\n{err.render()}")
    codes = ",".join(sorted({w.code or "" for w in net.warnings}))
    assert codes == expect.get("warnings", ""), f"{where}: warnings: " + "\n".join(w.message for w in net.warnings)
    shown = following_rendering(index)
    if shown is not None:
        again = compile_example(fence.text, file="example.cnn")
        assert "\n".join(w.render(again.sources) for w in again.warnings) == shown, f"{where}: the warnings shown differ"
    s = net.summary()
    if "params" in expect:
        assert s.params == int(expect["params"]), f"{where}: params"
    if "macs" in expect:
        assert s.macs == int(expect["macs"]), f"{where}: MACs"
    if "layers" in expect:
        assert len(s.rows) == int(expect["layers"]), f"{where}: layers"
    if "output" in expect:
        assert ",".join(fmt_shape(o) for o in s.outputs) == expect["output"], f"{where}: outputs"


@pytest.mark.parametrize("line,command", SHELL, ids=[f"line{n}" for n, _ in SHELL])
def test_shell_command(line: int, command: str, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    rc = cli_main(shlex.split(command)[1:])
    out = capsys.readouterr()
    assert rc == 0, f"{DOC_NAME}:{line}: `{command}` exited {rc}:\n{out.err}"


def test_op_table_lists_every_op_and_argument():
    text = DOC.read_text(encoding="utf-8")
    section = text.split("\n## Ops\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"^\| `(\w+)`(?: \(alias `(\w+)`\))? \| (.*?) \|", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3))
    ops = {op.name: op for op in REGISTRY.values() if op.user}
    assert set(rows) == set(ops)
    for name, op in ops.items():
        alias, signature = rows[name]
        assert (alias,) == (op.aliases or (None,)), name
        for param in op.params:
            if param.positional:
                assert param.name.upper() in signature, f"{name}: {param.name}"
            else:
                assert f"{param.name}=" in signature, f"{name}: {param.name}"


def test_naming_listing_matches_the_first_example():
    """The names, ops, shapes and state_dict keys listed under "Naming rules" are real."""
    pytest.importorskip("torch")
    text = DOC.read_text(encoding="utf-8")
    marker = "The first example of this document gives these names"
    listing = next(f for f in FENCES if f.lang == "text" and f.line > text[: text.index(marker)].count("\n"))
    net = compile_example(EXAMPLES[0][1].text)
    keys = set(net.to_torch().state_dict())
    checked = 0
    for line in listing.text.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 3 or parts[1] == "…":
            continue
        name, op, shape = parts[:3]
        assert name in net.graph, f"{name} is not a layer of the first example"
        node = net.graph.nodes[name]
        assert (node["op"], fmt_shape(node["shape"])) == (op, shape), name
        for key in (parts[3].split(", ") if len(parts) > 3 else []):
            if key != "…":
                assert key in keys, f"{key} is not a state_dict key"
        checked += 1
    assert checked >= 10
