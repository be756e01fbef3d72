"""`cnndsl zoo`: the networks that ship with cnndsl, and the source of one of them.

Every command that takes a FILE also takes a zoo name (`cnndsl summary resnet50`); this
command says which names there are.
"""

from __future__ import annotations

import argparse
import sys

from cnndsl.diagnostics import CompileError
from cnndsl.ir.summary import scaled
from cnndsl.models import describe, list_models, model_path

EPILOG = """examples:
  cnndsl zoo                      every network: parameters, MACs, what it is
  cnndsl zoo 'efficientnet*'      the networks whose names match a pattern
  cnndsl zoo show resnet50        print zoo/resnet50.cnn
  cnndsl summary resnet50         any command takes a zoo name where it takes a FILE
"""


def add_command(subparsers, common) -> None:  # noqa: ANN001 - argparse's private types
    """Add `cnndsl zoo` (it takes none of the compile options that `common` adds)."""
    p = subparsers.add_parser(
        "zoo", help="list the packaged networks (cnndsl zoo show NAME prints one)",
        description="List the networks that ship with cnndsl (name, parameters, MACs at the file's own input "
                    "size, and the first line of its header), or print one's source with `show NAME`.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("words", metavar="PATTERN | show NAME", nargs="*",
                   help="a shell-style pattern over the names (default: all), or `show` and a name")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    words = args.words
    if words[:1] == ["show"]:
        if len(words) != 2:
            print("cnndsl zoo: error: `show` takes one network name, e.g. cnndsl zoo show resnet50", file=sys.stderr)
            return 2
        sys.stdout.write(model_path(words[1]).read_text(encoding="utf-8"))
        return 0
    if len(words) > 1:
        print("cnndsl zoo: error: give one pattern (quote it: 'resnet*')", file=sys.stderr)
        return 2
    names = list_models(words[0] if words else "*")
    if not names:
        raise CompileError(f"no zoo network matches {words[0]!r}", hint="`cnndsl zoo` lists them all")
    width = max(len(n) for n in names)
    print(f"{'name':<{width}}  {'params':>13}  {'MACs':>9}  what it is")
    for name in names:
        info = describe(name)
        print(f"{name:<{width}}  {info.params:>13,}  {scaled(info.macs):>9}  {info.title}", flush=True)
    print(f"{len(names)} networks (cnndsl zoo show NAME prints one; any command takes a NAME where it takes a FILE)")
    return 0
