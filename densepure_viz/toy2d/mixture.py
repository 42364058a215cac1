"""Isotropic 2D Gaussian mixtures with class labels, and their exact posteriors under Gaussian noise.

DensePure (Xiao et al., ICLR 2023, arXiv 2211.00322, Sec. 3) shows that a reverse diffusion run
from x_t* samples p(x0 | x~) proportional to p(x0) N(x~; x0, sigma^2 I), with x~ = x_t* / sqrt(ab_t*),
and that the label of the posterior's highest-density point defines a robust region. For a mixture
prior sum_k w_k N(mu_k, s_k^2 I) this posterior is again a Gaussian mixture (conjugacy):

    pi_k(x~) proportional to w_k N(x~; mu_k, (s_k^2 + sigma^2) I),
    m_k(x~)  = (s_k^2 x~ + sigma^2 mu_k) / (s_k^2 + sigma^2),
    v_k      = s_k^2 sigma^2 / (s_k^2 + sigma^2),

so label masses, the posterior mean (Tweedie) and the modes are all exact. The 2D world has no
[0, 1] -> [-1, 1] rescaling: sigma is directly the standard deviation in the mixture's coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp, softmax

LOG_2PI = float(np.log(2.0 * np.pi))
PRUNE_FACTOR = 20.0  # starts whose own peak is below tallest / (PRUNE_FACTOR * K) are skipped
SEARCH_TOL = 1e-3  # step size, in posterior stds, at which a candidate mode counts as found
CHUNK_ELEMENTS = 1 << 17  # pairs x components per vectorised step: keeps the arrays in cache
POLISH_TOL = 1e-10  # step size, in posterior stds, at which the winning mode stops being refined


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """sum_k w_k N(mu_k, s_k^2 I) in 2D; component k carries class label labels[k].

    Arrays are copied, made read-only, and the weights are normalised to sum to 1.
    """

    means: np.ndarray  # (K, 2) component means mu_k
    stds: np.ndarray  # (K,) isotropic standard deviations s_k > 0
    weights: np.ndarray  # (K,) mixing weights w_k > 0 (normalised)
    labels: np.ndarray  # (K,) int class label of each component, in 0..C-1

    def __post_init__(self) -> None:
        means = np.array(self.means, dtype=np.float64)
        stds = np.array(self.stds, dtype=np.float64).reshape(-1)
        weights = np.array(self.weights, dtype=np.float64).reshape(-1)
        labels = np.array(self.labels).reshape(-1)
        k = len(stds)
        if means.shape != (k, 2) or weights.shape != (k,) or labels.shape != (k,) or k == 0:
            raise ValueError(
                f"need means (K, 2), stds, weights and labels (K,); got {means.shape}, "
                f"{stds.shape}, {weights.shape}, {labels.shape}"
            )
        if not (np.all(stds > 0) and np.all(weights > 0)):
            raise ValueError("stds and weights must be positive")
        if not (np.issubdtype(labels.dtype, np.integer) and labels.min() >= 0):
            raise ValueError(f"labels must be non-negative integers, got {labels}")
        fields = {"means": means, "stds": stds, "weights": weights / weights.sum(), "labels": labels.astype(np.int64)}
        for name, value in fields.items():
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def num_classes(self) -> int:
        """C = largest label + 1."""
        return int(self.labels.max()) + 1

    @property
    def label_onehot(self) -> np.ndarray:
        """(K, C) one-hot matrix mapping components to labels."""
        return np.eye(self.num_classes)[self.labels]


@dataclass
class PosteriorMixture:
    """p(x0 | x~) for M points x~: a Gaussian mixture per point, components aligned with the prior's."""

    log_weights: np.ndarray  # (M, K) log pi_k(x~), normalised over k
    means: np.ndarray  # (M, K, 2) m_k(x~)
    variances: np.ndarray  # (K,) v_k, per coordinate (isotropic), the same for every point


