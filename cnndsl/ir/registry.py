"""The op registry: every operation the compiler knows, collected from `cnndsl/ir/ops/`.

Each op module declares its `OpDef`s as module-level values; this module gathers them, so
`import cnndsl.ir.registry` alone gives the full registry (no import side effects). Passes,
tools and backends ask the registry about families and traits instead of testing op names;
backends own their lowering tables keyed by op name, so the registry never imports torch.
"""

from __future__ import annotations

from types import ModuleType

from cnndsl.ir.opdef import OpDef
from cnndsl.ir.ops import activation, conv, dense, fused, lenet, merge, norm, pool

MODULES: tuple[ModuleType, ...] = (merge, conv, dense, activation, norm, pool, lenet, fused)
"""The op modules, one per family of ops (fused: the internal ops the passes make)."""


def _collect(modules: tuple[ModuleType, ...]) -> dict[str, OpDef]:
    ops: dict[str, OpDef] = {}
    for module in modules:
        for value in vars(module).values():
            if not isinstance(value, OpDef) or value.name in ops and ops[value.name] is value:
                continue  # an op imported from another module is that module's
            for name in (value.name, *value.aliases):
                if name in ops:
                    raise ValueError(f"op {name!r} is declared twice ({module.__name__})")
                ops[name] = value
    return ops


REGISTRY: dict[str, OpDef] = _collect(MODULES)
"""Op name (and alias) → its `OpDef`."""


def ops() -> list[OpDef]:
    """Every op once (aliases folded), in registry order."""
    return list({id(op): op for op in REGISTRY.values()}.values())


def has(op: str, trait: str) -> bool:
    """Whether the op called `op` has `trait`; False for a name the registry does not know."""
    found = REGISTRY.get(op)
    return found is not None and found.has(trait)


def ops_with(trait: str) -> tuple[str, ...]:
    """The names of the ops with `trait`, in registry order."""
    return tuple(op.name for op in ops() if op.has(trait))


def activations() -> tuple[OpDef, ...]:
    """The activations (ops with `maths`), in registry order: the fused epilogues' vocabulary."""
    return tuple(op for op in ops() if op.maths is not None)
