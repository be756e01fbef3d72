"""The architecture issue's promises, checked: imports flow one way (import-linter), the
registry is the one source of truth for an op (every table that lists ops derives from it
or covers it), and the registry is complete on its own import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cnndsl.backends.torch.lower import LOWERINGS
from cnndsl.ir.registry import REGISTRY, activations, ops, ops_with
from tests.activation_refs import REFERENCES
from tests.conftest import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(cwd), "PATH": str(LINT_IMPORTS.parent), "HOME": str(cwd)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(cwd / "pyproject.toml"), "--no-cache"], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)


def test_imports_flow_one_way():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module, back_arrow", [
    ("cnndsl/ir/graph.py", "import cnndsl.cli"),  # the IR reaching up to the command line
    ("cnndsl/passes/common.py", "import cnndsl.elaborate.expand"),  # two independent siblings
    ("cnndsl/ir/infer.py", "import torch"),  # checking must not need torch
])
def test_a_back_arrow_fails_the_contract(tmp_path, module, back_arrow):
    """The contracts bite: the same tree with one import added against the pipeline is refused."""
    shutil.copytree(ROOT / "cnndsl", tmp_path / "cnndsl", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "zoo"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{back_arrow}  # noqa\n", encoding="utf-8")
    result = _lint(tmp_path)
    assert result.returncode == 1 and "BROKEN" in result.stdout, result.stdout[-2000:]


def test_importing_the_registry_alone_gives_every_op_without_torch():
    code = ("import sys\nfrom cnndsl.ir.registry import REGISTRY\n"
            "print(len(REGISTRY))\nassert 'torch' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == len(REGISTRY)


def test_every_op_has_a_torch_lowering():
    assert {op.name for op in ops()} - {"input"} <= set(LOWERINGS)
    assert set(LOWERINGS) <= set(REGISTRY)  # no lowering of an op the registry does not know


def test_every_activation_has_maths_a_reference_and_is_fused():
    from cnndsl.backends.torch.activations import FUNCTIONS
    from cnndsl.ir.ops.fused import ACTS

    names = tuple(op.name for op in activations())
    assert names == ops_with("activation") and set(names) == set(FUNCTIONS)
    assert set(names) == set(REFERENCES), "tests/activation_refs.py needs a reference for each activation"
    assert ACTS == ("none", *names)  # the fused ops' act/post_act/pre_act/gate_act vocabulary


def test_every_activation_reaches_the_triton_epilogue():
    pytest.importorskip("triton")
    from cnndsl.backends.triton.activations import ACTIVATIONS, source

    assert list(ACTIVATIONS) == ["none", *(op.name for op in activations())]
    text = source()
    for op in activations():
        assert f"# {op.name}\n" in text


def test_every_user_op_is_in_the_docs_table_and_the_fuzz_vocabulary():
    from tests.test_fuzz import VOCAB

    result = subprocess.run([sys.executable, str(ROOT / "docs" / "gen_ops.py"), "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    doc = (ROOT / "docs" / "LANGUAGE.md").read_text(encoding="utf-8")
    for op in ops():
        if op.user:
            assert f"| `{op.name}`" in doc, op.name
        assert {op.name, *op.aliases} <= set(VOCAB), op.name
