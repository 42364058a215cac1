"""Sequential CERTIFY: an anytime-valid confidence sequence for pA that stops as soon as it decides.

Fixed-n CERTIFY (Cohen, Rosenfeld & Kolter 2019; `certify`) commits to n draws and its Clopper-Pearson
bound is valid only at n: reading it after every batch and stopping when it looks good breaks the
guarantee. Here the bounds form a confidence sequence (Darling & Robbins 1967; Howard et al. 2021):
with probability at least 1 - alpha they hold at every number of draws at once, so the certificate
shown at any moment is a real certificate and stopping whenever we like is allowed (anchors:
Voracek 2024, arXiv 2406.17830; Cullen, Montague & Rubinstein 2026, arXiv 2606.27694; Chen et al.
2022, arXiv 2112.12084, all for randomized smoothing; DensePure, Xiao et al. 2023, is the base here).

Construction: Clopper-Pearson at geometrically spaced looks with alpha spent across them. The looks
n_1 < ... < n_J = N (first look, then x growth, ending at the budget N) are fixed before any draw,
and look j gets the one-sided exact bounds of Clopper & Pearson (1934) at level alpha / (J * F), F
the number of classes covered. A union bound over the J looks and F classes (Bonferroni; the
"stitching" of Howard et al. 2021, Sec. 3, with a finite horizon) makes every lower bound sit
below, and every upper bound above, its true proportion at every look with probability >= 1 - alpha.
Between looks the latest look's bounds stand, and the running max of the lower bounds (min of the
upper) is valid under the same event. Why this and not a betting e-process (Waudby-Smith & Ramdas
2023): it is a few lines of `scipy.stats.beta`, depends on counts only (so draws are batched and
vectorised freely), is exact rather than asymptotic, and with geometric looks costs only
log(J * F) in the exponent; e.g. an all-correct base certifies at R after
ln(alpha / (J F)) / ln Phi(R / sigma) draws, rounded up to the next look. Its price is that it
decides only at looks, and that it is valid up to the budget N, fixed in advance, not beyond it.

Choosing cA: by default (n0 = 0) there is no selection phase; the sequence covers all C classes
(F = C), so cA may be the running top class, re-chosen at every look, and no draw is spent only on
choosing. With n0 > 0, cA is the top class of n0 separate selection draws (as in CERTIFY) and only it
is covered (F = 1): cheaper in the bound when C is large, but n0 draws are spent before any look.
Estimation draws are `Stream.ESTIMATE` 0..N-1 and selection draws `Stream.SELECT` 0..n0-1, the very
draws of fixed-n CERTIFY, so a sequential run stopped at m draws has seen the first m of its draws.

Decisions at a target radius R (threshold Phi(R / sigma)), at the first look that decides:
"certified" when the lower bound of cA exceeds it, "not_certified" when its upper bound falls below
it, "abstain" when no covered class can reach 1/2 (the largest covered upper bound, cA's when n0 > 0
and every class's when F = C, is <= 1/2: no radius at all), "undecided" when the budget is spent
first. For R > 0 "not_certified" usually comes first, since the threshold exceeds 1/2. Without R the
run stops early only to abstain; it reports the running radius sigma * Phi^-1(lower), valid at every
look, and at the budget decides "certified" (lower > 1/2) or "undecided".
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.stats import norm

from densepure_viz.smoothing.bounds import clopper_pearson, lower_confidence_bound
from densepure_viz.smoothing.certify import MAX_DRAWS, BaseClassifier, certified_radius, count_votes
from densepure_viz.errors import InputError
from densepure_viz.engine.seeding import Stream

Decision = Literal["certified", "not_certified", "abstain", "undecided"]


@dataclass(frozen=True)
class SequentialConfig:
    """Budget, confidence, look schedule and target of sequential CERTIFY."""

    alpha: float = 0.001  # failure probability of the whole sequence (all looks, all covered classes)
    n: int = 1000  # budget N: the most estimation draws; the last look
    radius: float | None = None  # target L2 radius R to decide at; None: run to the budget (or abstain)
    n0: int = 0  # selection draws choosing cA; 0: no selection, the bounds cover every class
    first_look: int = 10  # draws at the first look
    growth: float = 1.5  # ratio of consecutive looks

    def __post_init__(self) -> None:
        if not (isinstance(self.n, int) and 1 <= self.n <= MAX_DRAWS):
            raise InputError(f"n must be an integer in 1..{MAX_DRAWS}, got {self.n!r}")
        if not (isinstance(self.n0, int) and 0 <= self.n0 <= MAX_DRAWS):
            raise InputError(f"n0 must be an integer in 0..{MAX_DRAWS}, got {self.n0!r}")
        if not (isinstance(self.alpha, float) and 0 < self.alpha <= 0.5):
            raise InputError(f"alpha must be in (0, 0.5], got {self.alpha!r}")
        if self.radius is not None and not (isinstance(self.radius, (int, float)) and 0 <= self.radius < math.inf):
            raise InputError(f"radius must be a finite number >= 0 or None, got {self.radius!r}")
        if not (isinstance(self.first_look, int) and self.first_look >= 1):
            raise InputError(f"first_look must be an integer >= 1, got {self.first_look!r}")
        if not (isinstance(self.growth, (int, float)) and self.growth > 1):
            raise InputError(f"growth must be > 1, got {self.growth!r}")


def look_schedule(budget: int, first: int, growth: float) -> np.ndarray:
    """Draw counts (J,) of the looks: ceil(first * growth^j), strictly increasing, the last equal to budget."""
    looks = [min(first, budget)]
    while looks[-1] < budget:
        looks.append(min(budget, max(looks[-1] + 1, math.ceil(looks[-1] * growth))))
    return np.asarray(looks, dtype=np.int64)


def look_alpha(alpha: float, num_looks: int, num_covered: int) -> float:
    """Level of each one-sided bound: alpha / (J * F), the union bound over J looks and F covered classes."""
    return alpha / (num_looks * num_covered)


def sequence_bounds(
    counts: np.ndarray, looks: np.ndarray, alpha: float, num_covered: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Anytime-valid bounds (..., J) from the counts (..., J) at the looks (J,) of a fixed schedule.

    Clopper-Pearson at level look_alpha at each look, then the running max of the lower bounds and the
    running min of the upper bounds: with probability >= 1 - alpha (over the num_covered proportions
    together) every lower bound is <= p and every upper bound >= p (module docstring).
    """
    lower, upper = clopper_pearson(counts, looks, look_alpha(alpha, len(looks), num_covered))
    return np.maximum.accumulate(lower, axis=-1), np.minimum.accumulate(upper, axis=-1)


