"""Certified L2 balls of randomized smoothing versus DensePure's robust regions, in 2D.

Certification is the image engine's CERTIFY (densepure_viz.smoothing.certify, Cohen et al. 2019): n0 noisy copies
pick the class c_A, n more count it, the one-sided Clopper-Pearson bound p_lower at level alpha gives
the radius sigma * Phi^-1(p_lower); the smoothed classifier certifies when p_lower > 1/2, otherwise
abstains. Its base classifier here is one of the four of `regions` on x + sigma * eps (default (d),
DensePure's majority vote with its exact label masses).
The robust region of x0 (DensePure, Xiao et al., ICLR 2023, Sec. 3) is the connected region of map
(c), the highest-density-point labels, that contains x0; it can be far larger than the ball.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from densepure_viz.smoothing.certify import BaseClassifier, CertifyConfig, CertifyResult, certify
from densepure_viz.engine.seeding import Stream

from .mixture import GaussianMixture
from .regions import GridSpec, Labeler, RegionMaps, classify, grid_cell


def labeler_base(
    mixture: GaussianMixture, point: np.ndarray, sigma: float, rng: np.random.Generator, labeler: Labeler = "vote"
) -> BaseClassifier:
    """CERTIFY's base classifier at `point`: `labeler` applied to noisy copies point + sigma * eps, eps ~ N(0, I).

    It ignores the phase and draw indices and draws len(draws) noises (m, 2) from rng in call order.
    CERTIFY classifies its selection chunks, then its estimation chunks, in order, and numpy's Generator
    gives the same numbers split into consecutive calls as in one call, so a seeded rng yields the same
    certificate as drawing (n0, 2) then (n, 2) noises at once, whatever the chunk size. (The image
    engine keys each draw by its index instead, see `seeding`; the 2D world is cheap enough to need no
    order-free streams.)
    """
    x = np.asarray(point, dtype=np.float64).reshape(2)

    def base(phase: Stream, draws: torch.Tensor) -> torch.Tensor:
        noisy = x + sigma * rng.standard_normal((len(draws), 2))  # (m, 2)
        return torch.from_numpy(classify(mixture, noisy, sigma, labeler))  # (m,)

    return base


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
    clipped: bool  # the region reaches the grid's edge: its true area is larger than `area`
    certificate: CertifyResult  # smoothed vote at x0: the ball compared with the region
    certificate_x_a: CertifyResult  # smoothed vote at x_a
    ball_area: float  # pi * certificate.radius^2
    x_a_in_region: bool  # x_a's cell lies in mask
    x_a_in_ball: bool  # |x_a - x0| < certificate.radius


def touches_edge(mask: np.ndarray) -> bool:
    """Whether a region (H, W) reaches the border of its grid (so the grid clips it)."""
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def robust_region(
    mixture: GaussianMixture,
    maps: RegionMaps,
    x0: np.ndarray,
    x_a: np.ndarray,
    rng: np.random.Generator,
    cfg: CertifyConfig = CertifyConfig(),
) -> RobustRegion:
    """Robust region of x0 on the maps' grid, and CERTIFY of the smoothed vote at x0, then at x_a (at
    maps.sigma, noise drawn from rng in that order)."""
    x0 = np.asarray(x0, dtype=np.float64).reshape(2)
    x_a = np.asarray(x_a, dtype=np.float64).reshape(2)
    cell = maps.cell_of(x0)
    mask = _connected_region(maps.mode, cell)

    def smoothed_vote(point: np.ndarray) -> CertifyResult:
        return certify(labeler_base(mixture, point, maps.sigma, rng), mixture.num_classes, maps.sigma, cfg)

    cert = smoothed_vote(x0)
    return RobustRegion(
        x0=x0,
        x_a=x_a,
        label=int(maps.mode[cell]),
        mask=mask,
        area=float(mask.sum() * maps.cell_area),
        clipped=touches_edge(mask),
        certificate=cert,
        certificate_x_a=smoothed_vote(x_a),
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
