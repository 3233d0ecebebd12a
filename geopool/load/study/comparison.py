"""Run-to-run statistics: percentile and throughput differences between two runs, with confidence intervals.

Method: a **moving-block bootstrap** with percentile intervals, computed with numpy.

- Why a bootstrap, not only a rank test: the question a release gate asks is "how many ms slower is
  p50 / p95", and a percentile has no simple sampling distribution. The bootstrap gives an interval
  for each percentile's difference directly, in ms and relative to the base, which is what the
  threshold is stated in. A Mann-Whitney U test (scipy) is reported beside it as a check for a shift
  of the whole distribution, but it does not decide the verdict: it says *whether*, not *how much*,
  and its p-value assumes independent samples, which (below) requests of one run are not.
- Why blocks: consecutive requests of one run share the server's state (its batch, its queue, a
  neighbour's load on the CPU, a GC pause), so their latencies are autocorrelated. An i.i.d.
  resample (``scipy.stats.bootstrap``, percentile or BCa) counts n correlated samples as n
  independent ones; its intervals come out too narrow and call slow drift a regression. Resampling
  blocks of consecutive requests (in completion order, circular, ``ceil(sqrt(n))`` long: longer than
  the n^(1/3) that is optimal for independent-ish data, to stay conservative) keeps that dependence
  inside each resample. The two runs are resampled independently (they are separate runs).
- Percentile interval, not BCa: BCa's acceleration is estimated by the jackknife, which is not valid
  for blocks of dependent data; the percentile interval is.
- Throughput: the run's measured span cut into equal windows (5-30, about 10 completions each); the
  window rates are block-bootstrapped like latencies and the interval is for the mean rate's ratio.
- Which percentiles: those the smaller run has at least :data:`TAIL_SAMPLES` samples beyond (p99
  needs 500); a bootstrap of a percentile past the last few samples only resamples the maximum.

Verdict of one figure (a "worse" direction: latency up, throughput down): **regressed** when the
interval of the relative change excludes 0 (significant at the stated level) *and* the point
estimate is worse than ``threshold``; **improved** likewise in the better direction; otherwise **no
significant change** (a significant change smaller than the threshold says so in its note). What no
interval from within two runs can see is a change of the machine between them (another process on a
shared box): the threshold is there for that, and its default :data:`DEFAULT_THRESHOLD` is 10 %.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["DEFAULT_CONFIDENCE", "DEFAULT_THRESHOLD", "IMPROVED", "NO_CHANGE", "REGRESSED", "RESAMPLES",
           "TAIL_SAMPLES", "block_resample_indices", "compare_latencies", "compare_throughput",
           "comparable_percentiles", "overall_verdict", "shift_test", "window_rates"]

REGRESSED, IMPROVED, NO_CHANGE = "regressed", "improved", "no significant change"
DEFAULT_CONFIDENCE = 0.95
DEFAULT_THRESHOLD = 0.10
RESAMPLES = 2000
#: A percentile is compared only when each run has this many samples beyond it (on the thinner side).
TAIL_SAMPLES = 5
CANDIDATE_PERCENTILES = (50.0, 90.0, 95.0, 99.0)
MIN_WINDOWS, MAX_WINDOWS, PER_WINDOW = 5, 30, 10


def block_length(n: int) -> int:
    return max(1, math.ceil(math.sqrt(n)))


def block_resample_indices(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``resamples`` rows of ``n`` indices, each the concatenation of circular blocks of consecutive indices."""
    length = block_length(n)
    blocks = math.ceil(n / length)
    starts = rng.integers(0, n, size=(resamples, blocks, 1))
    return ((starts + np.arange(length)) % n).reshape(resamples, blocks * length)[:, :n]


def comparable_percentiles(n_base: int, n_new: int) -> list[float]:
    """The percentiles both runs have enough samples for (see :data:`TAIL_SAMPLES`)."""
    n = min(n_base, n_new)
    return [p for p in CANDIDATE_PERCENTILES if n * min(p, 100 - p) / 100 >= TAIL_SAMPLES]


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return float(low), float(high)


def _judge(relative: float, low: float, high: float, threshold: float, worse_is_higher: bool) -> tuple[str, str]:
    """Verdict and a note for one figure, from the point estimate and the interval of its relative change."""
    sign = 1.0 if worse_is_higher else -1.0
    worse_low, worse_high = sorted((sign * low, sign * high))
    worse = sign * relative
    if worse_low > 0 and worse > threshold:
        return REGRESSED, f"worse by {abs(relative):.1%} (> {threshold:.0%}), interval excludes no change"
    if worse_high < 0 and -worse > threshold:
        return IMPROVED, f"better by {abs(relative):.1%} (> {threshold:.0%}), interval excludes no change"
    if worse_low > 0 or worse_high < 0:
        return NO_CHANGE, f"significant but within the {threshold:.0%} threshold ({relative:+.1%})"
    return NO_CHANGE, "interval includes no change"


