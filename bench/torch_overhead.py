"""Forward-pass time of cnndsl's PyTorch backend against torchvision's hand-written models.

For each model, the `.cnn` file in zoo/ is compiled to a `torch.fx.GraphModule` and the
matching torchvision model is built; torchvision's (randomly initialised) weights are copied
into the cnndsl module by an ordered walk over both state_dicts (same order, same shapes for
these architectures: checked, entry by entry), and the two outputs must agree before any
timing starts. Then both run in one process, in eval mode under `torch.inference_mode()`,
interleaved — A, B, A, B … one forward pass each per round — after a warm-up, with a fixed
number of intra-op threads. The figure reported is the median of each and the ratio
cnndsl / torchvision (of the medians, and the median of the per-round ratios).

    .venv/bin/python bench/torch_overhead.py                       # resnet18 + resnet50, batch 1, 224x224
    .venv/bin/python bench/torch_overhead.py --input 3x64x64 --rounds 20   # a quick smoke run
    .venv/bin/python bench/torch_overhead.py --vgg16 --rounds 300 --record  # append to bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "zoo"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TOLERANCE = 1e-4


class BenchError(RuntimeError):
    """A setup check failed: the two models are not the same network."""


@dataclass
class Result:
    model: str
    batch: int
    input: tuple[int, int, int]
    rounds: int
    cnndsl_ms: list[float]
    torchvision_ms: list[float]
    max_abs_diff: float

    @property
    def cnndsl_median(self) -> float:
        return statistics.median(self.cnndsl_ms)

    @property
    def torchvision_median(self) -> float:
        return statistics.median(self.torchvision_ms)

    def iqr(self, samples: list[float]) -> float:
        if len(samples) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(samples, n=4)
        return q3 - q1

    @property
    def ratio(self) -> float:
        return self.cnndsl_median / self.torchvision_median

    @property
    def paired_ratio(self) -> float:
        return statistics.median(a / b for a, b in zip(self.cnndsl_ms, self.torchvision_ms))


def parse_input(spec: str) -> tuple[int, int, int]:
    try:
        dims = tuple(int(d) for d in spec.lower().split("x"))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected CxHxW, e.g. 3x224x224, got {spec!r}")
    return dims  # type: ignore[return-value]


def build_pair(model: str, shape: tuple[int, int, int]):
    """The cnndsl module and the torchvision model with the same weights, both in eval mode."""
    import torch
    import torchvision

    import cnndsl

    net = cnndsl.compile_file(ZOO / f"{model}.cnn", input=shape)
    ours = net.to_torch()
    ref = getattr(torchvision.models, model)(weights=None)
    ours_sd, ref_sd = ours.state_dict(), ref.state_dict()
    if len(ours_sd) != len(ref_sd):
        raise BenchError(f"{model}: cnndsl has {len(ours_sd)} state_dict entries, torchvision {len(ref_sd)}")
    copied: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (k_ours, v_ours), (k_ref, v_ref) in zip(ours_sd.items(), ref_sd.items()):
        if v_ours.shape != v_ref.shape or v_ours.dtype != v_ref.dtype:
            hint = ""
            if model.startswith("vgg") and shape[1:] != (224, 224):
                hint = " (torchvision's VGG pools to 7x7 before its classifier; cnndsl's vgg16 needs a 224x224 input)"
            raise BenchError(
                f"{model}: state_dict entries differ: cnndsl {k_ours} {tuple(v_ours.shape)} {v_ours.dtype} "
                f"vs torchvision {k_ref} {tuple(v_ref.shape)} {v_ref.dtype}{hint}"
            )
        copied[k_ours] = v_ref.clone()
    ours.load_state_dict(copied, strict=True)
    ours.eval()
    ref.eval()
    return ours, ref


def check_outputs(model: str, ours, ref, x) -> float:
    import torch

    with torch.inference_mode():
        a, b = ours(x), ref(x)
    if a.shape != b.shape:
        raise BenchError(f"{model}: output shapes differ: cnndsl {tuple(a.shape)} vs torchvision {tuple(b.shape)}")
    diff = (a - b).abs().max().item()
    if not diff <= TOLERANCE:  # also catches NaN
        raise BenchError(f"{model}: outputs differ by up to {diff:.3g} (tolerance {TOLERANCE:g}) with the same weights")
    return diff


def time_pair(ours, ref, x, rounds: int, warmup: int) -> tuple[list[float], list[float]]:
    """Interleaved timing: one forward pass of each per round, A then B."""
    import torch

    a_ms: list[float] = []
    b_ms: list[float] = []
    with torch.inference_mode():
        for _ in range(warmup):
            ours(x)
            ref(x)
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            ours(x)
            t1 = time.perf_counter_ns()
            ref(x)
            t2 = time.perf_counter_ns()
            a_ms.append((t1 - t0) / 1e6)
            b_ms.append((t2 - t1) / 1e6)
    return a_ms, b_ms


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    return f"{platform.platform()}; {cpu_model()}; {os.cpu_count()} cores"


def load() -> str:
    """The 1-minute load average: other work on the machine shows up here (and in the spread)."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def table(results: list[Result], threads: int) -> str:
    lines = [
        "| model | batch | input | threads | rounds | cnndsl median (ms) | torchvision median (ms) "
        "| ratio cnndsl/torchvision | median per-round ratio | IQR (ms) cnndsl / torchvision | max abs diff |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.model} | {r.batch} | {'x'.join(map(str, r.input))} | {threads} | {r.rounds} "
            f"| {r.cnndsl_median:.2f} | {r.torchvision_median:.2f} | {r.ratio:.3f} | {r.paired_ratio:.3f} "
            f"| {r.iqr(r.cnndsl_ms):.2f} / {r.iqr(r.torchvision_ms):.2f} | {r.max_abs_diff:.1e} |"
        )
    return "\n".join(lines)


