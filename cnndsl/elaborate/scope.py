"""Names during elaboration: hierarchical scopes, and the names a layer cannot take."""

from __future__ import annotations

import keyword
from collections import Counter
from dataclasses import dataclass, field

from cnndsl.diagnostics import CompileError, Span

# Names a layer or scope cannot take: Python keywords (they appear in generated code), the
# attributes every PyTorch module and fx GraphModule has (a submodule of that name would shadow
# them) and the names the generated code uses. Refused at check time, so `check` and `to_torch` agree.
RESERVED = frozenset(keyword.kwlist) | {
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile",
    "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer",
    "get_extra_state", "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia",
    "named_buffers", "named_children", "named_modules", "named_parameters", "parameters", "register_backward_hook",
    "register_buffer", "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook",
    "register_module", "register_parameter", "register_state_dict_post_hook", "register_state_dict_pre_hook",
    "requires_grad_", "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train",
    "training", "type", "xpu", "zero_grad", "code", "graph",
    # torch.fx.GraphModule's own (tests/test_hostile.py checks this list against the installed torch)
    "add_submodule", "delete_all_unused_submodules", "delete_submodule", "meta", "print_readable", "recompile",
    "shape_env", "to_folder",
    # names the generated forward() itself uses
    "self", "torch",
}
ARGUMENT_RESERVED = frozenset(keyword.kwlist) | {"self", "torch"}


@dataclass
class Scope:
    """One level of hierarchical names: `layer1.0` inside `layer1` inside the network.

    A numbered scope (`seq { … }`, a labelled repetition) names its children 0, 1, 2 …
    like `nn.Sequential`; any other scope names them by kind and count: conv1, conv2, bn1.
    """

    prefix: str
    numbered: bool = False
    counters: Counter = field(default_factory=Counter)
    used: set[str] = field(default_factory=set)

    def child(self, base: str, label: str | None, span: Span, argument: bool = False) -> str:
        """A unique name for a new child; `argument`: it names a forward() argument (an input), not a
        submodule, so only the names the generated code itself uses are refused."""
        if label is not None:
            if (label in ARGUMENT_RESERVED if argument else label in RESERVED) or label.startswith("_"):
                raise CompileError(f"`{label}` cannot name a layer: PyTorch modules use that name themselves",
                                   span, hint="choose another label, e.g. `{label}_` or `my_{label}`".replace(
                                       "{label}", label.lstrip("_")))
            if label in self.used:
                where = f" in `{self.prefix}`" if self.prefix else ""
                raise CompileError(f"the name `{label}` is used twice{where}", span, hint="give each layer a unique label")
            name = label
        elif self.numbered:
            while str(self.counters["#"]) in self.used:
                self.counters["#"] += 1
            name = str(self.counters["#"])
            self.counters["#"] += 1
        else:
            while True:
                self.counters[base] += 1
                sep = "_" if base[-1:].isdigit() else ""  # relu6_1, not relu61
                name = f"{base}{sep}{self.counters[base]}"
                if name not in self.used:
                    break
        self.used.add(name)
        return f"{self.prefix}.{name}" if self.prefix else name
