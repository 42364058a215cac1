"""Region maps of the four classifiers on a grid of x~, and the power diagram of point masses.

For a noisy input x~ at smoothing std sigma (DensePure, Xiao et al., ICLR 2023):
  (a) "bayes":    the Bayes classifier of the clean mixture applied to x~ directly;
  (b) "one_shot": the Bayes label of the posterior mean E[x0 | x~] (Tweedie; Carlini et al. 2023);
  (c) "mode":     the Bayes label of the highest-density point of p(x0 | x~), whose regions are
                  the paper's robust regions (Sec. 3);
  (d) "vote":     argmax of the exact label masses, what DensePure's majority vote estimates.
For point masses (s_k -> 0) the mode is the component maximising log w_k - |x~ - mu_k|^2 / (2 sigma^2),
so the regions of (c) are unions of weighted-Voronoi (power-diagram) cells, i.e. of convex polygons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .mixture import (
    GaussianMixture,
    bayes_labels,
    highest_density_point,
    label_probabilities,
    log_density,
    posterior_mean,
)

Labeler = Literal["bayes", "one_shot", "mode", "vote"]
LABELERS: tuple[Labeler, ...] = ("bayes", "one_shot", "mode", "vote")


@dataclass(frozen=True)
class GridSpec:
    """A rectangular grid of x~ positions (cell centres), shared by every map of a view."""

    x_range: tuple[float, float]  # (min, max) of the first coordinate
    y_range: tuple[float, float]  # (min, max) of the second coordinate
    resolution: int = 200  # grid points per axis

    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """(xs (W,), ys (H,)) grid coordinates, endpoints included."""
        return np.linspace(*self.x_range, self.resolution), np.linspace(*self.y_range, self.resolution)

    def points(self) -> np.ndarray:
        """(H * W, 2) grid points, row-major over (y, x)."""
        xs, ys = self.axes()
        gx, gy = np.meshgrid(xs, ys)
        return np.stack([gx.ravel(), gy.ravel()], axis=1)


def grid_cell(xs: np.ndarray, ys: np.ndarray, point: np.ndarray) -> tuple[int, int]:
    """(row, column) of the grid point nearest to a point (2,), which must lie inside the grid."""
    x, y = np.asarray(point, dtype=np.float64).reshape(2)
    if not (xs[0] <= x <= xs[-1] and ys[0] <= y <= ys[-1]):
        raise ValueError(f"point ({x:.3g}, {y:.3g}) lies outside the grid; pick one inside the view")
    return int(np.abs(ys - y).argmin()), int(np.abs(xs - x).argmin())


def classify(mixture: GaussianMixture, points: np.ndarray, sigma: float, labeler: Labeler) -> np.ndarray:
    """Label of each x~ (M, 2) under one of the four classifiers (module docstring) -> (M,) int."""
    if labeler == "bayes":
        return bayes_labels(mixture, points)
    if labeler == "one_shot":
        return bayes_labels(mixture, posterior_mean(mixture, points, sigma))
    if labeler == "mode":
        return bayes_labels(mixture, highest_density_point(mixture, points, sigma))
    if labeler == "vote":
        return label_probabilities(mixture, points, sigma).argmax(1)
    raise ValueError(f"labeler must be one of {LABELERS}, got {labeler!r}")


@dataclass
class RegionMaps:
    """The four label maps of one mixture and sigma on one grid; arrays are indexed [y, x]."""

    xs: np.ndarray  # (W,) grid x coordinates
    ys: np.ndarray  # (H,) grid y coordinates
    sigma: float  # smoothing std the maps were computed for
    num_classes: int  # C
    bayes: np.ndarray  # (H, W) int, map (a)
    one_shot: np.ndarray  # (H, W) int, map (b)
    mode: np.ndarray  # (H, W) int, map (c): the robust regions
    vote: np.ndarray  # (H, W) int, map (d)
    density: np.ndarray  # (H, W) clean data density p(x), for contours

    def labels(self, labeler: Labeler) -> np.ndarray:
        """The (H, W) map of one classifier."""
        return getattr(self, labeler)

    @property
    def cell_area(self) -> float:
        """Area represented by one grid point."""
        return float((self.xs[1] - self.xs[0]) * (self.ys[1] - self.ys[0]))

    def cell_of(self, point: np.ndarray) -> tuple[int, int]:
        """(row, column) of the grid point nearest to a point (2,) inside the grid."""
        return grid_cell(self.xs, self.ys, point)


def region_maps(mixture: GaussianMixture, grid: GridSpec, sigma: float) -> RegionMaps:
    """All four maps (a)-(d) and the clean density on the grid."""
    xs, ys = grid.axes()
    pts = grid.points()
    shape = (len(ys), len(xs))
    maps = {name: classify(mixture, pts, sigma, name).reshape(shape) for name in LABELERS}
    return RegionMaps(
        xs=xs,
        ys=ys,
        sigma=float(sigma),
        num_classes=mixture.num_classes,
        density=np.exp(log_density(mixture, pts)).reshape(shape),
        **maps,
    )


def power_diagram_assignment(mixture: GaussianMixture, points: np.ndarray, sigma: float) -> np.ndarray:
    """argmax_k [log w_k - |x~ - mu_k|^2 / (2 sigma^2)] for each x~ (M, 2) -> (M,) component index."""
    pts = np.asarray(points, dtype=np.float64)
    d2 = ((pts[:, None, :] - mixture.means[None]) ** 2).sum(-1)
    return (np.log(mixture.weights) - d2 / (2.0 * sigma**2)).argmax(1)


@dataclass
class PowerCell:
    """One weighted-Voronoi cell, clipped to the grid's rectangle."""

    component: int  # index k of the point mass owning the cell
    label: int  # its class label
    vertices: np.ndarray  # (V, 2) convex polygon, counter-clockwise, not repeated at the end


def _clip(polygon: np.ndarray, normal: np.ndarray, offset: float) -> np.ndarray:
    """Part of a convex polygon (V, 2) where normal . x + offset >= 0 (one Sutherland-Hodgman pass)."""
    if len(polygon) == 0:
        return polygon
    side = polygon @ normal + offset  # (V,)
    out = []
    for i in range(len(polygon)):
        j = (i + 1) % len(polygon)
        if side[i] >= 0:
            out.append(polygon[i])
        if (side[i] >= 0) != (side[j] >= 0):
            out.append(polygon[i] + side[i] / (side[i] - side[j]) * (polygon[j] - polygon[i]))
    return np.array(out).reshape(-1, 2)


def power_diagram_cells(mixture: GaussianMixture, sigma: float, grid: GridSpec) -> list[PowerCell]:
    """Exact cells of power_diagram_assignment as polygons (empty cells are left out).

    Cell k is the box intersected with the half-planes score_k >= score_j, which are linear in x:
    2 (mu_k - mu_j) . x + 2 sigma^2 (log w_k - log w_j) - |mu_k|^2 + |mu_j|^2 >= 0.
    """
    (x0, x1), (y0, y1) = grid.x_range, grid.y_range
    box = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
    mu, log_w = mixture.means, np.log(mixture.weights)
    sq = (mu**2).sum(1)
    cells = []
    for k in range(len(mu)):
        poly = box
        for j in range(len(mu)):
            if j != k:
                offset = 2.0 * sigma**2 * (log_w[k] - log_w[j]) - sq[k] + sq[j]
                poly = _clip(poly, 2.0 * (mu[k] - mu[j]), offset)
        if len(poly) >= 3:
            cells.append(PowerCell(component=k, label=int(mixture.labels[k]), vertices=poly))
    return cells
