"""benchstats: how sure a median of per-round ratios is, for the compare-* scripts.

On a small shared machine single rounds of one server vary by tens of percent, so "the
median of the per-round ratios is 1.03" says little by itself. median_interval() adds a
percentile bootstrap interval for that median: the rounds are resampled with replacement
(seeded, so a run's report is reproducible) and the median taken each time. Where the
interval straddles a target, the rounds cannot decide it; more rounds narrow it.

Python 3 standard library only; imported from the scripts' own directory.
"""

import random
import statistics


def median_interval(values, level=0.90, resamples=4000, seed=1):
    """(low, high) of a `level` percentile bootstrap interval for the median of `values`,
    or None with fewer than 3 values (no interval worth the name)."""
    values = [v for v in values if v is not None]
    if len(values) < 3:
        return None
    rng = random.Random(seed)
    n = len(values)
    medians = sorted(statistics.median(rng.choices(values, k=n)) for _ in range(resamples))
    tail = (1.0 - level) / 2.0
    low = medians[int(tail * (resamples - 1))]
    high = medians[int((1.0 - tail) * (resamples - 1))]
    return low, high


def format_interval(interval, spec="{:.3f}"):
    if interval is None:
        return "n/a"
    return "[" + spec.format(interval[0]) + ", " + spec.format(interval[1]) + "]"
