"""What every command shares: the common options and compiling FILE with them.

The CLI (cnndsl/cli.py) and the tool commands (fmt, graph, export, weights, train) both use
this module; the tools never import the CLI back.
"""

from __future__ import annotations

import argparse
import os
import re
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
    add_color_option(p)


def add_color_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help="colour the diagnostics: auto (default) on a terminal unless NO_COLOR is set; always; never")


def use_color(args: argparse.Namespace) -> bool:
    choice = getattr(args, "color", "auto")
    if choice == "auto":
        return sys.stderr.isatty() and "NO_COLOR" not in os.environ
    return choice == "always"


SEVERITY = {"error": "bold red", "warning": "bold yellow"}


def print_diagnostics(text: str, args: argparse.Namespace) -> None:
    """Rendered diagnostics to standard error: plain, or coloured with rich (`--color`)."""
    if not use_color(args):
        print(text, file=sys.stderr)
        return
    from rich.console import Console  # only when colour is asked for
    from rich.text import Text

    out, style = Text(), SEVERITY["error"]
    for line in text.split("\n"):
        head = re.match(r"^((?:\S+:\d+:\d+: )?)(error|warning)(: .*)$", line)
        if head:
            style = SEVERITY[head[2]]
            out.append(head[1], "bold").append(head[2], style).append(head[3], "bold")
        elif re.match(r"^ +\| +\^+$", line):
            gutter, _, carets = line.rpartition("|")
            out.append(gutter + "|", "blue").append(carets, style)
        elif re.match(r"^ *\d+ \| ", line):
            gutter, bar, code = line.partition("| ")
            out.append(gutter + bar, "blue").append(code)
        elif re.match(r"^   = (help|note): ", line):
            kind = line[5:9]
            out.append("   = ", "blue").append(kind, "bold cyan" if kind == "help" else "bold blue").append(line[9:])
        elif re.match(r"^\d+ (error|warning)s?$", line):
            out.append(line, style)
        else:
            out.append(line)
        out.append("\n")
    Console(file=sys.stderr, force_terminal=True, highlight=False, soft_wrap=True).print(out, end="")


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
        print_diagnostics("\n".join(w.render(net.sources) for w in net.warnings), args)
    return net
