"""Networks by name, like timm: the zoo that ships inside the package.

`cnndsl summary resnet50` and `cnndsl.create_model("efficientnet_b0", classes=10)` find
`zoo/resnet50.cnn` and `zoo/efficientnet_b0.cnn` in the installed package, so a user needs
no checkout. A name is a zoo file's stem (`resnet50`) or, for the variants that follow a
reference implementation layer for layer, `variants/<stem>` (`variants/googlenet_torchvision`).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnndsl.api import compile_file
from cnndsl.diagnostics import CompileError, did_you_mean
from cnndsl.elaborate.loader import packaged_zoo

if TYPE_CHECKING:
    import torch


def _files() -> dict[str, Path]:
    zoo = packaged_zoo()
    found = {p.stem: p for p in zoo.glob("*.cnn")}
    found.update({f"variants/{p.stem}": p for p in (zoo / "variants").glob("*.cnn")})
    return dict(sorted(found.items()))


def list_models(pattern: str = "*") -> list[str]:
    """The packaged networks whose names match the shell-style `pattern` (`"resnet*"`), sorted."""
    return [name for name in _files() if fnmatch.fnmatchcase(name, pattern)]


def model_path(name: str) -> Path:
    """The packaged `.cnn` file of a zoo network; a `CompileError` (with a suggestion) otherwise."""
    files = _files()
    if name.removesuffix(".cnn") in files:
        return files[name.removesuffix(".cnn")]
    hint = did_you_mean(name, list(files)) or "`cnndsl zoo` lists the networks that ship with cnndsl"
    raise CompileError(f"no file {name!r} and no zoo network of that name", hint=hint)


def resolve(file: str) -> str:
    """A command's FILE argument: the path itself when it exists (or looks like a path), else the
    zoo network of that name."""
    if Path(file).exists() or "/" in file.removeprefix("variants/") or file.endswith(".cnn"):
        return file
    return str(model_path(file))


@dataclass
class ModelInfo:
    """One row of `cnndsl zoo`: what the file's header says, and what compiling it gives."""

    name: str
    path: Path
    title: str  # the header comment's first sentence
    params: int
    macs: int


def describe(name: str) -> ModelInfo:
    path = model_path(name)
    header = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("# ").rstrip())
    title = _first_clause(" ".join(header))
    summary = compile_file(path).summary()
    return ModelInfo(name, path, title, summary.params, summary.macs)


def _first_clause(text: str, width: int = 100) -> str:
    """The header up to its first `: `, `; ` or `. ` outside brackets and quotes, at most `width` long."""
    depth, quoted = 0, False
    for i, c in enumerate(text):
        if c == '"':
            quoted = not quoted
        elif c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c in ":;." and not quoted and depth == 0 and text[i + 1:i + 2] in (" ", ""):
            text = text[:i]
            break
    return text if len(text) <= width else text[:width - 1] + "…"


def create_model(name: str, weights: Any = None, **params: Any) -> torch.nn.Module:
    """The torch module of a zoo network, its parameters set by keyword (`classes=10`).

    weights: None (fresh initialisation), a state_dict, a path to one (`torch.load`), or
    "torchvision" / "timm": that library's own pretrained model of the same name, through its own
    loader (so from its local cache, or downloaded), mapped onto this module with `load_weights`."""
    net = compile_file(model_path(name), set=params or None)
    module = net.to_torch()
    if weights is None:
        return module
    from cnndsl.backends.torch.weights import load_weights  # torch only when weights are asked for

    load_weights(module, _reference_weights(name, weights))
    return module


def _reference_weights(name: str, weights: Any) -> Any:
    import torch

    if isinstance(weights, (str, Path)) and str(weights) in ("torchvision", "timm"):
        try:
            if weights == "torchvision":
                import torchvision

                return torchvision.models.get_model(name, weights="DEFAULT").eval()
            import timm

            return timm.create_model(name, pretrained=True).eval()
        except (OSError, RuntimeError, ValueError, KeyError) as err:  # offline, or no such model there
            raise CompileError(f"cannot get {weights}'s pretrained weights for {name!r}: {err}",
                               hint="download them once where the network is reachable (they are cached), "
                                    "or pass a state_dict or a path") from None
    if isinstance(weights, (str, Path)):
        try:
            return torch.load(weights, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, ValueError) as err:
            raise CompileError(f"cannot load weights from {weights}: {err}") from None
    return weights
