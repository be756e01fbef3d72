"""Export a compiled network to ONNX, TorchScript or a `torch.export` ExportedProgram, and
check each file by running it beside the torch backend on the same random input.

- ONNX goes through `torch.onnx.export(..., dynamo=True)`: it exports the module by
  `torch.export`, so everything the fx GraphModule does (concatenations, several outputs,
  adaptive pooling to any size, highway gates) comes out as it runs. The file is checked by
  `onnx.checker` and run in onnxruntime. (The older TorchScript-based exporter cannot export
  an adaptive pool whose output size does not divide its input, as GoogLeNet's auxiliary
  heads use, and mistakes the GraphModule's `.graph` for a TorchScript graph when given
  dynamic axes.)
- TorchScript by `torch.jit.trace` (the generated forward is straight-line code, so the
  trace is the program; `torch.jit.script` cannot compile `super().forward` in the fc layer
  that flattens its input), checked by `torch.jit.load`.
- An ExportedProgram by `torch.export.export` + `torch.export.save`, checked by
  `torch.export.load`.

torch, onnx and onnxruntime are imported only when a command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnndsl.tools.options import compile_for

if TYPE_CHECKING:
    import torch

TOLERANCE = 1e-4
FALLBACK_OPSET = 18  # where torch does not say which opset its exporter defaults to
MIN_OPSET = 18  # the oldest opset torch's dynamo exporter writes


class ExportError(RuntimeError):
    """An export failed, or the exported file does not compute what the module computes."""


@dataclass
class Check:
    """One written file and how far its outputs are from the torch backend's."""

    kind: str
    path: str
    how: str
    diffs: dict[int, float] = field(default_factory=dict)  # batch size → max abs difference

    def render(self) -> str:
        diffs = ", ".join(f"{d:.2e} (batch {b})" for b, d in self.diffs.items())
        return f"{self.kind}: wrote {self.path} ({self.how}); max abs diff vs torch: {diffs}"


# ---- helpers ------------------------------------------------------------------------------


def default_opset() -> int:
    """The opset torch's ONNX exporter defaults to, capped by what the installed onnx knows."""
    import onnx

    try:
        from torch.onnx._constants import ONNX_DEFAULT_OPSET as opset
    except ImportError:  # a private module: fall back to a widely supported opset
        opset = FALLBACK_OPSET
    return min(int(opset), onnx.defs.onnx_opset_version())


