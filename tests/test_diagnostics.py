"""Golden tests for the compiler's error messages.

Every `tests/diagnostics/NAME.cnn` holds one mistake; `NAME.expected` beside it holds the
exact standard error that `cnndsl check tests/diagnostics/NAME.cnn` prints when run from
the repository root (the rendered diagnostic, then `1 error`), and the exit status must be 1.
Files under `tests/diagnostics/lib/` are helper libraries that the cases `use`; they are
not cases themselves.

To add a case, write `tests/diagnostics/NAME.cnn`, then regenerate and review the output:

    CNNDSL_REGEN=1 .venv/bin/pytest tests/test_diagnostics.py
    git diff tests/diagnostics/

Regeneration rewrites every `.expected` file from what the compiler prints now; never
hand-edit one to something the compiler does not print.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnndsl.cli import main

ROOT = Path(__file__).resolve().parents[1]
DIAG_DIR = ROOT / "tests" / "diagnostics"
CASES = sorted(DIAG_DIR.glob("*.cnn"))  # not recursive: lib/ helpers are excluded
REGEN = os.environ.get("CNNDSL_REGEN", "") not in ("", "0")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _run_check(path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("CNNDSL_PATH", raising=False)
    code = main(["check", "-q", _rel(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_cases_exist() -> None:
    assert len(CASES) >= 30, f"expected the diagnostics suite in {DIAG_DIR}"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_diagnostic(path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = _run_check(path, capsys, monkeypatch)
    expected_path = path.with_suffix(".expected")
    if REGEN:
        expected_path.write_text(err, encoding="utf-8")
    assert expected_path.is_file(), f"missing {_rel(expected_path)}; run with CNNDSL_REGEN=1 to create it"
    assert code == 1, f"`cnndsl check {_rel(path)}` should fail with exit status 1, got {code}"
    assert out == "", "`check -q` should print nothing to standard output for a failing file"
    assert "Traceback" not in err
    assert err == expected_path.read_text(encoding="utf-8")


def test_no_stray_expected_files() -> None:
    """Every `.expected` file belongs to a case (catches renamed or deleted cases)."""
    stray = [_rel(p) for p in DIAG_DIR.glob("*.expected") if not p.with_suffix(".cnn").is_file()]
    assert not stray, f"`.expected` files without a `.cnn` case: {stray}"


def _error_count(expected: str) -> int:
    last = expected.rstrip("\n").rsplit("\n", 1)[-1]
    count, _, word = last.partition(" ")
    assert word in ("error", "errors"), f"unexpected last line {last!r}"
    return int(count)


def test_cli_subprocess_no_traceback() -> None:
    """The real entry point, on every case at once: no traceback, exit 1, every message printed."""
    env = {k: v for k, v in os.environ.items() if k != "CNNDSL_PATH"}
    files = [_rel(p) for p in CASES]
    proc = subprocess.run(
        [sys.executable, "-m", "cnndsl.cli", "check", "-q", *files],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr
    assert "Traceback" not in proc.stdout
    assert proc.returncode == 1
    if REGEN:
        return
    # `check` with many files prints each file's diagnostics, then one total.
    parts, total = [], 0
    for p in CASES:
        text = p.with_suffix(".expected").read_text(encoding="utf-8")
        body, _, _ = text.rstrip("\n").rpartition("\n")
        parts.append(body + "\n")
        total += _error_count(text)
    expected = "".join(parts) + f"{total} error{'s' if total != 1 else ''}\n"
    assert proc.stderr == expected