def _as_points(points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape (M, 2), got {pts.shape}")
    return pts


def _sq_dist(x: np.ndarray, means: np.ndarray) -> np.ndarray:
    """|x - mu|^2 for x (M, 2) against means (K, 2) -> (M, K), or per-point means (M, K, 2)."""
    return ((x[:, None, :] - means) ** 2).sum(-1)


def _component_log_pdf(x: np.ndarray, means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """log N(x; mean_k, v_k I) in 2D -> (M, K)."""
    return -LOG_2PI - np.log(variances) - _sq_dist(x, means) / (2.0 * variances)


def log_density(mixture: GaussianMixture, points: np.ndarray) -> np.ndarray:
    """log p(x) of the mixture at points (M, 2) -> (M,)."""
    x = _as_points(points)
    return logsumexp(np.log(mixture.weights) + _component_log_pdf(x, mixture.means, mixture.stds**2), axis=1)


def score(mixture: GaussianMixture, points: np.ndarray) -> np.ndarray:
    """grad_x log p(x) = sum_k r_k(x) (mu_k - x) / s_k^2 at points (M, 2) -> (M, 2)."""
    x = _as_points(points)
    var = mixture.stds**2
    resp = softmax(np.log(mixture.weights) + _component_log_pdf(x, mixture.means, var), axis=1)  # (M, K)
    return ((resp / var)[:, :, None] * (mixture.means[None] - x[:, None, :])).sum(1)


def posterior(mixture: GaussianMixture, points: np.ndarray, sigma: float) -> PosteriorMixture:
    """The exact p(x0 | x~) for each row x~ of points, noise std sigma >= 0 (module docstring)."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    x = _as_points(points)
    s2, n2 = mixture.stds**2, sigma**2
    total = s2 + n2  # (K,) variance of x~ given component k
    log_w = np.log(mixture.weights) + _component_log_pdf(x, mixture.means, total)
    log_w -= logsumexp(log_w, axis=1, keepdims=True)
    means = (s2[:, None] * x[:, None, :] + n2 * mixture.means[None]) / total[:, None]  # (M, K, 2)
    return PosteriorMixture(log_weights=log_w, means=means, variances=s2 * n2 / total)


def label_probabilities(mixture: GaussianMixture, points: np.ndarray, sigma: float) -> np.ndarray:
    """Exact posterior mass of each label under p(x0 | x~), (M, C); sigma = 0 gives p(y | x)."""
    return np.exp(posterior(mixture, points, sigma).log_weights) @ mixture.label_onehot


def bayes_labels(mixture: GaussianMixture, points: np.ndarray) -> np.ndarray:
    """Bayes classifier of the clean mixture, argmax_c p(y = c | x) -> (M,) int."""
    return label_probabilities(mixture, points, 0.0).argmax(1)


def posterior_mean(mixture: GaussianMixture, points: np.ndarray, sigma: float) -> np.ndarray:
    """E[x0 | x~] (Tweedie's one-shot denoiser, Carlini et al. 2023) -> (M, 2)."""
    post = posterior(mixture, points, sigma)
    return np.einsum("mk,mkd->md", np.exp(post.log_weights), post.means)


def _fixed_point_step(
    post: PosteriorMixture, log_gain: np.ndarray, rows: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One map x <- sum_k a_k m_k / sum_k a_k for points x (A, 2) of posterior rows (A,); also
    returns log p(x0 = x | x~) at the old x. log_gain is log pi_k - 2 log v_k, (M, K)."""
    means = post.means[rows]  # (A, K, 2)
    dx, dy = means[..., 0] - x[:, :1], means[..., 1] - x[:, 1:]
    a = log_gain[rows] - (dx * dx + dy * dy) * (0.5 / post.variances)  # (A, K) log a_k + const
    top = a.max(1)
    np.exp(a - top[:, None], out=a)
    logp = top + np.log(a @ post.variances) - LOG_2PI  # a_k v_k is pi_k N(x; m_k, v_k) up to e^top
    a /= a.sum(1, keepdims=True)
    return np.einsum("ak,akd->ad", a, means), logp


def _ascend(
    post: PosteriorMixture, rows: np.ndarray, x: np.ndarray, max_iter: int, tol: float
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point mode search (Carreira-Perpinan 2000), vectorised over P (row, start) pairs.

    A stationary point of sum_k pi_k N(x; m_k, v_k) satisfies x = sum_k a_k m_k / sum_k a_k with
    a_k = pi_k N(x; m_k, v_k) / v_k; iterate that map (in cache-sized chunks of pairs), freezing
    pairs whose step is below tol. Returns the end points (P, 2) and the log density at each
    pair's last evaluated position, within tol of its end point.
    """
    x, logp = x.copy(), np.empty(len(x))
    log_gain = post.log_weights - 2.0 * np.log(post.variances)
    active = np.arange(len(x))
    for _ in range(max_iter):
        moved = []
        for chunk in np.array_split(active, -(-len(active) * post.variances.size // CHUNK_ELEMENTS)):
            new, logp[chunk] = _fixed_point_step(post, log_gain, rows[chunk], x[chunk])
            moved.append(chunk[np.abs(new - x[chunk]).max(1) > tol])
            x[chunk] = new
        active = np.concatenate(moved)
        if active.size == 0:
            break
    return x, logp


def _local_modes(
    post: PosteriorMixture, max_iter: int, tol: float, prune: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ascend from the posterior component means: (rows (P,), end points (P, 2), log densities (P,)).

    With prune, a start is skipped when its own peak pi_k / v_k is below 1 / (PRUNE_FACTOR * K) of
    its row's tallest: all skipped components together peak below 1 / PRUNE_FACTOR of the mode
    reached from the tallest one, so they cannot hold the highest mode on their own.
    """
    peak = post.log_weights - np.log(post.variances)  # (M, K), log of pi_k / v_k
    margin = np.log(PRUNE_FACTOR * peak.shape[1]) if prune else np.inf
    rows, comps = np.nonzero(peak >= peak.max(1, keepdims=True) - margin)
    x, logp = _ascend(post, rows, post.means[rows, comps], max_iter, tol)
    return rows, x, logp


def highest_density_point(
    mixture: GaussianMixture, points: np.ndarray, sigma: float, max_iter: int = 500
) -> np.ndarray:
    """argmax_x0 p(x0 | x~) for each row x~ of points -> (M, 2); x~ itself when sigma = 0.

    Every local mode reachable from a posterior component mean is located to SEARCH_TOL posterior
    stds, the highest is kept and refined to POLISH_TOL (at most max_iter steps each). For point masses (tiny s_k) each start is
    already a mode, so the winner is the component with the largest pi_k / v_k: the weighted-Voronoi
    (power-diagram) cell that x~ falls in.
    """
    x = _as_points(points)
    if sigma == 0:
        return x.copy()
    post = posterior(mixture, x, sigma)
    std = float(np.sqrt(post.variances.max()))
    rows, modes, logp = _local_modes(post, max_iter, SEARCH_TOL * std, prune=True)
    order = np.lexsort((-logp, rows))  # by row, then by density, highest first
    best = order[np.r_[True, rows[order][1:] != rows[order][:-1]]]  # (M,) one per row
    return _ascend(post, rows[best], modes[best], max_iter, POLISH_TOL * std)[0]


def posterior_modes(
    mixture: GaussianMixture, point: np.ndarray, sigma: float, max_iter: int = 500
) -> tuple[np.ndarray, np.ndarray]:
    """The distinct local modes of p(x0 | x~) reached from all K component means, for one x~ (2,):
    (modes (J, 2), log densities (J,)), highest first; modes closer than 1e-6 * sqrt(max v_k) merge."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    post = posterior(mixture, np.reshape(point, (1, 2)), sigma)
    std = float(np.sqrt(post.variances.max()))
    _, modes, logp = _local_modes(post, max_iter, POLISH_TOL * std, prune=False)
    order = np.argsort(-logp)
    modes, logp = modes[order], logp[order]
    merge = 1e-6 * std
    keep = [i for i in range(len(modes)) if all(np.abs(modes[i] - modes[j]).max() > merge for j in range(i))]
    return modes[keep], logp[keep]
