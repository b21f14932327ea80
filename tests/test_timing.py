"""Stage timing: nested stages are keyed by their path, listed in the order they started, add up
when a stage runs twice, and record nothing when no clock is installed."""

from __future__ import annotations

import time

from tunewright.timing import recording, stage, timing_rows


def test_nested_stages_are_recorded_by_path_in_start_order() -> None:
    seconds: dict[str, float] = {}
    with recording(seconds):
        with stage("baselines"):
            with stage("zero_shot"):
                time.sleep(0.01)
            with stage("few_shot"):
                time.sleep(0.02)
        with stage("baselines"), stage("zero_shot"):
            time.sleep(0.01)
    assert list(seconds) == ["baselines", "baselines/zero_shot", "baselines/few_shot"]
    assert seconds["baselines/zero_shot"] >= 0.02 and seconds["baselines/few_shot"] >= 0.02
    assert seconds["baselines"] >= seconds["baselines/zero_shot"] + seconds["baselines/few_shot"]
    rows = {name: share for name, _, share in timing_rows(seconds)}
    assert rows["baselines"] == 1.0 and 0 < rows["baselines/few_shot"] < 1


def test_without_a_clock_stages_only_run_their_block() -> None:
    ran = []
    with stage("data"):
        ran.append(1)
    seconds: dict[str, float] = {}
    with recording(seconds):
        pass
    assert ran == [1] and seconds == {}
