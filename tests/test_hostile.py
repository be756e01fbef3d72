"""Hostile and pathological sources (issue 15): each defect class, and a fuzz over each class.

A source from a stranger must end, quickly, in exit 0 or a positioned `CompileError`: it may
not read files outside its roots (or print them), elaborate without end, make a backend
allocate more than the memory limit, raise a traceback, or break the generated module.
The fuzz at the end runs generated programs in subprocesses under an address-space limit.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnndsl
from cnndsl import CompileError
from cnndsl.cli import main
from cnndsl.elaborate.context import Limits
from cnndsl.elaborate.scope import RESERVED

SECRET = "s3cr3t_never_printed"
POSITIONED = re.compile(r"^\S+:\d+:\d+: error: ", re.M)


# ---- `use` is confined ------------------------------------------------------------------

@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """proj/ (the entry's tree) and, beside it, outside/ with files holding SECRET."""
    root = tmp_path_factory.mktemp("hostile")
    proj, outside = root / "proj", root / "outside"
    (proj / "lib").mkdir(parents=True)
    outside.mkdir()
    (proj / "lib" / "ok.cnn").write_text("block ok() {\n  relu\n}\n")
    for name in ("secret.cnn", "secret.txt"):
        (outside / name).write_text(f"block leak() {{\n  {SECRET}\n}}\n")
    (proj / "notes.txt").write_text(f"{SECRET}\n")
    (proj / "link.cnn").symlink_to(outside / "secret.cnn")
    (proj / "lib" / "up.cnn").symlink_to(Path("..") / ".." / "outside" / "secret.cnn")
    (proj / "loop.cnn").symlink_to("loop.cnn")
    (proj / "dir.cnn").mkdir()
    os.mkfifo(proj / "fifo.cnn")
    return root


SEGMENTS = ["..", ".", "lib", "outside", "proj", "secret.cnn", "secret.txt", "notes.txt", "link.cnn", "up.cnn",
            "loop.cnn", "dir.cnn", "fifo.cnn", "ok.cnn", "etc", "passwd", "", "/", "/etc/passwd", "/proc/self/environ"]


def _check(source: str, path: Path, capsys, *args: str) -> tuple[int, str]:
    path.write_text(source)
    status = main(["check", str(path), *args])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=6), st.booleans())
def test_use_reads_only_cnn_files_inside_its_roots(tree, capsys, segments, absolute):
    target = "/".join(segments)
    if absolute:
        target = str(tree / target)
    status, out = _check(f'use "{target}"\nnetwork n {{\n  input 3x8x8\n  relu\n}}\n', tree / "proj" / "main.cnn",
                         capsys)
    assert SECRET not in out
    if status == 0:  # then it was the one library inside the tree
        resolved = (tree / "proj" / target).resolve()
        assert resolved == (tree / "proj" / "lib" / "ok.cnn").resolve()
    else:
        assert status == 1 and POSITIONED.search(out) and out.startswith(str(tree / "proj" / "main.cnn") + ":1:1:")
        assert "Traceback" not in out


@pytest.mark.parametrize("target,message", [
    ("/etc/passwd", "imports .cnn libraries only"),
    ("../outside/secret.cnn", "leads outside the directories"),
    ("link.cnn", "leads outside the directories"),  # a symlink out of the tree
    ("lib/up.cnn", "leads outside the directories"),
    ("dir.cnn", "it is a directory"),
    ("fifo.cnn", "not a regular file"),
    ("loop.cnn", "cannot find"),
])
def test_each_way_out_is_refused_by_name(tree, capsys, target, message):
    status, out = _check(f'use "{target}"\nnetwork n {{\n  input 3x8x8\n}}\n', tree / "proj" / "main.cnn", capsys)
    assert status == 1 and message in out and SECRET not in out


def test_a_search_path_root_lets_use_read_there(tree, capsys):
    source = 'use "secret.cnn"\nnetwork n {\n  input 3x8x8\n  leak()\n}\n'
    status, out = _check(source, tree / "proj" / "main.cnn", capsys, "--path", str(tree / "outside"))
    # now read, and its mistake shown from its own lines: the file was accepted as a source
    assert status == 1 and f"unknown layer or block `{SECRET}`" in out


