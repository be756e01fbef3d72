"""Shared set-up of the Hypothesis tests: the zoo's files, example budgets and profiles.

`HYPOTHESIS_PROFILE=thorough pytest tests/test_properties.py tests/test_fuzz.py` runs many more
examples than CI does.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "zoo"
ZOO_FILES = sorted(ZOO.glob("*.cnn")) + sorted(ZOO.glob("variants/*.cnn"))
LIB_FILES = sorted((ZOO / "lib").glob("*.cnn"))
SEARCH = [str(ZOO), str(ZOO / "lib")]
assert ZOO_FILES and LIB_FILES

settings.register_profile("thorough", deadline=None, max_examples=2000)
THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"
# Issue 5: a malformed input compiles or fails within a second, never hangs.
ONE_SECOND = timedelta(seconds=1)


def budget(default: int, thorough: int, deadline: timedelta | None = None) -> settings:
    """Per-test settings: `default` examples normally, `thorough` under HYPOTHESIS_PROFILE=thorough."""
    return settings(
        max_examples=thorough if THOROUGH else default,
        deadline=deadline,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