@dataclass
class SequentialProgress:
    """State at one look; every bound and radius here is valid (anytime), not a preview."""

    look: int  # index j of the look, from 0
    draws: int  # estimation draws classified so far (n_j)
    budget: int  # N
    counts: list[int]  # estimation votes per class so far
    top_class: int  # cA at this look
    p_lower: float  # anytime-valid lower bound on P(base = cA)
    p_upper: float  # anytime-valid upper bound on P(base = cA)
    radius: float  # sigma * Phi^-1(p_lower), 0 when p_lower <= 1/2: a valid certified radius now


@dataclass
class SequentialResult:
    """Outcome of sequential CERTIFY for one input."""

    decision: Decision  # at cfg.radius (module docstring); without a radius, certified means radius > 0
    draws_used: int  # estimation draws classified (selection draws are in n0)
    label: int | None  # cA when p_lower > 1/2 (certified at `radius`), None otherwise
    top_class: int  # cA, also when abstaining
    radius: float  # L2 radius the bound supports at stop: sigma * Phi^-1(p_lower), 0 when p_lower <= 1/2
    target_radius: float | None  # R decided at (cfg.radius)
    p_lower: float  # anytime-valid lower bound on P(base = cA) at stop
    p_upper: float  # anytime-valid upper bound on P(base = cA) at stop
    counts: list[int]  # estimation votes per class
    selection_counts: list[int]  # selection votes per class (empty when n0 = 0)
    n: int  # budget N
    n0: int  # selection draws
    alpha: float  # failure probability of the sequence
    sigma: float  # smoothing std


