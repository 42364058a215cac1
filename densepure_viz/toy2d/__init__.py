"""The exact 2D world of DensePure (Xiao et al., ICLR 2023, arXiv 2211.00322).

With a Gaussian-mixture data distribution every quantity of the paper is exact: the posterior
p(x0 | x~), its label masses and highest-density point, the score of every noised marginal, reverse
chains that sample the posterior, and the robust regions, which can be compared with the L2 balls
randomized smoothing certifies. numpy/scipy, plus the image engine's schedule arithmetic (diffusion)
and CERTIFY (certify); plots live in densepure_viz.viz.plots.toy2d.

Imports: smoothing, engine (and the loose errors/paths).
"""

from .mixture import (
    GaussianMixture,
    PosteriorMixture,
    bayes_labels,
    highest_density_point,
    label_probabilities,
    log_density,
    posterior,
    posterior_mean,
    posterior_modes,
    score,
)
from .presets import PRESETS, Preset, preset_maps
from .regions import (
    LABELERS,
    GridSpec,
    Labeler,
    PowerCell,
    RegionMaps,
    classify,
    grid_cell,
    power_diagram_assignment,
    power_diagram_cells,
    region_maps,
)
from .reverse import (
    Method,
    ReverseTrajectories,
    noised_mixture,
    noised_score,
    reverse_trajectories,
    sigma_for_timestep,
    smoothed_input,
)
from .robustness import RobustRegion, SigmaSweep, labeler_base, robust_region, sigma_sweep

__all__ = [
    "LABELERS",
    "PRESETS",
    "GaussianMixture",
    "GridSpec",
    "Labeler",
    "Method",
    "PosteriorMixture",
    "PowerCell",
    "Preset",
    "RegionMaps",
    "ReverseTrajectories",
    "RobustRegion",
    "SigmaSweep",
    "bayes_labels",
    "classify",
    "grid_cell",
    "highest_density_point",
    "label_probabilities",
    "labeler_base",
    "log_density",
    "noised_mixture",
    "noised_score",
    "posterior",
    "posterior_mean",
    "posterior_modes",
    "power_diagram_assignment",
    "power_diagram_cells",
    "preset_maps",
    "region_maps",
    "reverse_trajectories",
    "robust_region",
    "score",
    "sigma_for_timestep",
    "sigma_sweep",
    "smoothed_input",
]
