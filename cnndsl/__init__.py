"""cnndsl: a small language for convolutional networks, and its compiler.

    >>> import cnndsl
    >>> net = cnndsl.compile_file("zoo/resnet50.cnn")
    >>> net.summary().params
    25557032
"""

from cnndsl.api import Network, compile_file, compile_source
from cnndsl.diagnostics import CompileError, Diagnostic, Span


def load_weights(module, source):  # noqa: ANN001 - torch types stay out of `import cnndsl`
    """Copy a reference model's (or state_dict's) weights into a compiled module, by structure."""
    from cnndsl.tools.weights import load_weights as _load

    return _load(module, source)


__all__ = ["load_weights", "CompileError", "Diagnostic", "Network", "Span", "compile_file", "compile_source"]
__version__ = "0.1.0"
