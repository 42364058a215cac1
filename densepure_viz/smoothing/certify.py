"""Randomized smoothing PREDICT and CERTIFY (Cohen, Rosenfeld & Kolter 2019, Alg. 1-2), any base classifier.

The base classifier is a function `(phase, draws) -> labels`: it classifies the noise draws with the
given indices of the current input (the draws themselves come from seeded streams, see `seeding`).
With DensePure as the base classifier this is DensePure's certification (Xiao et al. 2023, Thm. 3.4);
with the bare classifier on x + delta it is Cohen et al.; with one-shot denoising, Carlini et al. 2023.

CERTIFY: guess the top class cA from n0 selection draws, count it among n fresh estimation draws
(nA), take the one-sided (1 - alpha) Clopper-Pearson lower bound pA_lower of its probability, and
certify radius sigma * Phi^-1(pA_lower) when pA_lower > 1/2, else abstain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from scipy.stats import binomtest, norm

from densepure_viz.engine.seeding import Stream
from densepure_viz.errors import InputError
from densepure_viz.smoothing.bounds import lower_confidence_bound

BaseClassifier = Callable[[Stream, torch.Tensor], torch.Tensor]  # (phase, draw indices (m,)) -> labels (m,)
MAX_DRAWS = 100_000  # cap on n0 and n that keeps one request bounded


@dataclass(frozen=True)
class CertifyConfig:
    """Sample sizes and confidence of CERTIFY."""

    n0: int = 100  # selection draws (guess the top class)
    n: int = 1000  # estimation draws (bound its probability)
    alpha: float = 0.001  # failure probability of the certificate

    def __post_init__(self) -> None:
        for name in ("n0", "n"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 1 <= value <= MAX_DRAWS):
                raise InputError(f"{name} must be an integer in 1..{MAX_DRAWS}, got {value!r}")
        # Above 1/2 the one-sided bound at confidence 1 - alpha is not a bound: 1 - 2 alpha < 0 for scipy.
        if not (isinstance(self.alpha, float) and 0 < self.alpha <= 0.5):
            raise InputError(f"alpha must be in (0, 0.5], got {self.alpha!r}")


def certified_radius(p_lower: float, sigma: float) -> float:
    """sigma * Phi^-1(p_lower), the L2 radius of Cohen et al. Thm. 1 (0 when p_lower <= 1/2)."""
    return float(sigma * norm.ppf(p_lower)) if p_lower > 0.5 else 0.0


def max_certified_radius(n: int, alpha: float, sigma: float) -> float:
    """The largest radius n estimation draws can certify: all n agree, p_lower = alpha^(1/n) (what n buys)."""
    return certified_radius(lower_confidence_bound(n, n, alpha), sigma)


@dataclass
class RadiusPicture:
    """An input moved by exactly a certified L2 radius: what the radius means in pixels."""

    radius: float  # the certified L2 radius, on [0, 1] pixels
    values: int  # numbers in the input, C * H * W
    rms: float  # radius / sqrt(values): the change of every value were it spread evenly (root mean square)
    perturbed: torch.Tensor  # (C, H, W) in [0, 1], at L2 distance `reached` from the input
    reached: float  # L2 distance of `perturbed` from the input: `radius` unless the [0, 1] box cannot hold it
    stretch: float  # length the random unit direction was scaled to before clipping (>= radius)
    max_change: float  # the largest change of one value


def perturb_by_radius(x: torch.Tensor, radius: float, generator: torch.Generator, iters: int = 60) -> RadiusPicture:
    """x (C, H, W) in [0, 1] moved to L2 distance `radius` along a seeded random direction, inside [0, 1].

    The direction u is a standard normal draw of unit norm. Clipping x + s u to [0, 1] shortens the move
    where pixels saturate (a digit's white paper and black ink), so s is found by bisection such that
    ||clip(x + s u) - x|| = radius: the distance grows with s, from 0 to its value at s -> infinity, where
    every value sits at 0 or 1 (the farthest the box allows; `reached` < `radius` only then).
    """
    u = torch.randn(x.shape, generator=generator, dtype=torch.float64)
    u = u / u.norm()
    x64 = x.to(torch.float64).cpu()

    def moved(s: float) -> torch.Tensor:
        return (x64 + s * u).clamp(0, 1)

    def distance(s: float) -> float:
        return float((moved(s) - x64).norm())

    lo, hi = 0.0, max(radius, 1e-12)
    while distance(hi) < radius and hi < 1e6:
        lo, hi = hi, 2 * hi
    for _ in range(iters if distance(hi) >= radius else 0):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if distance(mid) < radius else (lo, mid)
    out = moved(hi)
    return RadiusPicture(radius=radius, values=x.numel(), rms=radius / x.numel() ** 0.5, perturbed=out.to(x.dtype),
                         reached=float((out - x64).norm()), stretch=hi, max_change=float((out - x64).abs().max()))


@dataclass
class CertifyResult:
    """A certificate (or abstention) for one input."""

    label: int | None  # certified class cA, None when abstaining
    radius: float  # certified L2 radius in input units, [0, 1] pixels for images (0 when abstaining)
    p_lower: float  # Clopper-Pearson lower bound on P(base = cA)
    count: int  # nA: estimation draws that voted for cA
    n: int  # estimation draws
    n0: int  # selection draws
    alpha: float  # failure probability
    sigma: float  # smoothing std
    guess: int  # cA, the selection phase's top class (reported even when abstaining)
    counts: list[int]  # estimation votes per class
    selection_counts: list[int]  # selection votes per class


@dataclass
class CertifyProgress:
    """Running counts while draws accumulate (no bound: a fixed-n bound read before n is not a certificate;
    `sequential` gives bounds valid at every moment)."""

    phase: Stream  # Stream.SELECT or Stream.ESTIMATE
    done: int  # draws classified so far in this phase
    total: int  # draws this phase will classify
    counts: list[int]  # votes per class so far in this phase


def count_votes(
    base: BaseClassifier, phase: Stream, start: int, stop: int, num_classes: int, chunk: int
) -> Iterator[tuple[int, torch.Tensor]]:
    """Classify draws start..stop-1 of `phase` in chunks; yield (draws done up to, votes per class (C,) so far)."""
    counts = torch.zeros(num_classes, dtype=torch.long)
    for draws in torch.arange(start, stop).split(chunk) if stop > start else ():
        counts += torch.bincount(base(phase, draws).view(-1).cpu(), minlength=num_classes)[:num_classes]
        yield int(draws[-1]) + 1, counts.clone()


def certify_stream(
    base: BaseClassifier, num_classes: int, sigma: float, cfg: CertifyConfig, chunk: int = 256
) -> Iterator[CertifyProgress | CertifyResult]:
    """CERTIFY with progress: yield CertifyProgress per chunk of draws, then the CertifyResult."""
    selection = torch.zeros(num_classes, dtype=torch.long)
    for done, selection in count_votes(base, Stream.SELECT, 0, cfg.n0, num_classes, chunk):
        yield CertifyProgress(Stream.SELECT, done, cfg.n0, selection.tolist())
    guess = int(selection.argmax())
    counts = torch.zeros(num_classes, dtype=torch.long)
    for done, counts in count_votes(base, Stream.ESTIMATE, 0, cfg.n, num_classes, chunk):
        yield CertifyProgress(Stream.ESTIMATE, done, cfg.n, counts.tolist())
    count = int(counts[guess])
    p_lower = lower_confidence_bound(count, cfg.n, cfg.alpha)
    certified = p_lower > 0.5
    yield CertifyResult(
        label=guess if certified else None,
        radius=certified_radius(p_lower, sigma),
        p_lower=p_lower,
        count=count,
        n=cfg.n,
        n0=cfg.n0,
        alpha=cfg.alpha,
        sigma=sigma,
        guess=guess,
        counts=counts.tolist(),
        selection_counts=selection.tolist(),
    )


def certify(base: BaseClassifier, num_classes: int, sigma: float, cfg: CertifyConfig, chunk: int = 256) -> CertifyResult:
    """CERTIFY without progress reports."""
    *_, result = certify_stream(base, num_classes, sigma, cfg, chunk)
    return result


def predict(base: BaseClassifier, num_classes: int, n: int, alpha: float, chunk: int = 256) -> int | None:
    """PREDICT: the top class of n draws, or None when a two-sided binomial test cannot tell it from the runner-up."""
    *_, (_, counts) = count_votes(base, Stream.ESTIMATE, 0, n, num_classes, chunk)
    top2 = counts.topk(min(2, num_classes))
    n_a, n_b = int(top2.values[0]), int(top2.values[1]) if num_classes > 1 else 0
    return int(top2.indices[0]) if binomtest(n_a, n_a + n_b, 0.5).pvalue <= alpha else None
