"""cnndsl: a small language for convolutional networks, and its compiler.

    >>> import cnndsl
    >>> net = cnndsl.compile_file("zoo/resnet50.cnn")
    >>> net.summary().params
    25557032
"""

from cnndsl.api import Network, compile_file, compile_source
from cnndsl.diagnostics import CompileError, Diagnostic, Span

__all__ = ["CompileError", "Diagnostic", "Network", "Span", "compile_file", "compile_source"]
__version__ = "0.1.0"
