"""Every Triton kernel compiles for real GPU targets (sm_80, sm_90) without a GPU.

What the interpreter lets through but a GPU compiler rejects is caught here: the kernels are
compiled with `triton.compile(ASTSource(...), target=GPUTarget("cuda", cap, 32))` in a subprocess
with TRITON_INTERPRET unset (`python -m cnndsl.backends.triton._aot`), because under the
interpreter `@triton.jit` yields objects `triton.compile` cannot take. Numerics: test_triton_kernels.py.
"""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

from cnndsl.backends.triton import _aot, _common  # noqa: E402
from cnndsl.backends.triton import lrn as lrn_mod  # noqa: E402
from tests.kernel_checks import missing_constexprs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_interpreted_kernels_cannot_be_aot_compiled():
    """Why the compile checks run in a subprocess: under TRITON_INTERPRET=1, @triton.jit makes
    InterpretedFunction objects, which triton.compile(ASTSource(...)) rejects."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    kernel, sig, cst = lrn_mod.compile_specs("fp16")[0]
    assert _common.is_interpreted(kernel)
    with pytest.raises(AttributeError, match="cache_key"):
        triton.compile(ASTSource(kernel, sig, cst), target=GPUTarget("cuda", 90, 32))


@pytest.fixture(scope="module")
def aot_results():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-m", "cnndsl.backends.triton._aot", "--targets", "80,90",
                           "--dtypes", "fp16,bf16"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert results, f"no compile results:\n{proc.stderr[-4000:]}"
    return results


AOT_KERNELS = ["_conv_igemm_kernel", "_conv_direct_kernel", "_gemm_kernel", "_pool_kernel", "_global_pool_kernel",
               "_lrn_kernel", "_softmax_kernel", "_rbf_kernel", "_binary_kernel", "_norm_kernel",
               "_shuffle_kernel"]


@pytest.mark.parametrize("kernel", AOT_KERNELS)
def test_compiles_for_sm80_and_sm90(aot_results, kernel):
    mine = [r for r in aot_results if r["kernel"] == kernel]
    assert {(r["target"], r["dtype"]) for r in mine} == {(t, d) for t in ("sm_80", "sm_90") for d in ("fp16", "bf16")}
    failed = [f"{r['target']} {r['dtype']} variant {r['variant']}: {r['error']}" for r in mine if not r["ok"]]
    assert not failed, "\n".join(failed)


def test_compile_specs_are_complete():
    """Every constexpr of every kernel has a value in its compile spec (a missing one would be compiled
    as a runtime argument by mistake)."""
    for name in _aot.MODULES:
        for kernel, sig, cst in importlib.import_module(f"cnndsl.backends.triton.{name}").compile_specs("fp16"):
            assert not missing_constexprs(kernel, cst), (kernel, missing_constexprs(kernel, cst))
            assert set(sig) == set(kernel.arg_names)


def test_compile_specs_reach_every_activation():
    """Each activation code of the registry is compiled for the GPU targets by some spec."""
    from cnndsl.backends.triton.activations import ACTIVATIONS

    reached = set()
    for name in _aot.MODULES:
        for _, _, cst in importlib.import_module(f"cnndsl.backends.triton.{name}").compile_specs("fp16"):
            reached |= {cst[k] for k in ("ACT", "POST_ACT", "GATE_ACT", "PRE_ACT") if k in cst}
    assert set(ACTIVATIONS.values()) <= reached