def test_the_packaged_zoo_library_is_on_every_search_path(tmp_path, capsys):
    source = 'use "lib/resnet.cnn"\nnetwork n {\n  input 64x32x32\n  basic(64)\n}\n'
    status, out = _check(source, tmp_path / "main.cnn", capsys)
    assert status == 0, out


def test_entry_files_must_be_regular_and_bounded(tmp_path, capsys):
    os.mkfifo(tmp_path / "f.cnn")
    (tmp_path / "pw.cnn").symlink_to("/etc/passwd")
    for path, message in [("/dev/zero", "a cnndsl source is a .cnn file"), (str(tmp_path / "f.cnn"), "not a regular file"),
                          (str(tmp_path), "a directory"), ("/etc/passwd", "a cnndsl source is a .cnn file"),
                          (str(tmp_path / "pw.cnn"), "it is a link to /etc/passwd")]:
        assert main(["summary", path]) == 1  # one FILE (`check DIR` checks the .cnn files below DIR)
        err = capsys.readouterr().err
        assert message in err and "root:" not in err
    big = tmp_path / "big.cnn"
    big.write_text("# " + "x" * 100 + "\n")
    assert main(["check", str(big), "--limit", "source=50"]) == 1
    assert "more than the source limit of 50" in capsys.readouterr().err
    with pytest.raises(CompileError, match="source limit"):
        cnndsl.compile_source("network n { input 3x8x8 }" + " " * 100, limits=Limits(source=64))


def test_a_byte_order_mark_is_ignored(tmp_path, capsys):
    f = tmp_path / "bom.cnn"
    f.write_bytes("\ufeffnetwork n {\n  input 3x8x8\n  relu\n}\n".encode())
    assert main(["check", str(f)]) == 0
    assert cnndsl.compile_source("\ufeffnetwork n {\n  input 3x8x8\n}\n").graph.number_of_nodes() == 1


# ---- bounded elaboration ----------------------------------------------------------------

BODIES = ["", "relu", "relu x10000", "conv 1x1 4", "repeat 10000 { }", "seq { relu }"]
INPUTS = ["3x8x8", "0x8x8"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 10_000), min_size=1, max_size=4), st.sampled_from(BODIES), st.sampled_from(INPUTS))
def test_nested_repeats_end_in_a_result_or_a_positioned_error(counts, body, shape):
    source = body
    for n in counts:
        source = f"repeat {n} {{ {source} }}"
    try:
        net = cnndsl.compile_source(f"network n {{\n  input {shape}\n  {source}\n}}\n", "w.cnn")
    except CompileError as err:
        assert all(d.span is not None for d in err.diagnostics)
        assert len(err.diagnostics) <= Limits().errors + 1
    else:
        assert net.graph.number_of_nodes() <= Limits().nodes


def test_a_failed_flow_is_not_elaborated_once_a_repetition():
    with pytest.raises(CompileError) as info:
        cnndsl.compile_source("network n {\n  input 0x8x8\n  repeat 10000 { relu x10000 }\n}\n", limits=Limits(work=100))
    assert [d.message.split(",")[0] for d in info.value.diagnostics] == ["input shape must be C or CxHxW positive sizes"]


# ---- memory before allocation -----------------------------------------------------------

def test_huge_layers_are_refused_before_allocation():
    net = cnndsl.compile_source("network n {\n  input 3x8x8\n  conv 3x3 1000000000\n}\n", "huge.cnn")
    assert [w.code for w in net.warnings] == ["large-weights"]
    with pytest.raises(CompileError, match=r"building the torch module would need about 104.3 GiB") as info:
        net.to_torch()
    assert info.value.first.span.line == 3
    wide = cnndsl.compile_source("network n {\n  input 3x1000000x1000000\n  relu\n}\n")
    wide.to_torch()  # no parameters: building is fine
    with pytest.raises(CompileError, match="activations"):
        wide.check_memory("running a batch", batch=2)