def _votes(base: BaseClassifier, phase: Stream, start: int, stop: int, num_classes: int, chunk: int) -> torch.Tensor:
    """Votes per class (C,) of draws start..stop-1 of `phase` (zeros for none: n0 = 0 has no selection draws)."""
    counts = torch.zeros(num_classes, dtype=torch.long)
    for _, counts in count_votes(base, phase, start, stop, num_classes, chunk):
        pass
    return counts


def _decide(p_lower: float, p_upper: float, best_upper: float, threshold: float, targeted: bool, final: bool) -> Decision | None:
    """The decision at one look, or None to keep drawing (module docstring); best_upper: the largest
    upper bound among the covered classes (no covered class can be certified when it is <= 1/2)."""
    if best_upper <= 0.5:
        return "abstain"
    if (targeted or final) and p_lower > threshold:
        return "certified"
    if targeted and p_upper < threshold:
        return "not_certified"
    return "undecided" if final else None


def _looks(
    base: BaseClassifier, num_classes: int, sigma: float, cfg: SequentialConfig, selection: torch.Tensor, chunk: int
) -> Iterator[tuple[SequentialProgress, float]]:
    """Draw up to each look of the schedule and yield its SequentialProgress with the largest upper bound among
    the covered classes (what `_decide` needs to abstain); the caller stops the draws by stopping iteration."""
    looks = look_schedule(cfg.n, cfg.first_look, cfg.growth)
    level = look_alpha(cfg.alpha, len(looks), num_classes if cfg.n0 == 0 else 1)
    counts = torch.zeros(num_classes, dtype=torch.long)
    lower, upper = np.zeros(num_classes), np.ones(num_classes)  # running bounds of every class (C,)
    done = 0
    for j, look in enumerate(looks.tolist()):
        counts += _votes(base, Stream.ESTIMATE, done, look, num_classes, chunk)
        done = look
        low, up = clopper_pearson(counts.numpy(), look, level)
        lower, upper = np.maximum(lower, low), np.minimum(upper, up)
        top = int(counts.argmax() if cfg.n0 == 0 else selection.argmax())
        p_lower, p_upper = float(lower[top]), float(upper[top])
        progress = SequentialProgress(j, look, cfg.n, counts.tolist(), top, p_lower, p_upper,
                                      certified_radius(p_lower, sigma))
        yield progress, float(upper.max()) if cfg.n0 == 0 else p_upper


def _result(
    at: SequentialProgress, decision: Decision, target: float | None, cfg: SequentialConfig, selection: torch.Tensor,
    sigma: float,
) -> SequentialResult:
    """The SequentialResult of a run that decided `decision` at target radius `target` at look `at`."""
    return SequentialResult(
        decision=decision,
        draws_used=at.draws,
        label=at.top_class if at.p_lower > 0.5 else None,
        top_class=at.top_class,
        radius=at.radius,
        target_radius=target,
        p_lower=at.p_lower,
        p_upper=at.p_upper,
        counts=at.counts,
        selection_counts=selection.tolist() if cfg.n0 else [],
        n=cfg.n,
        n0=cfg.n0,
        alpha=cfg.alpha,
        sigma=sigma,
    )


def _threshold(radius: float | None, sigma: float) -> float:
    """Phi(R / sigma): the probability cA must provably exceed to certify radius R (1/2 without a target)."""
    return float(norm.cdf((radius or 0.0) / sigma))


