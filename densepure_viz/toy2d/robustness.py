"""Certified L2 balls of randomized smoothing versus DensePure's robust regions, in 2D.

Certification follows Cohen et al. (2019, CERTIFY): n0 noisy copies pick the class c_A, n more count
it, the one-sided Clopper-Pearson bound pA_lower at level alpha gives the radius
sigma * Phi^-1(pA_lower), and the smoothed classifier abstains when pA_lower < 1/2. The base classifier
is one of the four of `regions` (default (d), DensePure's majority vote with its exact label masses).
The robust region of x0 (DensePure, Xiao et al., ICLR 2023, Sec. 3) is the connected region of map
(c), the highest-density-point labels, that contains x0; it can be far larger than the ball.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.stats import binomtest, norm

from .mixture import GaussianMixture
from .regions import GridSpec, Labeler, RegionMaps, classify, grid_cell


@dataclass
class Certificate:
    """Randomized-smoothing prediction and certified radius at one point."""

    point: np.ndarray  # (2,) where the smoothed classifier was evaluated
    label: int | None  # c_A, or None when abstaining
    radius: float  # certified L2 radius sigma * Phi^-1(pA_lower); 0 when abstaining
    p_a_lower: float  # one-sided (1 - alpha) Clopper-Pearson lower bound on P(f(x + delta) = c_A)
    counts: np.ndarray  # (C,) labels of the n estimation samples
    sigma: float  # smoothing std
    alpha: float  # failure probability of the bound


def certify(
    mixture: GaussianMixture,
    point: np.ndarray,
    sigma: float,
    rng: np.random.Generator,
    n: int = 1000,
    n0: int = 100,
    alpha: float = 0.001,
    labeler: Labeler = "vote",
) -> Certificate:
    """Cohen et al.'s CERTIFY for the smoothed version of one base classifier, noise from rng."""
    x = np.asarray(point, dtype=np.float64).reshape(2)

    def sample_counts(num: int) -> np.ndarray:
        noisy = x + sigma * rng.standard_normal((num, 2))
        return np.bincount(classify(mixture, noisy, sigma, labeler), minlength=mixture.num_classes)

    c_a = int(sample_counts(n0).argmax())
    counts = sample_counts(n)
    p_lower = float(binomtest(int(counts[c_a]), n).proportion_ci(1.0 - 2.0 * alpha, method="exact").low)
    certified = p_lower > 0.5
    return Certificate(
        point=x,
        label=c_a if certified else None,
        radius=float(sigma * norm.ppf(p_lower)) if certified else 0.0,
        p_a_lower=p_lower,
        counts=counts,
        sigma=float(sigma),
        alpha=alpha,
    )


def _connected_region(labels: np.ndarray, cell: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the 4-connected region of equal labels containing cell."""
    components, _ = ndimage.label(labels == labels[cell])
    return components == components[cell]


@dataclass
class RobustRegion:
    """x0's robust region (map (c)) against the certified balls of the smoothed vote (map (d))."""

    x0: np.ndarray  # (2,) clean point
    x_a: np.ndarray  # (2,) adversarial point
    label: int  # map (c) label of x0's cell
    mask: np.ndarray  # (H, W) bool, connected region of map (c) containing x0
    area: float  # area of mask
    certificate: Certificate  # smoothed vote at x0: the ball compared with the region
    certificate_x_a: Certificate  # smoothed vote at x_a
    ball_area: float  # pi * certificate.radius^2
    x_a_in_region: bool  # x_a's cell lies in mask
    x_a_in_ball: bool  # |x_a - x0| < certificate.radius


def robust_region(
    mixture: GaussianMixture,
    maps: RegionMaps,
    x0: np.ndarray,
    x_a: np.ndarray,
    rng: np.random.Generator,
    n: int = 1000,
    n0: int = 100,
    alpha: float = 0.001,
) -> RobustRegion:
    """Robust region of x0 on the maps' grid, and certificates at x0 and x_a (at maps.sigma)."""
    x0 = np.asarray(x0, dtype=np.float64).reshape(2)
    x_a = np.asarray(x_a, dtype=np.float64).reshape(2)
    cell = maps.cell_of(x0)
    mask = _connected_region(maps.mode, cell)
    cert = certify(mixture, x0, maps.sigma, rng, n, n0, alpha)
    return RobustRegion(
        x0=x0,
        x_a=x_a,
        label=int(maps.mode[cell]),
        mask=mask,
        area=float(mask.sum() * maps.cell_area),
        certificate=cert,
        certificate_x_a=certify(mixture, x_a, maps.sigma, rng, n, n0, alpha),
        ball_area=float(np.pi * cert.radius**2),
        x_a_in_region=bool(mask[maps.cell_of(x_a)]),
        x_a_in_ball=bool(np.linalg.norm(x_a - x0) < cert.radius),
    )


@dataclass
class SigmaSweep:
    """Map (c) and x0's robust region for several sigmas on one grid (frames of a slider)."""

    xs: np.ndarray  # (W,) grid x coordinates
    ys: np.ndarray  # (H,) grid y coordinates
    x0: np.ndarray  # (2,) clean point whose region is tracked
    num_classes: int  # C
    sigmas: np.ndarray  # (S,) smoothing stds, one per frame
    mode_labels: np.ndarray  # (S, H, W) int, map (c) per sigma
    robust_masks: np.ndarray  # (S, H, W) bool, x0's robust region per sigma
    robust_areas: np.ndarray  # (S,) area of each mask


def sigma_sweep(
    mixture: GaussianMixture, grid: GridSpec, sigmas: Sequence[float], x0: np.ndarray
) -> SigmaSweep:
    """Precompute map (c) and x0's robust region for each sigma."""
    xs, ys = grid.axes()
    pts = grid.points()
    x0 = np.asarray(x0, dtype=np.float64).reshape(2)
    cell = grid_cell(xs, ys, x0)
    labels = np.stack([classify(mixture, pts, s, "mode").reshape(len(ys), len(xs)) for s in sigmas])
    masks = np.stack([_connected_region(lab, cell) for lab in labels])
    cell_area = (xs[1] - xs[0]) * (ys[1] - ys[0])
    return SigmaSweep(
        xs=xs,
        ys=ys,
        x0=x0,
        num_classes=mixture.num_classes,
        sigmas=np.asarray(sigmas, dtype=np.float64),
        mode_labels=labels,
        robust_masks=masks,
        robust_areas=masks.sum((1, 2)) * cell_area,
    )
