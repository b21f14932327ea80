"""The baseline registry and the config agree: every name the config accepts has a baseline, and
every registered baseline can be chosen in the config."""

from __future__ import annotations

from typing import get_args

from tunewright.config import BaselineName, EvalConfig
from tunewright.evaluate.baselines import BASELINES


def test_every_configurable_baseline_is_registered_and_the_default_runs_them_all() -> None:
    assert set(BASELINES) == set(get_args(BaselineName))
    assert EvalConfig().candidates == list(BASELINES)
