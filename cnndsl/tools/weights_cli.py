"""`cnndsl weights`: map a reference model's tensors onto a compiled network and save them.

The reference is a torchvision or timm model built with random weights (`weights=None`,
`pretrained=False`: nothing is downloaded), or a state_dict file. The tensors pair up by
structure (`cnndsl.backends.torch.weights.load_weights`: registration order, else the order a forward
pass calls the layers); a reference module is then run beside the compiled one in eval mode
on a random input and the outputs must agree. torch, torchvision and timm are imported only
when the command runs.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import pickle
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnndsl.tools.options import compile_for

if TYPE_CHECKING:
    import torch

TOLERANCE = 1e-4
SHOW_PAIRS = 5


class WeightsError(RuntimeError):
    """A reference that cannot be built or loaded, or tensors that do not pair up."""


# ---- references ---------------------------------------------------------------------------


def reference_from(spec: str, kwargs: dict[str, Any] | None = None) -> Any:
    """`torchvision:NAME` or `timm:NAME` → a randomly initialised nn.Module; a path → its state_dict."""
    kwargs = kwargs or {}
    library, sep, name = spec.partition(":")
    if sep and library in ("torchvision", "timm") and not Path(spec).exists():
        if not name:
            raise WeightsError(f"--from {spec}: expected {library}:MODEL, e.g. {library}:resnet50")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's FutureWarning about init_weights
            return _torchvision(name, kwargs) if library == "torchvision" else _timm(name, kwargs)
    path = Path(spec)
    if not path.is_file():
        raise WeightsError(f"--from {spec}: no such file; expected torchvision:MODEL, timm:MODEL or a state_dict file")
    if kwargs:
        raise WeightsError("--arg applies to torchvision and timm models, not to a state_dict file")
    return load_state_dict(path)


def _torchvision(name: str, kwargs: dict[str, Any]) -> torch.nn.Module:
    try:
        import torchvision
    except ImportError:
        raise WeightsError("torchvision is not installed (pip install torchvision)") from None
    names = torchvision.models.list_models()
    if name not in names:
        raise WeightsError(f"unknown torchvision model {name!r}{_did_you_mean(name, names)}")
    try:
        return torchvision.models.get_model(name, weights=None, **kwargs)
    except TypeError as err:
        raise WeightsError(f"torchvision:{name}: {err}") from None


def _timm(name: str, kwargs: dict[str, Any]) -> torch.nn.Module:
    try:
        import timm
    except ImportError:
        raise WeightsError("timm is not installed (pip install timm)") from None
    if not timm.is_model(name):
        raise WeightsError(f"unknown timm model {name!r}{_did_you_mean(name, timm.list_models())}")
    try:
        return timm.create_model(name, pretrained=False, **kwargs)
    except TypeError as err:
        raise WeightsError(f"timm:{name}: {err}") from None


def _did_you_mean(name: str, names: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, names, n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a saved state_dict (also inside a checkpoint's `state_dict` or `model` entry)."""
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refuses anything but tensors and plain containers
        raise WeightsError(f"cannot load {path} as a state_dict: not a torch.save file of tensors "
                           "(torch.load(weights_only=True) refuses it)") from None
    except Exception as err:  # noqa: BLE001 - not a torch file at all
        raise WeightsError(f"cannot load {path} as a state_dict: {_first_line(err)[:200]}") from None
    if isinstance(data, torch.nn.Module):
        return data.state_dict()
    for key in ("state_dict", "model_state_dict", "model", "module"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    if not isinstance(data, dict) or not any(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsError(f"{path} holds no state_dict (a dict of tensors)")
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}


# ---- mapping ------------------------------------------------------------------------------


def map_weights(module: torch.nn.Module, source: Any, example: torch.Tensor | None = None,
                order: str = "auto") -> tuple[list[tuple[str, str]], str]:
    """`load_weights` that also says which order paired the tensors: (pairs, order).

    "auto" tries registration order, then call order (a reference module only), then equal
    names (a state_dict saved from a model whose layers carry the .cnn file's names but are
    registered in another order, e.g. torchvision's GoogLeNet with its auxiliary heads last).
    """
    from cnndsl.backends.torch.weights import WeightMismatch, load_weights  # imports torch: only when run

    orders = ["registration", "calls", "names"] if order == "auto" else [order]
    if order == "auto" and not _is_module(source):
        orders.remove("calls")
    first: WeightMismatch | None = None
    for o in orders:
        try:
            if o == "names":
                return _load_by_name(module, source), o
            return load_weights(module, source, example=example, order=o), o
        except WeightMismatch as err:
            first = first or err
        except ValueError as err:
            raise WeightsError(str(err)) from None
    counts = f"the module has {_count(module)} tensors, the reference {_count(source)}"
    raise WeightsError(f"{first} ({counts})")


def _load_by_name(module: torch.nn.Module, source: Any) -> list[tuple[str, str]]:
    """Copy tensors of equal names (every one of the module's, each of the same shape)."""
    import torch

    from cnndsl.backends.torch.weights import WeightMismatch  # imports torch: only when run

    theirs = source.state_dict() if _is_module(source) else source
    ours = {k: v for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
    theirs = {k: v for k, v in theirs.items() if not k.endswith("num_batches_tracked")}
    if set(ours) != set(theirs):
        missing, extra = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
        raise WeightMismatch(f"names differ: the reference lacks {missing[:3]}, has extra {extra[:3]}")
    for name, dst in ours.items():
        if dst.shape != theirs[name].shape:
            raise WeightMismatch(f"`{name}` has shape {tuple(dst.shape)} but the reference's has "
                                 f"{tuple(theirs[name].shape)}")
    with torch.no_grad():
        for name, dst in ours.items():
            dst.copy_(theirs[name])
    return [(name, name) for name in ours]


def _is_module(obj: Any) -> bool:
    import torch

    return isinstance(obj, torch.nn.Module)


def _count(obj: Any) -> int:
    from cnndsl.backends.torch.weights import owners, tensors_of  # imports torch: only when run

    if _is_module(obj):
        return len(tensors_of(obj, [n for n, _ in owners(obj)]))
    return sum(1 for k in obj if not k.endswith("num_batches_tracked"))


def compare_outputs(module: torch.nn.Module, reference: torch.nn.Module, inputs: tuple) -> tuple[float, float]:
    """(max abs difference, largest |output| of the reference) in eval mode; a module's extra
    outputs (auxiliary heads, which a reference in eval mode does not return) are left out."""
    import torch

    module.eval()
    reference.eval()
    with torch.no_grad():
        ours, theirs = module(*inputs), reference(*inputs)
    ours = tuple(ours) if isinstance(ours, (tuple, list)) else (ours,)
    theirs = tuple(theirs) if isinstance(theirs, (tuple, list)) else (theirs,)
    worst, scale = 0.0, 0.0
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a.shape != b.shape:
            raise WeightsError(f"output {i}: the module gives shape {tuple(a.shape)}, the reference {tuple(b.shape)}")
        worst = max(worst, (a.double() - b.double()).abs().max().item())
        scale = max(scale, b.abs().max().item())
    return worst, scale


# ---- the command --------------------------------------------------------------------------

EPILOG = """examples:
  cnndsl weights zoo/resnet50.cnn --from torchvision:resnet50 -o resnet50_weights.pt
  cnndsl weights zoo/inception_v4.cnn --from timm:inception_v4 --input 3x107x107
  cnndsl weights zoo/resnet50.cnn --from resnet50_pretrained.pt -o resnet50_weights.pt

torchvision and timm models are built with random weights (weights=None, pretrained=False):
nothing is downloaded. For real pretrained weights, load the model with its weights
beforehand where a download is possible and save its state_dict, e.g.

  python -c "import torch, torchvision; torch.save(torchvision.models.resnet50(weights='DEFAULT').state_dict(), 'resnet50_pretrained.pt')"

then pass that file to --from. (For torchvision's GoogLeNet and Inception-v3, pass
aux_logits=True, transform_input=False with the weights: the zoo's files have the auxiliary
heads and take the input as it is.) The tensors pair up by structure (the order the layers are
registered in, or else the order a forward pass calls them, or else equal names), every pair
must agree in shape, and a reference model's outputs must equal the compiled module's on a
random input (eval mode). The saved state_dict loads with `module.load_state_dict(torch.load(PATH))`
into `cnndsl.compile_file(FILE).to_torch()`.
"""


def add_command(subparsers: argparse._SubParsersAction, common) -> None:  # noqa: ANN001
    p = subparsers.add_parser(
        "weights", help="import a torchvision/timm model's or a state_dict's weights into a network",
        description="Map the tensors of a reference model (torchvision:MODEL or timm:MODEL, built with "
                    "random weights as nothing is downloaded; or a state_dict file, e.g. of pretrained "
                    "weights you saved beforehand) onto FILE's compiled module, report the pairing, check "
                    "that the outputs agree, and save the module's state_dict.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE", help="a .cnn file that defines a network")
    p.add_argument("--from", dest="source", metavar="SOURCE", required=True,
                   help="torchvision:MODEL, timm:MODEL (random weights) or a state_dict file (.pt/.pth)")
    p.add_argument("-o", "--output", metavar="PATH",
                   help="save the compiled module's state_dict to PATH (torch.save); without it, only check")
    p.add_argument("--order", choices=["auto", "registration", "calls", "names"], default="auto",
                   help="pair tensors in registration order, in the order a forward pass calls the layers, "
                        "by equal names, or (auto, the default) the first of these that fits")
    p.add_argument("--arg", dest="ref_args", metavar="NAME=VALUE", action="append", default=[],
                   help="a keyword argument for the torchvision/timm constructor, e.g. --arg num_classes=10")
    p.add_argument("--batch", type=int, metavar="N", default=2, help="batch size of the random input (default: 2)")
    p.add_argument("--tolerance", type=float, metavar="T", default=TOLERANCE,
                   help=f"largest allowed output difference, relative to the largest output when that is above 1 "
                        f"(default: {TOLERANCE:g})")
    common(p)
    p.set_defaults(run=run)


def _parse_args(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise WeightsError(f"--arg {item!r}: expected NAME=VALUE, e.g. --arg num_classes=10")
        try:
            out[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = value.strip()
    return out


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except WeightsError as err:
        print(f"cnndsl weights: error: {err}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    import torch

    if args.batch < 1:
        raise WeightsError(f"--batch {args.batch}: expected a positive batch size")
    if args.output and not Path(args.output).resolve().parent.is_dir():
        raise WeightsError(f"cannot write {args.output}: no directory {Path(args.output).parent}")
    source = reference_from(args.source, _parse_args(args.ref_args))
    net = compile_for(args, args.file)
    net.check_memory("comparing outputs on the example batch", batch=max(2, args.batch))
    module = net.to_torch()
    gen = torch.Generator().manual_seed(0)
    inputs = tuple(torch.randn(args.batch, *s, generator=gen) for s in module.input_shapes)
    example = inputs[0] if args.batch > 1 else torch.cat([inputs[0]] * 2)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # a reference's own prints stay off the report
            pairs, order = map_weights(module, source, example, args.order)
    except RuntimeError as err:  # a reference whose forward pass does not take the input
        if isinstance(err, WeightsError):
            raise
        raise WeightsError(f"pairing by call order ran the models and failed: {_first_line(err)}") from None
    renamed = [(ours, theirs) for ours, theirs in pairs if ours != theirs]
    how = {"registration": "registration order", "calls": "call order (the order a forward pass calls the layers)",
           "names": "equal names"}
    print(f"paired {len(pairs)} tensors of {net.name} with {args.source} by {how[order]}; "
          + (f"{len(renamed)} under other names" if renamed else "all under the same names"))
    shapes = module.state_dict()
    shown = pairs[:SHOW_PAIRS] + [p for p in renamed if p not in pairs[:SHOW_PAIRS]][:SHOW_PAIRS]
    width = max((len(ours) for ours, _ in shown), default=0)
    for i, (ours, theirs) in enumerate(shown):
        if i == SHOW_PAIRS:
            print("  … and of those under other names:")
        print(f"  {ours:<{width}}  <-  {theirs}  {tuple(shapes[ours].shape)}")
    if len(pairs) > len(shown):
        print(f"  … {len(pairs) - len(shown)} more")
    print("unmatched: none (batch norm's num_batches_tracked counters are not paired)")
    if _is_module(source):
        try:
            diff, scale = compare_outputs(module, source, inputs)
        except RuntimeError as err:
            if isinstance(err, WeightsError):
                raise
            raise WeightsError(f"running the models failed: {_first_line(err)}") from None
        shape = "x".join(map(str, inputs[0].shape))
        if not diff <= args.tolerance * max(1.0, scale):  # also catches NaN
            raise WeightsError(f"outputs differ from {args.source}: max abs diff {diff:.3g} on a random {shape} input "
                               f"(tolerance {args.tolerance:g} × max(1, largest output {scale:.3g}))")
        print(f"outputs equal {args.source}'s: max abs diff {diff:.2e} on a random {shape} input (eval mode)")
    else:
        print("a state_dict file: no reference outputs to compare")
    if args.output:
        state = module.state_dict()
        torch.save(state, args.output)
        params = sum(p.numel() for p in module.parameters())
        print(f"saved the state_dict of {net.name} ({len(state)} tensors, {params:,} parameters) to {args.output}")
    return 0


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")
