"""bench/stats.py: the bootstrap interval `make bench` prints beside each goal ratio."""

from __future__ import annotations

import statistics

import pytest

from bench.stats import MIN_ROUNDS, median_interval

# Per-round ratios of full on /api/items/{id} as one 12-round run gave them.
ROUNDS = [0.74, 0.77, 0.78, 0.79, 0.79, 0.8, 0.81, 0.81, 0.82, 0.85, 0.9, 0.95]


def test_the_interval_holds_the_median_and_lies_within_the_rounds() -> None:
    interval = median_interval(ROUNDS)
    assert interval is not None
    low, high = interval
    assert min(ROUNDS) <= low < statistics.median(ROUNDS) < high <= max(ROUNDS)


def test_the_same_rounds_give_the_same_interval() -> None:
    assert median_interval(ROUNDS) == median_interval(list(ROUNDS))


def test_steadier_rounds_give_a_narrower_interval() -> None:
    steady = [0.8 + (value - 0.8) / 4 for value in ROUNDS]
    wide, narrow = median_interval(ROUNDS), median_interval(steady)
    assert wide is not None and narrow is not None
    assert narrow[1] - narrow[0] < wide[1] - wide[0]


def test_identical_rounds_leave_no_doubt() -> None:
    assert median_interval([0.8] * 10) == (0.8, 0.8)


def test_too_few_rounds_give_no_interval() -> None:
    assert median_interval(ROUNDS[: MIN_ROUNDS - 1]) is None
    assert median_interval(ROUNDS[:MIN_ROUNDS]) is not None


@pytest.mark.parametrize("confidence", [0, 1, 1.5])
def test_a_confidence_outside_zero_to_one_is_refused(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        median_interval(ROUNDS, confidence)
