"""How sure a run's median is: a bootstrap interval over its per-round figures.

A goal ratio is the median of a dozen per-round ratios, and on a shared 2-vCPU machine
the rounds of one run spread by 0.2 and the same code's median moves by up to 0.05
between runs (bench/README.md). The interval says how far that run's rounds leave its
median uncertain, so a figure 0.01 under a goal reads as what it is."""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence

RESAMPLES = 2000
# Fewer rounds than this give no interval: a median of one or two rounds resamples to
# the rounds themselves.
MIN_ROUNDS = 3


def median_interval(
    values: Sequence[float], confidence: float = 0.95, seed: int = 0
) -> tuple[float, float] | None:
    """The percentile bootstrap interval of the median of `values`: the rounds drawn
    with replacement RESAMPLES times, the median of each draw, the central `confidence`
    of those medians. Seeded, so the same rounds always give the same interval; None
    for fewer than MIN_ROUNDS values."""
    if len(values) < MIN_ROUNDS:
        return None
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    draw = random.Random(seed).choices  # noqa: S311  # resampling, not a secret
    medians = sorted(statistics.median(draw(values, k=len(values))) for _ in range(RESAMPLES))
    tail = (1 - confidence) / 2
    low = medians[int(tail * RESAMPLES)]
    high = medians[min(RESAMPLES - 1, int((1 - tail) * RESAMPLES))]
    return low, high
