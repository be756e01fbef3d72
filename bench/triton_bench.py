"""GPU benchmark (issue 6): cnndsl's Triton backend against PyTorch on the same networks.

    python bench/triton_bench.py [--models resnet50,...] [--batches 1,32,256] [--dtypes fp16,bf16]
                                 [--iters 50] [--warmup 10] [--record]

Per (model, batch, dtype): eager NCHW, eager channels_last, torch.compile (default and
max-autotune), cnndsl Triton without and with CUDA graphs. Timing: CUDA events around each
forward, warm-up first, the configurations interleaved round by round (so clock drift hits all
alike), the median per configuration. Prints a Markdown table with images/s, ms, TFLOP/s
(2·MACs per image from the cnndsl summary) and the share of the card's dense peak (--peak-tflops,
else a table for known cards), and the ratio to eager NCHW. `--record` appends the table to
bench/RESULTS.md with the card, versions and date. Needs a CUDA device: exits 2 without one.
Nothing here is estimated: every number printed is measured on the run that prints it.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the classics, then one network per modern kernel family: depthwise + SE (MobileNet, EfficientNet),
# grouped convs + SE (RegNetY), layer norm + layer scale (ConvNeXt); inputs are each file's own
MODELS = ["resnet50", "resnet152", "googlenet", "inception_v3", "vgg16", "alexnet",
          "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0", "regnet_y_8gf", "convnext_tiny"]
PEAK_TFLOPS = {"H100": {"fp16": 989.0, "bf16": 989.0}, "H200": {"fp16": 989.0, "bf16": 989.0},
               "A100": {"fp16": 312.0, "bf16": 312.0}}  # dense tensor-core peaks (SXM), vendor data sheets


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--batches", default="1,32,256")
    p.add_argument("--dtypes", default="fp16,bf16")
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--configs", default="eager,eager_cl,compile,compile_max,triton,triton_graph")
    p.add_argument("--peak-tflops", type=float, default=None, help="the card's dense peak for the dtype")
    p.add_argument("--record", action="store_true", help="append the results to bench/RESULTS.md")
    return p.parse_args(argv)


def build(cfg, net, weights, dtype, torch):
    if cfg.startswith("triton"):
        return net.to_triton(weights, device="cuda", dtype=dtype, cuda_graph=cfg == "triton_graph")
    m = net.to_torch()
    m.load_state_dict(weights)
    m = m.to("cuda", dtype).eval()
    if cfg in ("eager_cl", "compile", "compile_max"):
        m = m.to(memory_format=torch.channels_last)
    if cfg == "compile":
        m = torch.compile(m)
    elif cfg == "compile_max":
        m = torch.compile(m, mode="max-autotune")
    return m


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch  # heavy third-party modules load only once a run starts (not for --help)

    if not torch.cuda.is_available():
        print("triton_bench: no CUDA device here; this benchmark only runs on a GPU (nothing measured)",
              file=sys.stderr)
        return 2
    import cnndsl

    card = torch.cuda.get_device_name()
    dtypes = {"fp16": torch.float16, "bf16": torch.bfloat16}
    configs = args.configs.split(",")
    rows = []
    for model in args.models.split(","):
        net = cnndsl.compile_file(ROOT / "zoo" / f"{model}.cnn")
        macs = net.summary().macs
        graph, weights = net.graph, net.to_torch().state_dict()
        for dname in args.dtypes.split(","):
            dtype = dtypes[dname]
            peak = args.peak_tflops or next((v[dname] for k, v in PEAK_TFLOPS.items() if k in card), None)
            for batch in (int(b) for b in args.batches.split(",")):
                x = torch.randn(batch, *graph.nodes[graph.graph["inputs"][0]]["shape"], device="cuda", dtype=dtype)
                fns, times = {}, {c: [] for c in configs}
                with torch.no_grad():
                    for c in configs:
                        try:
                            m = build(c, net, weights, dtype, torch)
                            xin = x.contiguous(memory_format=torch.channels_last) if c != "eager" and \
                                not c.startswith("triton") else x
                            for _ in range(args.warmup):
                                m(xin)
                            fns[c] = (m, xin)
                        except Exception as err:  # noqa: BLE001 - report and go on
                            print(f"{model} {dname} b{batch} {c}: failed: {err}", file=sys.stderr)
                    torch.cuda.synchronize()
                    for _ in range(args.iters):
                        for c, (m, xin) in fns.items():
                            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                            s.record()
                            m(xin)
                            e.record()
                            e.synchronize()
                            times[c].append(s.elapsed_time(e))
                base = statistics.median(times["eager"]) if times.get("eager") else None
                for c in fns:
                    ms = statistics.median(times[c])
                    tflops = 2 * macs * batch / (ms / 1e3) / 1e12
                    rows.append((model, dname, batch, c, batch / (ms / 1e3), ms, tflops,
                                 f"{100 * tflops / peak:.1f}%" if peak else "n/a",
                                 f"{base / ms:.2f}x" if base else "n/a"))
                    print(" | ".join(str(v) if not isinstance(v, float) else f"{v:.3f}" for v in rows[-1]),
                          file=sys.stderr)
    head = "| model | dtype | batch | config | images/s | ms | TFLOP/s | of peak | vs eager |\n|" + "---|" * 9
    table = "\n".join([head] + [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.1f} | {r[5]:.3f} | {r[6]:.2f} | "
                                f"{r[7]} | {r[8]} |" for r in rows])
    print(table)
    if args.record:
        import triton  # heavy, and only needed for its version here

        meta = (f"\n## Triton backend, {card}, {datetime.date.today()}\n\ntorch {torch.__version__}, "
                f"triton {triton.__version__}, CUDA {torch.version.cuda}, iters {args.iters}, "
                f"warm-up {args.warmup}, medians of CUDA-event times, configurations interleaved\n\n")
        with open(ROOT / "bench" / "RESULTS.md", "a", encoding="utf-8") as f:
            f.write(meta + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
