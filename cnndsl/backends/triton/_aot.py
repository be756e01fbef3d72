"""Compile every kernel for real GPU targets without a GPU (``triton.compile`` + ``ASTSource``).

Run as ``python -m cnndsl.backends.triton._aot [--targets 80,90] [--dtypes fp16,bf16]``; prints one
JSON object per line (kernel, variant, target, dtype, seconds, ok, error) and exits 1 on any
failure. It must run with ``TRITON_INTERPRET`` unset: under the interpreter ``@triton.jit`` yields
``InterpretedFunction`` objects, which ``ASTSource`` cannot compile (no ``cache_key``).
"""

import argparse
import importlib
import json
import sys
import time

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from cnndsl.backends.triton._common import is_interpreted

MODULES = ("conv", "gemm", "pool", "lrn", "softmax", "rbf", "elementwise", "channel_norm")


def compile_all(targets=(80, 90), dtypes=("fp16", "bf16")):
    """Yield one result dict per (kernel spec, target, dtype)."""
    for mod_name in MODULES:
        mod = importlib.import_module(f"cnndsl.backends.triton.{mod_name}")
        for dtype in dtypes:
            for variant, (kernel, sig, cst) in enumerate(mod.compile_specs(dtype)):
                for cap in targets:
                    res = {"kernel": kernel.__name__ if hasattr(kernel, "__name__") else str(kernel),
                           "variant": variant, "target": f"sm_{cap}", "dtype": dtype}
                    t0 = time.perf_counter()
                    try:
                        if is_interpreted(kernel):
                            raise RuntimeError("kernel defined under TRITON_INTERPRET=1; unset it to compile")
                        compiled = triton.compile(ASTSource(kernel, sig, cst), target=GPUTarget("cuda", cap, 32))
                        res["ok"] = "cubin" in compiled.asm
                        res["error"] = None if res["ok"] else "no cubin produced"
                    except Exception as e:  # noqa: BLE001 - reported, not raised
                        res["ok"], res["error"] = False, f"{type(e).__name__}: {e}"[:2000]
                    res["seconds"] = round(time.perf_counter() - t0, 3)
                    yield res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="80,90")
    ap.add_argument("--dtypes", default="fp16,bf16")
    a = ap.parse_args(argv)
    ok = True
    for res in compile_all(tuple(int(t) for t in a.targets.split(",")), tuple(a.dtypes.split(","))):
        ok &= res["ok"]
        print(json.dumps(res), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
