"""The `cnndsl` command line: argument parsing and printing only.

Exit status: 0 on success, 1 when a program has an error (printed as
`file:line:col: error: …` with the source line and a caret), 2 on bad usage.
`check` and `summary` never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from cnndsl.api import Network, load_library, parse_limits
from cnndsl.backends.triton.plan import plan_launch
from cnndsl.diagnostics import CompileError, UsageError, missing_dependency
from cnndsl.ir.graph import dumps
from cnndsl.ir.summary import Summary, scaled
from cnndsl.models import resolve
from cnndsl.tools.options import add_common_options, compile_for, expand_files, print_diagnostics
from cnndsl.tools.summary import depth_arg, render

EPILOG = """examples:
  cnndsl compile zoo/resnet152.cnn                 check and print the summary
  cnndsl compile zoo/resnet50.cnn --emit ir -o resnet50.json
  cnndsl compile zoo/vgg16.cnn --emit torch -o vgg16.pt
  cnndsl check zoo                                 check every .cnn file below a directory
  cnndsl summary resnet50                          a packaged zoo network by name (cnndsl zoo lists them)
  cnndsl summary zoo/resnet18.cnn --set classes=10 --input 3x32x32 --format md
  cnndsl summary zoo/googlenet.cnn --depth 1       one row per block (inception3a, …)
  cnndsl graph zoo/resnet50.cnn -o resnet50.svg    draw it (.svg .png .pdf .dot .html)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnndsl",
        description="cnndsl: compile .cnn network descriptions into checked graphs and PyTorch modules.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cnndsl {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("compile", help="check a network and emit its summary, IR or PyTorch module",
                       description="Check FILE (every shape) and emit its summary, its IR as JSON, or a PyTorch module.")
    p.add_argument("file", metavar="FILE", help="a .cnn file that defines a network")
    p.add_argument("--emit", choices=["summary", "ir", "torch", "plan"], default="summary",
                   help="summary: the layer table (default); ir: the graph as JSON; "
                        "torch: the generated module's code (with -o, the module saved by torch.save); "
                        "with --backend triton: summary: the optimisation report, ir: the optimised graph, "
                        "plan: the report and every launch with the .cnn lines it covers")
    p.add_argument("-o", "--output", metavar="PATH", help="write the result to PATH instead of standard output")
    p.add_argument("--backend", choices=["torch", "triton"], default="torch",
                   help="torch: as --emit says (default); triton: also print the Triton backend's optimisation "
                        "report (fusions, kernels, torch fallbacks); runs the IR passes only, needs no GPU")
    add_common_options(p)

    p = sub.add_parser("check", help="check files and report every error",
                       description="Check each FILE; print every error with file:line:col and exit 1 if any.")
    p.add_argument("files", metavar="FILE", nargs="+",
                   help="a .cnn file, a zoo network's name, or a directory (the .cnn files below it)")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only (no ok lines, no warnings)")
    add_common_options(p)

    p = sub.add_parser("summary", help="per-layer output shapes, parameters and MACs",
                       description="Print each layer's name, op, output shape, parameters and MACs, with totals.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--format", choices=["text", "json", "md", "csv"], default="text",
                   help="output format (default: text; drawn with rich when standard output is a terminal)")
    p.add_argument("--depth", type=depth_arg, metavar="N|all|auto", default="auto",
                   help="one row per block: names cut to their first N components (layer3.1.conv2 → layer3.1 at 2); "
                        "all: every layer; auto (default): every layer up to 80 rows, else the deepest block level "
                        "that fits (text and md; json and csv keep every layer)")
    p.add_argument("--connections", action=argparse.BooleanOptionalAction, default=None,
                   help="show LeCun's connection counts (default: when a layer has connections but no MACs, as LeNet's)")
    add_common_options(p)

    for module in TOOL_COMMANDS:
        importlib.import_module(module).add_command(sub, add_common_options)
    return parser


def _version() -> str:
    try:
        return metadata.version("cnndsl")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _write(text: str, path: str | None) -> None:
    if path:
        Path(path).write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    else:
        print(text)


def cmd_compile(args: argparse.Namespace) -> int:
    net = compile_for(args, args.file)
    if args.emit == "plan":  # the launch listing is the Triton planner's: --emit plan selects it
        args.backend = "triton"
    if getattr(args, "backend", "torch") == "triton":
        if args.emit == "torch":
            print("cnndsl compile: error: --emit torch is the torch backend's output; drop --backend triton",
                  file=sys.stderr)
            return 2
        plan = plan_launch(net.graph)
        if args.emit == "ir":
            _write(dumps(plan.graph), args.output)
        elif args.emit == "plan":
            _write(str(plan.report) + "\n\n" + plan.listing(), args.output)
        else:
            _write(str(plan.report), args.output)
        return 0
    if args.emit == "summary":
        s = net.summary()
        _write(render(s, "text", depth=s.auto_depth()), args.output)
    elif args.emit == "ir":
        _write(dumps(net.graph), args.output)
    else:
        module = net.to_torch()
        if args.output:
            import torch

            torch.save(module, args.output)
            print(f"saved {net.name} ({sum(p.numel() for p in module.parameters()):,} parameters) to {args.output}; "
                  f"load it with torch.load({args.output!r}, weights_only=False) where cnndsl is installed")
        else:
            print(_torch_script(net, module, args))
    return 0