def example_inputs(module: torch.nn.Module, batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs of the module's declared shapes, `batch` examples each."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, *shape, generator=gen) for shape in module.input_shapes)


def _as_tuple(out: Any) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def max_diff(expected: Any, got: Any, tolerance: float = TOLERANCE) -> float:
    """The largest |expected − got| over all outputs; raise `ExportError` when shapes differ
    or the difference exceeds `tolerance` relative to the outputs' size (at least 1)."""
    import numpy as np

    expected, got = _as_tuple(expected), _as_tuple(got)
    if len(expected) != len(got):
        raise ExportError(f"{len(got)} output(s) where the module gives {len(expected)}")
    worst, scale = 0.0, 1.0
    for i, (e, g) in enumerate(zip(expected, got)):
        e, g = np.asarray(e.detach() if hasattr(e, "detach") else e), np.asarray(g.detach() if hasattr(g, "detach") else g)
        if e.shape != g.shape:
            raise ExportError(f"output {i} has shape {tuple(g.shape)} where the module gives {tuple(e.shape)}")
        if e.size:
            worst = max(worst, float(np.abs(e.astype(np.float64) - g.astype(np.float64)).max()))
            scale = max(scale, float(np.abs(e).max()))
    if not worst <= tolerance * scale:  # also catches NaN
        raise ExportError(f"max abs diff {worst:.3g} is above the tolerance {tolerance:g}"
                          + (f" × {scale:.3g} (the largest output magnitude)" if scale > 1 else ""))
    return worst


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' progress lines and their tracer/deprecation warnings."""
    import torch

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _run_torch(module: torch.nn.Module, inputs: tuple) -> Any:
    import torch

    with torch.no_grad():
        return module(*inputs)


def _batches(batch: int, dynamic: bool) -> list[int]:
    """Batch sizes to check at: the example's, and one more when the batch is dynamic."""
    return [batch, batch + 1] if dynamic else [batch]


def _dynamic_shapes(module: torch.nn.Module, dynamic: bool) -> tuple | None:
    if not dynamic:
        return None
    import torch

    batch = torch.export.Dim("batch")
    return tuple({0: batch} for _ in module.input_shapes)


def _trace_batch(batch: int, dynamic: bool) -> int:
    # torch.export specialises a size of 1, so a dynamic batch is traced with at least 2
    return max(batch, 2) if dynamic else batch


# ---- the three formats --------------------------------------------------------------------


def export_program(module: torch.nn.Module, batch: int = 2, dynamic_batch: bool = False) -> Any:
    """`torch.export.export` of the module (in eval mode) on a random batch."""
    import torch

    module.eval()
    inputs = example_inputs(module, _trace_batch(batch, dynamic_batch))
    with _quiet():
        return torch.export.export(module, inputs, dynamic_shapes=_dynamic_shapes(module, dynamic_batch))


def export_onnx(module: torch.nn.Module, path: str | Path, batch: int = 2, dynamic_batch: bool = False,
                opset: int | None = None, input_names: list[str] | None = None,
                output_names: list[str] | None = None, program: Any = None,
                tolerance: float = TOLERANCE) -> Check:
    """Write an ONNX file, check it with `onnx.checker`, run it in onnxruntime and compare."""
    import onnx
    import onnxruntime as ort
    import torch

    module.eval()
    opset = opset or default_opset()
    program = program if program is not None else export_program(module, batch, dynamic_batch)
    big = sum(p.numel() * p.element_size() for p in module.state_dict().values()) > 1.8 * 2**30
    try:
        with _quiet():
            onnx_program = torch.onnx.export(program, (), None, dynamo=True, opset_version=opset,
                                             input_names=input_names, output_names=output_names,
                                             external_data=big)
            onnx_program.save(str(path), external_data=big)
    except Exception as err:  # noqa: BLE001 - every exporter failure becomes one message
        raise ExportError(f"ONNX export failed: {_first_line(err)}") from err
    opset = _name_batch_dim(path) if dynamic_batch else _opset_of(onnx.load(str(path), load_external_data=False))
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"{path}: onnx.checker: {_first_line(err)}") from err
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    check = Check("onnx", str(path), f"opset {opset}, onnx.checker ok, onnxruntime {ort.__version__}")
    for b in _batches(batch, dynamic_batch):
        inputs = example_inputs(module, b, seed=b)
        got = session.run(None, {n: x.numpy() for n, x in zip(names, inputs)})
        check.diffs[b] = _compare(module, inputs, got, tolerance, "onnxruntime", b)
    return check


def _opset_of(model: Any) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _name_batch_dim(path: str | Path) -> int:
    """Call the dynamic batch dimension `batch` (the exporter names it after its symbol, e.g. s31)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    symbols = {v.type.tensor_type.shape.dim[0].dim_param for v in model.graph.input}
    symbols.discard("")
    if symbols:
        for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
            for dim in value.type.tensor_type.shape.dim:
                if dim.dim_param in symbols:
                    dim.dim_param = "batch"
        onnx.save(model, str(path))
    return _opset_of(model)


def export_torchscript(module: torch.nn.Module, path: str | Path, batch: int = 2, dynamic_batch: bool = False,
                       tolerance: float = TOLERANCE) -> Check:
    """`torch.jit.trace` the module, save it, load it back and compare."""
    import torch

    module.eval()
    try:
        with _quiet(), torch.no_grad():
            traced = torch.jit.trace(module, example_inputs(module, _trace_batch(batch, dynamic_batch)))
            torch.jit.save(traced, str(path))
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"TorchScript export failed: {_first_line(err)}") from err
    with _quiet():
        loaded = torch.jit.load(str(path)).eval()
    check = Check("torchscript", str(path), "torch.jit.trace, reloaded by torch.jit.load")
    for b in _batches(batch, dynamic_batch):
        inputs = example_inputs(module, b, seed=b)
        check.diffs[b] = _compare(module, inputs, _run_torch(loaded, inputs), tolerance, "the TorchScript module", b)
    return check


def save_exported_program(module: torch.nn.Module, path: str | Path, batch: int = 2, dynamic_batch: bool = False,
                          program: Any = None, tolerance: float = TOLERANCE) -> Check:
    """`torch.export.save` the module's ExportedProgram, load it back and compare."""
    import torch

    program = program if program is not None else export_program(module, batch, dynamic_batch)
    with _quiet():
        torch.export.save(program, str(path))
        loaded = torch.export.load(str(path)).module()
    check = Check("exported program", str(path), "torch.export, reloaded by torch.export.load")
    for b in _batches(batch, dynamic_batch):
        inputs = example_inputs(module, b, seed=b)
        check.diffs[b] = _compare(module, inputs, _run_torch(loaded, inputs), tolerance, "the exported program", b)
    return check


