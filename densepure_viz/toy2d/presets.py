"""Teaching presets for the 2D world of DensePure (Xiao et al., ICLR 2023): mixture, view and points.

"clusters": well-separated classes, where every classifier roughly agrees; "moons": two interleaved
arcs of five components each, where the robust regions of the highest-density point become visibly
non-convex unions; "finite dataset": point masses (std 1e-3), where the robust regions are exactly
unions of weighted-Voronoi (power-diagram) cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .mixture import GaussianMixture
from .regions import GridSpec, PowerCell, RegionMaps, power_diagram_cells, region_maps


@dataclass(frozen=True)
class Preset:
    """A ready-made scene: data, view and the two points the story is told about."""

    name: str  # registry key, shown in the UI
    description: str  # one sentence on what the preset teaches
    mixture: GaussianMixture  # the data distribution
    grid: GridSpec  # the view, also the grid of the region maps
    sigma: float  # default smoothing std (model space)
    x0: tuple[float, float]  # default clean point
    x_a: tuple[float, float]  # default adversarial point
    point_masses: bool  # whether map (c) is a power diagram worth outlining


def _moons(per_moon: int = 5, std: float = 0.15, upper_share: float = 0.6) -> GaussianMixture:
    """Two interleaved half circles (as sklearn's make_moons), each a chain of components; the
    upper moon (label 0) holds upper_share of the mass."""
    t = np.linspace(0.0, np.pi, per_moon)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    return GaussianMixture(
        means=np.concatenate([upper, lower]),
        stds=np.full(2 * per_moon, std),
        weights=np.repeat([upper_share, 1.0 - upper_share], per_moon),
        labels=np.repeat([0, 1], per_moon),
    )


_FINITE_POINTS = np.array(
    [[-1.6, 0.9], [-0.7, 1.5], [-1.2, -0.3], [0.1, 0.6], [0.9, 1.4], [1.7, 0.8],
     [1.2, -0.2], [0.3, -0.9], [-0.6, -1.2], [1.8, -1.1], [-1.8, -1.4], [0.6, 0.1]]
)  # (12, 2) the "training set"

PRESETS: dict[str, Preset] = {
    "clusters": Preset(
        name="clusters",
        description="Three well-separated classes: all four classifiers nearly agree.",
        mixture=GaussianMixture(
            means=[[-2.0, -0.5], [2.0, -0.5], [0.0, 2.2], [-1.0, -2.5]],
            stds=[0.45, 0.45, 0.4, 0.35],
            weights=[0.4, 0.25, 0.2, 0.15],
            labels=[0, 1, 2, 0],
        ),
        grid=GridSpec(x_range=(-4.0, 4.0), y_range=(-4.0, 4.0)),
        sigma=0.75,
        x0=(-1.8, -0.3),
        x_a=(-0.5, -1.6),
        point_masses=False,
    ),
    "moons": Preset(
        name="moons",
        description="Interleaved moons: robust regions follow the data and are non-convex unions.",
        mixture=_moons(),
        grid=GridSpec(x_range=(-1.75, 2.75), y_range=(-1.5, 2.0)),
        sigma=0.4,
        x0=(-0.7, 0.7),
        x_a=(0.8, 0.9),
        point_masses=False,
    ),
    "finite dataset": Preset(
        name="finite dataset",
        description="Twelve point masses: robust regions are unions of power-diagram cells.",
        mixture=GaussianMixture(
            means=_FINITE_POINTS,
            stds=np.full(len(_FINITE_POINTS), 1e-3),
            weights=[4, 1, 1, 1, 2, 1, 1, 3, 1, 1, 1, 1],
            labels=[0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 0, 1],
        ),
        grid=GridSpec(x_range=(-2.5, 2.5), y_range=(-2.2, 2.2)),
        sigma=0.5,
        x0=(-1.6, 0.9),
        x_a=(-1.5, -0.9),
        point_masses=True,
    ),
}


def preset_maps(name: str, sigma: float) -> tuple[RegionMaps, list[PowerCell] | None]:
    """The region maps of preset `name` at sigma on its own grid, and its power cells when they are worth outlining."""
    p = PRESETS[name]
    return region_maps(p.mixture, p.grid, sigma), power_diagram_cells(p.mixture, sigma, p.grid) if p.point_masses else None
