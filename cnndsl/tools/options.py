"""What every command shares: the common options and compiling FILE with them.

The CLI (cnndsl/cli.py) and the tool commands (fmt, graph, export, weights, train) both use
this module; the tools never import the CLI back.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnndsl.api import Network, compile_file, parse_limits
from cnndsl.models import resolve


def add_common_options(p: argparse.ArgumentParser) -> None:
    """--set, --input, --path, --limit and --no-warnings, which every command takes."""
    p.add_argument("--set", dest="overrides", metavar="NAME=VALUE", action="append", default=[],
                   help="override a network parameter, e.g. --set classes=10 (repeatable)")
    p.add_argument("--input", metavar="CxHxW", default=None,
                   help="override the network's input shape, e.g. --input 3x32x32")
    p.add_argument("--path", metavar="DIR", action="append", default=[],
                   help="a directory to search for `use` libraries (also: CNNDSL_PATH)")
    p.add_argument("--limit", metavar="NAME=N", action="append", default=[],
                   help="raise a resource limit: nodes, repeat, depth, errors, work, number, source (bytes), "
                        "memory (MiB) (e.g. --limit nodes=100000; docs/LANGUAGE.md lists them)")
    p.add_argument("--no-warnings", action="store_true",
                   help="do not print warnings (one line: `# cnndsl: ignore` or `# cnndsl: ignore[code]`)")


def expand_files(names: list[str]) -> list[str]:
    """FILE arguments: a directory stands for the .cnn files below it, sorted; "-" (standard input)
    and everything else are kept as given."""
    files: list[str] = []
    for name in names:
        path = Path(name)
        if name != "-" and path.is_dir():
            files.extend(str(p) for p in sorted(path.rglob("*.cnn")))
        else:
            files.append(name)
    return files


def compile_for(args: argparse.Namespace, file: str) -> Network:
    """Compile FILE with the common options (--set, --input, --path, --limit); print warnings."""
    net = compile_file(resolve(file), set=args.overrides, input=args.input, search=args.path, limits=parse_limits(args.limit))
    if net.warnings and not args.no_warnings:
        print("\n".join(w.render(net.sources) for w in net.warnings), file=sys.stderr)
    return net
