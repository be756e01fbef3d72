"""The Triton backend's op table (cnndsl/backends/triton/table.py) covers the whole op registry."""

from cnndsl.backends.triton.launcher import _LAUNCH
from cnndsl.backends.triton.table import FALLBACKS, TABLE, TRITON_OPS
from cnndsl.ir.registry import REGISTRY


def test_every_registry_op_is_lowered_or_a_declared_fallback():
    ops = {op.name for op in REGISTRY.values()}
    missing = sorted(op for op in ops if op not in TRITON_OPS and not FALLBACKS.get(op))
    assert not missing, f"ops neither lowered by the Triton backend nor declared a torch fallback: {missing}"
    assert set(TABLE) <= ops, f"the table names ops the registry lacks: {sorted(set(TABLE) - ops)}"


def test_every_op_has_a_rule_that_always_applies():
    """The last rule of each op has no predicate, so every node gets one (a torch fallback at worst)."""
    for op, rules in TABLE.items():
        assert rules and rules[-1].when is None, op
        assert all(r.kind in ("triton", "view", "input", "none", "torch") for r in rules), op
        assert all(bool(r.reason) == (r.kind == "torch") for r in rules), op


def test_launcher_binds_every_family():
    assert {r.family for rules in TABLE.values() for r in rules} == set(_LAUNCH)