def test_the_memory_limit_names_the_layer_that_crosses_it():
    net = cnndsl.compile_file(Path(__file__).parents[1] / "zoo" / "resnet18.cnn", limits=Limits(memory=20))
    with pytest.raises(CompileError, match=r"more than the memory limit of 20.0 MiB: .* by `layer\d"):
        net.to_torch()
    cnndsl.compile_file(Path(__file__).parents[1] / "zoo" / "resnet18.cnn").to_torch()


# ---- literals, nesting, names -----------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.integers(31, 6000), st.sampled_from(["conv 1x1 {n}", "relu x{n}", "input 3x{n}x8", "repeat {n} {{ }}",
                                              "conv 1x1 1.{n}"]))
def test_long_literals_are_positioned_errors(digits, form):
    text = form.format(n="9" * digits)
    source = f"network n {{\n  input 3x8x8\n  {text}\n}}\n" if not text.startswith("input") else \
        f"network n {{\n  {text}\n}}\n"
    with pytest.raises(CompileError) as info:
        cnndsl.compile_source(source, "n.cnn")
    assert info.value.first.span is not None and info.value.first.span.line in (2, 3)


@settings(max_examples=20, deadline=None)
@given(st.integers(201, 20_000), st.sampled_from(["(", "seq { ", "[", "residual { "]))
def test_deep_nesting_is_an_error_where_it_crosses(depth, opener):
    closer = {"(": ")", "[": "]"}.get(opener, " }")
    inner = "1" if opener in "([" else "relu"
    line = ("relu " if opener in "([" else "") + opener * depth + inner + closer * depth
    with pytest.raises(CompileError, match="nest more than 200 deep") as info:
        cnndsl.compile_source(f"network n {{\n  input 3x8x8\n  {line}\n}}\n", "n.cnn")
    assert info.value.first.span.line == 3 and info.value.first.span.col > 200


def test_reserved_names_cover_the_installed_torch():
    torch = pytest.importorskip("torch")
    gm = torch.fx.GraphModule(torch.nn.Module(), torch.fx.Graph())
    attributes = {n for n in set(dir(gm)) | set(vars(gm)) if not n.startswith("_")}
    assert attributes - RESERVED == set()


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(RESERVED)), st.sampled_from(["{n}: conv 1x1 4", "{n}: seq {{ relu }}",
                                                           "{n}: residual {{ conv 3x3 3 pad=1 }}"]))
def test_a_reserved_label_is_refused_at_check_time(name, form):
    with pytest.raises(CompileError) as info:
        cnndsl.compile_source(f"network n {{\n  input 3x8x8\n  {form.format(n=name)}\n}}\n", "n.cnn")
    assert info.value.first.span.line == 3


# ---- the resource fuzz: generated programs in a subprocess under limits ------------------

PIECES = st.sampled_from([
    "repeat {n} {{ repeat {n} {{ {b} }} }}", "{b} x{n}", "conv 3x3 {n}", "fc {n}", "input 3x{n}x{n}",
    "seq {{ " * 50 + "{b}" + " }}" * 50, "meta: {b}", "recompile: {b}", "self: {b}", "conv 1x1 {n}.5",
    "maxpool global /{n}", "repeat {n}", "{b} -> {b}",
])
NUMBERS = st.sampled_from(["0", "1", "3", "10000", "1000000000", "99999999999999999999", "1" * 5000])


def _limited() -> None:  # the child process: 3 GiB of address space
    resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(PIECES, NUMBERS, st.sampled_from(["relu", "conv 1x1 4", ""])), min_size=1, max_size=4),
       st.sampled_from(["check", "summary"]))
def test_resource_fuzz_in_a_subprocess(tmp_path, pieces, command):
    body = "\n  ".join(p.format(n=n, b=b or "relu") for p, n, b in pieces)
    f = tmp_path / "fuzz.cnn"
    f.write_text(f"network n {{\n  input 3x8x8\n  {body}\n}}\n")
    run = subprocess.run([sys.executable, "-m", "cnndsl.cli", command, str(f)], capture_output=True, text=True,
                         timeout=60, preexec_fn=_limited)
    assert run.returncode in (0, 1), run.stderr[-2000:]
    assert "Traceback" not in run.stderr and "MemoryError" not in run.stderr
    if run.returncode == 1:
        assert POSITIONED.search(run.stderr), run.stderr[-2000:]