def _torch_script(net: Network, module: Any, args: argparse.Namespace) -> str:
    """`compile --emit torch`: an importable file whose build() makes the module, with the code its
    forward() runs (torch.fx's, which calls cnndsl's helpers) for reading."""
    path = str(Path(resolve(args.file)).resolve())
    params = sum(p.numel() for p in module.parameters())
    options = [f"set={args.overrides!r}"] if args.overrides else []
    options += [f"input={args.input!r}"] if args.input else []
    options += [f"search={[str(Path(p).resolve()) for p in args.path]!r}"] if args.path else []
    call = ", ".join([repr(path), *options])
    return "\n".join([
        f'"""{net.name} as cnndsl lowers it to torch, from {path}: {params:,} parameters.',
        "",
        "Import this file and call build() for the module (fresh weights: load a state_dict into it);",
        "FORWARD is the code its forward() runs (torch.fx, calling cnndsl's helpers), for reading.",
        '"""',
        "",
        "import torch",
        "",
        "import cnndsl",
        "",
        "",
        "def build() -> torch.nn.Module:",
        '    """The torch.fx GraphModule, compiled from the .cnn file as `cnndsl compile` compiled it."""',
        f"    return cnndsl.compile_file({call}).to_torch()",
        "",
        "",
        'FORWARD = """\\',
        module.code.strip("\n").replace("\\", "\\\\").replace('"""', '\\"\\"\\"'),
        '"""',
    ])



def cmd_check(args: argparse.Namespace) -> int:
    errors = 0
    if args.quiet:
        args.no_warnings = True
    for file in expand_files(args.files):
        try:
            library = load_library(resolve(file), args.path, parse_limits(args.limit))
            if not library.module.networks:  # a library of blocks: its syntax and its `use`s
                if not args.quiet:
                    n = len(library.module.blocks)
                    print(f"{file}: ok (a library of {n} block{'s' if n != 1 else ''})")
                continue
            net = compile_for(args, file)
        except UsageError:
            raise
        except CompileError as err:
            print_diagnostics(err.render(), args)
            errors += len(err.diagnostics)
            continue
        if not args.quiet:
            s, w = net.summary(), len(net.warnings)
            warned = f", {w} warning{'s' if w != 1 else ''}" if w else ""
            print(f"{file}: ok ({len(s.rows)} layers, {s.params:,} params, {scaled(s.macs)} MACs{warned})")
    if errors:
        print_diagnostics(f"{errors} error{'s' if errors != 1 else ''}", args)
        return 1
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    s = compile_for(args, args.file).summary()
    print(render(s, args.format, depth=_depth(s, args.depth, args.format), connections=args.connections,
                 tty=args.format == "text" and sys.stdout.isatty()))
    return 0


def _depth(s: Summary, depth: int | str, fmt: str = "text") -> int | None:
    """--depth: a number, `all`, or `auto` (the default: blocks once a table would pass 80 rows,
    for the formats people read; json and csv keep every layer)."""
    if depth == "auto":
        return s.auto_depth() if fmt in ("text", "md") else None
    return None if depth == "all" else int(depth)


COMMANDS = {"compile": cmd_compile, "check": cmd_check, "summary": cmd_summary}

# Tool commands live beside their tools: each module has `add_command(subparsers, common)`,
# which adds a subparser and sets `run=function(args) -> exit status`. The modules import
# torch (and friends) only inside `run`, so `--help`, `check` and `summary` stay light.
TOOL_COMMANDS: list[str] = ["cnndsl.tools.fmt", "cnndsl.tools.graph", "cnndsl.tools.export", "cnndsl.tools.weights_cli",
                            "cnndsl.tools.train", "cnndsl.tools.zoo_cli"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run = getattr(args, "run", None) or COMMANDS[args.command]
        return run(args)
    except CompileError as err:
        n = len(err.diagnostics)
        print_diagnostics(err.render() + f"\n{n} error{'s' if n != 1 else ''}", args)
        return 2 if isinstance(err, UsageError) else 1
    except ImportError as err:  # an optional dependency (torch, onnx, graphviz …) that is not installed
        missing = missing_dependency(err, f"cnndsl {args.command}")
        if missing is None:
            raise
        print_diagnostics(missing.render() + "\n1 error", args)
        return 1
    except BrokenPipeError:
        return 0
    except OSError as err:
        print(f"cnndsl: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