def _compare(module: torch.nn.Module, inputs: tuple, got: Any, tolerance: float, what: str, batch: int) -> float:
    try:
        return max_diff(_run_torch(module, inputs), got, tolerance)
    except ExportError as err:
        raise ExportError(f"{what} differs from the torch backend at batch {batch}: {err}") from None


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")


# ---- the command --------------------------------------------------------------------------

EPILOG = """examples:
  cnndsl export zoo/resnet18.cnn --onnx resnet18.onnx
  cnndsl export zoo/resnet18.cnn --input 3x64x64 --onnx r18.onnx --torchscript r18.pt --exported-program r18.pt2
  cnndsl export zoo/variants/googlenet_torchvision.cnn --onnx googlenet.onnx --dynamic-batch

Each file is checked after it is written: run (onnxruntime, torch.jit.load, torch.export.load)
on a random input beside the torch backend, with the max abs difference printed; a difference
above the tolerance (relative to the largest output, at least 1) fails with exit status 1.
The module is exported in eval mode (dropout off, batch norm's running statistics). A network
with several outputs (GoogLeNet's auxiliary heads) exports them all, named as in the .cnn file.
"""


def add_command(subparsers: argparse._SubParsersAction, common) -> None:  # noqa: ANN001
    p = subparsers.add_parser(
        "export", help="export to ONNX, TorchScript or a torch.export program, and check each file",
        description="Compile FILE and write it as ONNX (--onnx), TorchScript (--torchscript) and/or a "
                    "torch.export ExportedProgram (--exported-program); each file is loaded back and "
                    "compared with the torch backend on a random input.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE", help="a .cnn file that defines a network")
    p.add_argument("--onnx", metavar="PATH", help="write an ONNX model (torch.onnx dynamo exporter; "
                                                  "checked by onnx.checker and onnxruntime)")
    p.add_argument("--torchscript", metavar="PATH", help="write a TorchScript module (torch.jit.trace)")
    p.add_argument("--exported-program", metavar="PATH", help="write a torch.export ExportedProgram (.pt2)")
    p.add_argument("--opset", type=_opset, metavar="N", default=None,
                   help=f"ONNX opset version, {MIN_OPSET} or later (default: torch's exporter default, 20 with "
                        "torch 2.14)")
    p.add_argument("--dynamic-batch", action=argparse.BooleanOptionalAction, default=None,
                   help="make the batch dimension dynamic, checked at two batch sizes (default: on for ONNX, "
                        "off for the exported program; --no-dynamic-batch fixes ONNX at --batch)")
    p.add_argument("--weights", metavar="PATH",
                   help="export these weights: a state_dict saved by `cnndsl weights -o`, or `cnndsl train`'s "
                        "checkpoint (default: freshly initialised)")
    p.add_argument("--batch", type=_positive, metavar="N", default=2,
                   help="batch size of the example input (default: 2)")
    p.add_argument("--tolerance", type=float, metavar="T", default=TOLERANCE,
                   help=f"largest allowed difference from the torch backend, relative (default: {TOLERANCE:g})")
    common(p)
    p.set_defaults(run=run)


