"""cnndsl: a small language for convolutional networks, and its compiler.

    >>> import cnndsl
    >>> net = cnndsl.compile_file("zoo/resnet50.cnn")
    >>> net.summary().params
    25557032

`import cnndsl` does not import torch: the backends load when a module is asked for.
"""

from importlib import metadata

from cnndsl.api import Network, compile_file, compile_source
from cnndsl.diagnostics import CompileError, Diagnostic, Span
from cnndsl.models import create_model, list_models


def load_weights(module, source):  # noqa: ANN001 - torch types stay out of `import cnndsl`
    """Copy a reference model's (or state_dict's) weights into a compiled module, by structure."""
    # Imported here because it imports torch, which `import cnndsl` must not.
    from cnndsl.backends.torch.weights import load_weights as _load

    return _load(module, source)


try:
    __version__ = metadata.version("cnndsl")  # written once, in pyproject.toml
except metadata.PackageNotFoundError:  # a checkout that was never installed
    __version__ = "unknown"

__all__ = ["load_weights", "CompileError", "Diagnostic", "Network", "Span", "compile_file", "compile_source",
           "create_model", "list_models"]
