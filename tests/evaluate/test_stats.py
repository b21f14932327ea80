"""Paired bootstrap intervals: seeded, paired, and wide or narrow where they should be."""

from __future__ import annotations

from tunewright.evaluate.stats import bootstrap_indices, mean_of, paired_difference


def test_resamples_are_seeded() -> None:
    assert bootstrap_indices(20, 5, seed=3) == bootstrap_indices(20, 5, seed=3)
    assert bootstrap_indices(20, 5, seed=3) != bootstrap_indices(20, 5, seed=4)


def test_identical_candidates_have_a_zero_width_interval_at_zero() -> None:
    values = [1.0, 0.0, 1.0, 1.0, 0.0] * 8
    samples = bootstrap_indices(len(values), 200, seed=0)
    result = paired_difference("m", "a", "b", mean_of(values), mean_of(values), len(values), samples)
    assert result is not None and result.difference == 0.0 and result.ci95 == (0.0, 0.0)


def test_a_clear_win_excludes_zero_and_a_coin_flip_does_not() -> None:
    rows = 200
    samples = bootstrap_indices(rows, 500, seed=0)
    tuned, base = [1.0] * rows, [float(i % 2) for i in range(rows)]
    clear = paired_difference("m", "a", "b", mean_of(tuned), mean_of(base), rows, samples)
    assert clear is not None and clear.difference == 0.5 and clear.ci95[0] > 0.4
    flip = [float((i // 2) % 2) for i in range(rows)]  # as often right as base, on other rows
    noisy = paired_difference("m", "a", "b", mean_of(flip), mean_of(base), rows, samples)
    assert noisy is not None and noisy.ci95[0] < 0 < noisy.ci95[1]


def test_missing_values_give_no_comparison() -> None:
    samples = bootstrap_indices(3, 10, seed=0)
    assert paired_difference("m", "a", "b", mean_of([None] * 3), mean_of([1.0] * 3), 3, samples) is None
