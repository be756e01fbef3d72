"""The built wheel works without a checkout: installed non-editable into a fresh virtual
environment, its `cnndsl` finds the grammar and the zoo inside the package and compiles
from another directory.

The fresh environment gets the wheel only (`--no-deps --no-index`); its dependencies
(lark, networkx, …) are borrowed from the test environment through a `.pth` file, which adds
that site-packages directory to the path but processes none of its own `.pth` files, so the
editable install of this checkout stays invisible there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import ROOT

IGNORE = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis",
                                ".pytest_cache", ".ruff_cache")


def _run(cmd: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)})
    assert result.returncode == 0, f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the fresh environment's python, the installed package's directory)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=IGNORE)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"),
          str(src)], cwd=tmp)
    (wheel,) = (tmp / "dist").glob("cnndsl-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp)
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], cwd=tmp)
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp)
                .stdout.strip())
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return python, site / "cnndsl"


def test_the_wheel_carries_the_grammar_and_the_zoo(installed):
    _, package = installed
    assert (package / "syntax" / "cnn.lark").is_file()
    zoo = package / "zoo"
    assert (zoo / "resnet152.cnn").is_file() and (zoo / "lib" / "resnet.cnn").is_file()
    assert sorted(p.name for p in zoo.glob("*.cnn")) == sorted(p.name for p in (ROOT / "zoo").glob("*.cnn"))
    assert not zoo.is_symlink()  # real files in the installed package


def test_the_installed_package_is_not_the_checkout(installed, tmp_path):
    python, package = installed
    out = _run([str(python), "-c", "import cnndsl; print(cnndsl.__file__, cnndsl.__version__)"], cwd=tmp_path).stdout
    where, version = out.split()
    assert Path(where).parent == package and ROOT not in Path(where).parents
    assert version == "0.1.0"


def test_check_and_compile_from_another_directory(installed, tmp_path):
    python, package = installed
    cli = python.parent / "cnndsl"
    net = package / "zoo" / "resnet152.cnn"
    out = _run([str(cli), "check", str(net)], cwd=tmp_path).stdout
    assert "ok (" in out and "60,192,808 params" in out
    out = _run([str(cli), "compile", str(net)], cwd=tmp_path).stdout
    assert "params:  60,192,808" in out and "11.51 G" in out
    mine = tmp_path / "mine.cnn"  # a user's file that `use`s a library through --path
    mine.write_text('use "lib/resnet.cnn"\n\nnetwork mine {\n  input 3x32x32\n  conv 3x3 16 pad=1\n  basic(16)\n}\n', encoding="utf-8")
    _run([str(cli), "check", str(mine), "--path", str(package / "zoo")], cwd=tmp_path)
    _run([str(cli), "check", str(mine)], cwd=tmp_path)  # the packaged zoo is on every search path
    _run([str(cli), "fmt", "--check", str(mine)], cwd=tmp_path)


def test_zoo_networks_by_name_from_the_wheel(installed, tmp_path):
    python, package = installed
    cli = python.parent / "cnndsl"
    assert "params:  25,557,032" in _run([str(cli), "summary", "resnet50"], cwd=tmp_path).stdout
    listing = _run([str(cli), "zoo", "convnext_*"], cwd=tmp_path).stdout
    assert "convnext_tiny" in listing and "28,589,128" in listing and "4 networks" in listing


def test_the_license_and_the_constraints_stand_on_their_own():
    """A LICENSE file that says what pyproject says (MIT), and no file of the set-up pointing
    outside the repository."""
    import tomllib

    license_name = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]["text"]
    assert license_name == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    for name in ("constraints.txt", "pyproject.toml", "README.md"):
        assert "../" not in (ROOT / name).read_text(), name


def test_the_core_needs_no_torch_and_names_the_extra_it_lacks(installed, tmp_path):
    """pyproject: torch only in extras. The installed wheel with torch & co. made unimportable
    (a sitecustomize that blocks them, as if not installed): check, summary and .dot drawing work;
    a command that needs torch says which extra to install."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.split(">")[0].split(";")[0].strip() in ("torch", "triton")]
    extras = project["optional-dependencies"]
    assert set(extras) >= {"torch", "triton", "weights", "onnx", "train", "all", "test"}
    python, _ = installed
    cli = python.parent / "cnndsl"
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text("import sys\nfor m in ('torch', 'triton', 'torchvision', 'timm', 'onnx'):\n"
                                            "    sys.modules[m] = None\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(block)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(cli), *args], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)

    assert "60,192,808 params" in run("check", "resnet152").stdout
    assert "params:  25,557,032" in run("summary", "resnet50").stdout
    assert run("graph", "lenet5", "-o", str(tmp_path / "l.dot")).returncode == 0 and (tmp_path / "l.dot").is_file()
    needs = run("compile", "resnet50", "--emit", "torch")
    assert needs.returncode == 1 and "pip install 'cnndsl[torch]'" in needs.stderr and "Traceback" not in needs.stderr