def compare_latencies(base_ms: Sequence[float], new_ms: Sequence[float], *, confidence: float = DEFAULT_CONFIDENCE,
                      threshold: float = DEFAULT_THRESHOLD, resamples: int = RESAMPLES,
                      seed: int = 0) -> list[dict[str, Any]]:
    """One row per comparable percentile: both runs' values, the difference (ms, relative) with its interval,
    and the verdict. Samples must be in completion order (the blocks are runs of consecutive requests)."""
    base, new = np.asarray(base_ms, dtype=float), np.asarray(new_ms, dtype=float)
    percentiles = comparable_percentiles(len(base), len(new))
    if not percentiles:
        return []
    rng = np.random.default_rng(seed)
    boot_base = np.percentile(base[block_resample_indices(len(base), resamples, rng)], percentiles, axis=1)
    boot_new = np.percentile(new[block_resample_indices(len(new), resamples, rng)], percentiles, axis=1)
    rows = []
    for i, p in enumerate(percentiles):
        base_value, new_value = float(np.percentile(base, p)), float(np.percentile(new, p))
        difference = new_value - base_value
        relative = new_value / base_value - 1 if base_value > 0 else math.inf
        diff_low, diff_high = _interval(boot_new[i] - boot_base[i], confidence)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel_low, rel_high = _interval(boot_new[i] / boot_base[i] - 1, confidence)
        verdict, note = _judge(relative, rel_low, rel_high, threshold, worse_is_higher=True)
        rows.append({"figure": f"p{p:g}", "unit": "ms", "base": base_value, "new": new_value,
                     "difference": difference, "interval": [diff_low, diff_high], "relative": relative,
                     "relative_interval": [rel_low, rel_high], "verdict": verdict, "note": note})
    return rows


def window_rates(done: Sequence[float], start: float) -> np.ndarray:
    """Completions per second in equal windows from ``start`` to the last completion (about
    :data:`PER_WINDOW` each, 5-30 windows); empty when there are too few completions for 5 windows."""
    times = np.sort(np.asarray(done, dtype=float))
    count = min(MAX_WINDOWS, len(times) // PER_WINDOW)
    if count < MIN_WINDOWS or not len(times) or times[-1] <= start:
        return np.array([])
    edges = np.linspace(start, times[-1], count + 1)
    edges[-1] = np.nextafter(edges[-1], math.inf)  # the last completion belongs to the last window
    return np.histogram(times, edges)[0] / np.diff(edges)


def compare_throughput(base_rates: Sequence[float], new_rates: Sequence[float], *,
                       confidence: float = DEFAULT_CONFIDENCE, threshold: float = DEFAULT_THRESHOLD,
                       resamples: int = RESAMPLES, seed: int = 1) -> dict[str, Any] | None:
    """The mean window rate of both runs, its difference and relative change with intervals, the verdict;
    None when either run has too few windows."""
    base, new = np.asarray(base_rates, dtype=float), np.asarray(new_rates, dtype=float)
    if len(base) < MIN_WINDOWS or len(new) < MIN_WINDOWS:
        return None
    rng = np.random.default_rng(seed)
    boot_base = base[block_resample_indices(len(base), resamples, rng)].mean(axis=1)
    boot_new = new[block_resample_indices(len(new), resamples, rng)].mean(axis=1)
    base_value, new_value = float(base.mean()), float(new.mean())
    relative = new_value / base_value - 1 if base_value > 0 else math.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_low, rel_high = _interval(boot_new / boot_base - 1, confidence)
    verdict, note = _judge(relative, rel_low, rel_high, threshold, worse_is_higher=False)
    return {"figure": "throughput", "unit": "req/s", "base": base_value, "new": new_value,
            "difference": new_value - base_value, "interval": list(_interval(boot_new - boot_base, confidence)),
            "relative": relative, "relative_interval": [rel_low, rel_high], "verdict": verdict, "note": note,
            "windows": [len(base), len(new)]}


def shift_test(base_ms: Sequence[float], new_ms: Sequence[float]) -> dict[str, Any] | None:
    """Mann-Whitney U (two-sided) and the probability that a new request is slower than a base one
    (0.5: no shift). Informational: its p-value assumes independent samples."""
    from scipy.stats import mannwhitneyu

    if len(base_ms) < 2 or len(new_ms) < 2:
        return None
    result = mannwhitneyu(new_ms, base_ms, alternative="two-sided")
    return {"test": "Mann-Whitney U, two-sided", "u": float(result.statistic), "p_value": float(result.pvalue),
            "p_new_slower": float(result.statistic) / (len(base_ms) * len(new_ms))}


def overall_verdict(rows: Sequence[dict[str, Any]]) -> str:
    """Regressed if any figure regressed; else improved if any improved; else no significant change."""
    verdicts = {row["verdict"] for row in rows}
    return REGRESSED if REGRESSED in verdicts else IMPROVED if IMPROVED in verdicts else NO_CHANGE
