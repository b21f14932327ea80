"""The baseline registries and the config agree: every name the config accepts has a baseline (a
prompting one in `evaluate/baselines.py`, or an embedding classifier), and every registered baseline
can be chosen in the config."""

from __future__ import annotations

from typing import get_args

from tunewright.config import EMBEDDING_BASELINES, BaselineName, EvalConfig
from tunewright.evaluate.baselines import BASELINES


def test_every_configurable_baseline_is_registered_and_the_default_runs_them_all() -> None:
    registered = [*BASELINES, *EMBEDDING_BASELINES]
    assert len(set(registered)) == len(registered)
    assert set(registered) == set(get_args(BaselineName))
    assert EvalConfig().candidates == registered