def _load_weights(module: torch.nn.Module, path: str) -> None:
    """Load a state_dict of this very network (by its names) into `module`, or raise ExportError."""
    from cnndsl.tools.weights_cli import WeightsError, load_state_dict

    try:
        state = load_state_dict(path)
    except WeightsError as err:
        raise ExportError(str(err)) from None
    missing, unexpected = [k for k in module.state_dict() if k not in state], [k for k in state if k not in module.state_dict()]
    if missing or unexpected:
        raise ExportError(f"{path} is not a state_dict of this network: {len(missing)} tensors missing "
                          f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}); map another "
                          "model's weights with `cnndsl weights FILE --from … -o w.pt` first")
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise ExportError(f"{path}: {_first_line(err)}") from None


def _opset(text: str) -> int:
    """An opset the dynamo exporter writes (MIN_OPSET on) and the installed onnx knows."""
    import onnx

    value, newest = _positive(text), onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= value <= newest:
        raise argparse.ArgumentTypeError(f"opset {value} is outside what the exporter writes: {MIN_OPSET} … {newest}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    if not (args.onnx or args.torchscript or args.exported_program):
        print("cnndsl export: error: give at least one of --onnx, --torchscript, --exported-program", file=sys.stderr)
        return 2
    if args.onnx:
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError as err:
            print(f"cnndsl export: error: --onnx needs onnx, onnxruntime and onnxscript ({err}); "
                  "pip install 'cnndsl[onnx]'", file=sys.stderr)
            return 1
    for path in (args.onnx, args.torchscript, args.exported_program):
        if path and not Path(path).resolve().parent.is_dir():
            print(f"cnndsl export: error: cannot write {path}: no directory {Path(path).parent}", file=sys.stderr)
            return 1
    net = compile_for(args, args.file)
    net.check_memory("exporting with an example batch", batch=args.batch)
    module = net.to_torch().eval()
    if args.weights:
        try:
            _load_weights(module, args.weights)
        except ExportError as err:
            print(f"cnndsl export: error: {err}", file=sys.stderr)
            return 1
    onnx_dynamic = args.dynamic_batch if args.dynamic_batch is not None else True
    dynamic = bool(args.dynamic_batch)  # torchscript and the exported program: only when asked
    params = sum(p.numel() for p in module.parameters())
    shapes = ", ".join("x".join(map(str, (args.batch, *s))) for s in module.input_shapes)
    print(f"{net.name}: {params:,} parameters" + (f" from {args.weights}" if args.weights else "") + f", input {shapes}"
          + (", batch dynamic" if dynamic or (args.onnx and onnx_dynamic) else "")
          + f", {len(net.graph.graph['outputs'])} output(s)")
    try:
        programs: dict[bool, Any] = {}

        def program_for(dyn: bool) -> Any:
            if dyn not in programs:
                try:
                    programs[dyn] = export_program(module, args.batch, dyn)
                except Exception as err:  # noqa: BLE001
                    raise ExportError(f"torch.export failed: {_first_line(err)}") from err
            return programs[dyn]

        if args.onnx:
            opset = args.opset or default_opset()
            check = export_onnx(module, args.onnx, args.batch, onnx_dynamic, opset,
                                input_names=list(net.graph.graph["inputs"]),
                                output_names=list(net.graph.graph["outputs"]), program=program_for(onnx_dynamic),
                                tolerance=args.tolerance)
            print(check.render())
        if args.torchscript:
            print(export_torchscript(module, args.torchscript, args.batch, dynamic,
                                     tolerance=args.tolerance).render())
        if args.exported_program:
            print(save_exported_program(module, args.exported_program, args.batch, dynamic,
                                        program=program_for(dynamic), tolerance=args.tolerance).render())
    except ExportError as err:
        print(f"cnndsl export: error: {err}", file=sys.stderr)
        return 1
    return 0
