"""Binomial confidence bounds: the one Clopper-Pearson bound of fixed-n and sequential CERTIFY, and the study's
Wilson interval for reported accuracies.

Clopper & Pearson (1934) in closed form: the one-sided (1 - alpha) lower bound of count successes in n trials
is the alpha quantile of Beta(count, n - count + 1) (0 when count = 0), the upper bound the 1 - alpha quantile
of Beta(count + 1, n - count) (1 when count = n). `scipy.stats.beta.ppf` evaluates it elementwise, so a scalar
certificate and a whole sequence of looks come from the same numbers.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import beta, binomtest


def clopper_pearson(count: np.ndarray | int, n: np.ndarray | int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """One-sided (1 - alpha) exact lower and upper bounds on a binomial proportion, elementwise over broadcast
    arrays (see the module docstring)."""
    count, n = np.broadcast_arrays(np.asarray(count, dtype=np.float64), np.asarray(n, dtype=np.float64))
    with np.errstate(invalid="ignore"):  # the out-of-domain edges are replaced below
        lower = np.where(count > 0, beta.ppf(alpha, count, n - count + 1), 0.0)
        upper = np.where(count < n, beta.ppf(1 - alpha, count + 1, n - count), 1.0)
    return lower, upper


def lower_confidence_bound(count: int, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) Clopper-Pearson lower bound of count / n (0 when count is 0): CERTIFY's pA_lower."""
    return float(clopper_pearson(count, n, alpha)[0])


def wilson_interval(hits: int, n: int, confidence: float) -> tuple[float, float]:
    """Two-sided Wilson score interval (Wilson 1927) of hits / n: the study's accuracy intervals (a report of
    an estimate, not a certificate: shorter than the exact interval and close to its stated coverage)."""
    ci = binomtest(hits, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)