def record(text: str, torch_version: str, tv_version: str, args: argparse.Namespace) -> None:
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = ""
    if not RESULTS.exists() or not RESULTS.read_text(encoding="utf-8").strip():
        header = (
            "# cnndsl torch backend vs torchvision: forward-pass time\n\n"
            "Appended by `bench/torch_overhead.py --record` (see bench/README.md). Each entry: one process, "
            "eval mode, `torch.inference_mode()`, the same weights in both models (outputs checked), "
            "forward passes interleaved cnndsl, torchvision, cnndsl, … after a warm-up. "
            "A ratio near 1.00 means the generated module costs nothing over the hand-written one.\n"
        )
    command = "bench/torch_overhead.py " + " ".join(sys.argv[1:])
    entry = (
        f"\n## {when}\n\n"
        f"- machine: {machine()}\n"
        f"- torch {torch_version}, torchvision {tv_version}, Python {platform.python_version()}\n"
        f"- command: `{command.strip()}` (warm-up {args.warmup} rounds)\n"
        f"- load average (1 min): {args.load_before} before timing, {args.load_after} after\n\n"
        f"{text}\n"
    )
    with RESULTS.open("a", encoding="utf-8") as f:
        f.write(header + entry)
    print(f"\nrecorded in {os.path.relpath(RESULTS)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="resnet18,resnet50",
                   help="comma-separated zoo models with a torchvision twin (default: resnet18,resnet50)")
    p.add_argument("--vgg16", action="store_true", help="also time vgg16 (needs a 224x224 input)")
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--size", type=int, default=224, help="image height and width (default 224)")
    p.add_argument("--input", type=parse_input, default=None, metavar="CxHxW",
                   help="the input shape, overriding --size, e.g. 3x64x64 for a quick run")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--rounds", type=int, default=100, help="timed rounds, one forward pass of each per round")
    p.add_argument("--warmup", type=int, default=10, help="untimed rounds first (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--record", action="store_true", help=f"append the table to {RESULTS.relative_to(ROOT)}")
    args = p.parse_args(argv)
    if args.batch < 1 or args.rounds < 1 or args.warmup < 0 or args.threads < 1:
        p.error("--batch, --rounds and --threads must be positive, --warmup not negative")

    import torch
    import torchvision

    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    shape = args.input or (3, args.size, args.size)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.vgg16 and "vgg16" not in models:
        models.append("vgg16")

    print(f"# {machine()}")
    print(f"# torch {torch.__version__} ({torch.get_num_threads()} threads), torchvision {torchvision.__version__}")
    for model in models:
        if not (ZOO / f"{model}.cnn").is_file() or not hasattr(torchvision.models, model):
            p.error(f"{model}: needs zoo/{model}.cnn and torchvision.models.{model}")
    # Every pair is built and checked before any timing, so a mismatch fails fast.
    pairs = []
    for model in models:
        ours, ref = build_pair(model, shape)
        x = torch.randn(args.batch, *shape)
        diff = check_outputs(model, ours, ref, x)
        print(f"# {model}: weights copied, outputs agree (max abs diff {diff:.1e})", flush=True)
        pairs.append((model, ours, ref, x, diff))
    results = []
    args.load_before = load()
    for model, ours, ref, x, diff in pairs:
        print(f"# {model}: timing {args.warmup} + {args.rounds} rounds …", flush=True)
        a, b = time_pair(ours, ref, x, args.rounds, args.warmup)
        results.append(Result(model, args.batch, shape, args.rounds, a, b, diff))
    args.load_after = load()
    text = table(results, args.threads)
    print()
    print(f"# load average (1 min) before timing {args.load_before}, after {args.load_after}")
    print(text)
    if args.record:
        record(text, torch.__version__, torchvision.__version__, args)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as err:
        print(f"torch_overhead: error: {err}", file=sys.stderr)
        sys.exit(1)
