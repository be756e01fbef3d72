"""Every zoo file gives exactly its parameter count through `cnndsl summary --format json`,
and every zoo file appears in the table (and in docs/ZOO.md, generated from it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cnndsl.cli import main
from tests.conftest import ROOT, ZOO
from tests.zoo_table import ROWS


def _id(row) -> str:
    return row.file.removesuffix(".cnn") + "".join(f"-{k}{v}" for k, v in (row.set or {}).items())


@pytest.mark.parametrize("row", ROWS, ids=[_id(r) for r in ROWS])
def test_row(row, capsys):
    argv = ["summary", str(ZOO / row.file), "--format", "json"]
    for key, value in (row.set or {}).items():
        argv += ["--set", f"{key}={value}"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["params"] == row.params


def test_every_zoo_file_is_in_the_table():
    files = {str(p.relative_to(ZOO)) for p in ZOO.rglob("*.cnn") if p.parent.name != "lib"}
    assert files == {r.file for r in ROWS}


def test_zoo_doc_is_generated_and_current():
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "gen_zoo.py"), "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