def sequential_certify_stream(
    base: BaseClassifier, num_classes: int, sigma: float, cfg: SequentialConfig, chunk: int = 256
) -> Iterator[SequentialProgress | SequentialResult]:
    """Sequential CERTIFY: draw up to each look, yield its SequentialProgress, stop when decided; then the result."""
    selection = _votes(base, Stream.SELECT, 0, cfg.n0, num_classes, chunk)
    threshold = _threshold(cfg.radius, sigma)
    for progress, best_upper in _looks(base, num_classes, sigma, cfg, selection, chunk):
        yield progress
        decision = _decide(progress.p_lower, progress.p_upper, best_upper, threshold, cfg.radius is not None,
                           progress.draws == cfg.n)
        if decision is not None:
            yield _result(progress, decision, cfg.radius, cfg, selection, sigma)
            return


def sequential_certify_radii(
    base: BaseClassifier, num_classes: int, sigma: float, cfg: SequentialConfig, radii: Sequence[float],
    chunk: int = 256,
) -> list[SequentialResult]:
    """Sequential CERTIFY deciding at each target radius of `radii` from one pass over the draws.

    The looks, draws and bounds do not depend on the target, so result i equals sequential_certify with
    radius radii[i] (cfg.radius is ignored), draws_used included; the draws are paid once, up to the look
    where the last radius is decided (what `evaluate --sequential` uses).
    """
    selection = _votes(base, Stream.SELECT, 0, cfg.n0, num_classes, chunk)
    thresholds = [_threshold(radius, sigma) for radius in radii]
    decided: dict[int, SequentialResult] = {}
    for progress, best_upper in _looks(base, num_classes, sigma, cfg, selection, chunk):
        for i, radius in enumerate(radii):
            if i in decided:
                continue
            decision = _decide(progress.p_lower, progress.p_upper, best_upper, thresholds[i], True,
                               progress.draws == cfg.n)
            if decision is not None:
                decided[i] = _result(progress, decision, radius, cfg, selection, sigma)
        if len(decided) == len(radii):
            break
    return [decided[i] for i in range(len(radii))]


def fixed_n_lower(counts: list[int], top_class: int, draws: int, alpha: float) -> float:
    """The fixed-n Clopper-Pearson bound on the same draws: what CERTIFY would report had n = `draws` been
    fixed in advance. Read after every look it is not valid (peeking); its gap to the sequence's lower
    bound is the price of a certificate that holds at every moment."""
    return lower_confidence_bound(counts[top_class], draws, alpha)


@dataclass
class LowerBoundCurve:
    """Fixed-n CERTIFY's answer for every possible count: p_lower and the radius against nA = 0..n."""

    n: int  # estimation draws
    alpha: float  # failure probability
    sigma: float  # smoothing std: radius = sigma * Phi^-1(p_lower)
    counts: np.ndarray  # (n + 1,) nA = 0..n
    p_lower: np.ndarray  # (n + 1,) one-sided (1 - alpha) Clopper-Pearson lower bound of nA / n
    radius: np.ndarray  # (n + 1,) certified radius (0 where p_lower <= 1/2: abstain)

    @property
    def first_certified(self) -> int | None:
        """The smallest count that certifies (p_lower > 1/2), None when even nA = n cannot."""
        above = np.flatnonzero(self.p_lower > 0.5)
        return int(above[0]) if above.size else None

    def level(self, radius: float) -> float:
        """The p_lower that certifies `radius`: Phi(radius / sigma) (1/2 for radius 0)."""
        return float(norm.cdf(radius / self.sigma))


def lower_bound_curve(n: int, alpha: float, sigma: float) -> LowerBoundCurve:
    """p_lower and the radius against the count nA for n draws at level alpha (what the count buys)."""
    counts = np.arange(n + 1)
    lower, _ = clopper_pearson(counts, n, alpha)
    radius = np.where(lower > 0.5, sigma * norm.ppf(np.clip(lower, 0.5, 1.0)), 0.0)
    return LowerBoundCurve(n, alpha, sigma, counts, lower, radius)


def sequential_certify(
    base: BaseClassifier, num_classes: int, sigma: float, cfg: SequentialConfig, chunk: int = 256
) -> SequentialResult:
    """Sequential CERTIFY without progress reports."""
    *_, result = sequential_certify_stream(base, num_classes, sigma, cfg, chunk)
    return result
