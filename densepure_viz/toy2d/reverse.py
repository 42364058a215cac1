"""Exact reverse diffusion in the 2D world: the noised mixture, its score, and seeded DDPM/DDIM chains.

Forward process (Ho et al. 2020): x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps on the image engine's DDPM
linear schedule (densepure_viz.engine.diffusion.ddpm_alphas_cumprod, in float64). For a
mixture prior, p_t is the mixture with means sqrt(ab_t) mu_k and variances ab_t s_k^2 + 1 - ab_t, so
its score is exact and the noise prediction is eps = -sqrt(1 - ab_t) * score.

DensePure (Xiao et al., ICLR 2023, Sec. 4) reads the smoothed input x~ = x + sigma * eps as
x_t* = sqrt(ab_t*) x~ with ab_t* = 1 / (1 + sigma^2) (nearest step). There is no [0, 1] -> [-1, 1]
factor of 2 here: t* is densepure_viz.engine.diffusion.timestep_for_sigma with data scale 1, sigma being
directly the std in model space, and the steps are its sampler_timesteps ("full" or "fast"). With the
exact score the reverse chain samples p(x0 | x~) for sigma_t* = sqrt((1 - ab_t*) / ab_t*), up to the
chain's discretisation error (small for the full chain). Each step is the DDPM posterior
q(x_s | x_t, x0_hat) (Ho et al. eqs. 6-7) between arbitrary steps s < t, so respaced chains
(Nichol & Dhariwal 2021) use the same code; "ddim" is the deterministic DDIM step (Song et al.
2021), a discretisation of the probability-flow ODE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from densepure_viz.engine.diffusion import ddpm_alphas_cumprod, sampler_timesteps, timestep_for_sigma
from densepure_viz.engine.votes import tied_labels

from .mixture import GaussianMixture, bayes_labels, label_probabilities, score

Method = Literal["ddpm", "ddim"]
NoiseSource = np.random.Generator | Sequence[int]
DATA_SCALE = 1.0  # sigma is already the std in model space: no [0, 1] -> [-1, 1] factor


def sigma_for_timestep(t: int, alphas_cumprod: np.ndarray) -> float:
    """sigma_t = sqrt((1 - ab_t) / ab_t): the smoothing std that step t represents."""
    return float(np.sqrt((1.0 - alphas_cumprod[t]) / alphas_cumprod[t]))


def noised_mixture(mixture: GaussianMixture, alpha_bar: float) -> GaussianMixture:
    """p_t: means sqrt(ab) mu_k, stds sqrt(ab s_k^2 + 1 - ab), same weights and labels."""
    return GaussianMixture(
        means=np.sqrt(alpha_bar) * mixture.means,
        stds=np.sqrt(alpha_bar * mixture.stds**2 + 1.0 - alpha_bar),
        weights=mixture.weights,
        labels=mixture.labels,
    )


def noised_score(mixture: GaussianMixture, x_t: np.ndarray, alpha_bar: float) -> np.ndarray:
    """grad log p_t(x_t) at points (N, 2) -> (N, 2), exact."""
    return score(noised_mixture(mixture, alpha_bar), x_t)


def smoothed_input(x0: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """x~ = x0 + sigma * eps, eps ~ N(0, I), for one point (2,) -> (2,)."""
    return np.asarray(x0, dtype=np.float64) + sigma * rng.standard_normal(2)


@dataclass
class ReverseTrajectories:
    """K reverse chains from one x~; entry 0 of the path is x~, the last entry the clean samples."""

    x_tilde: np.ndarray  # (2,) the smoothed input every chain starts from
    sigma: float  # effective std of t*, sqrt((1 - ab_t*) / ab_t*), nearest to the requested sigma
    method: Method  # "ddpm" (stochastic, samples the posterior) or "ddim" (deterministic ODE)
    timesteps: np.ndarray  # (S,) schedule steps at which the score was evaluated, t* first
    alpha_bars: np.ndarray  # (S + 1,) ab of each path entry; 1.0 for the clean end
    path: np.ndarray  # (S + 1, K, 2) x_t / sqrt(ab_t): starts at x~, ends at the samples x0
    labels: np.ndarray  # (K,) Bayes label of each endpoint: the votes
    exact_probabilities: np.ndarray  # (C,) label_probabilities(x~, sigma): what the vote shares estimate

    @property
    def endpoints(self) -> np.ndarray:
        """(K, 2) the clean samples."""
        return self.path[-1]

    @property
    def votes(self) -> np.ndarray:
        """(C,) number of endpoints per label."""
        return np.bincount(self.labels, minlength=len(self.exact_probabilities))

    @property
    def tied(self) -> list[int]:
        """The labels sharing the top vote count, ascending (more than one: a tie)."""
        return tied_labels(dict(enumerate(self.votes.tolist())))

    @property
    def vote(self) -> int:
        """The majority vote; a tie goes to the smallest label (engine.votes' rule, as for images)."""
        return self.tied[0]


def _noise(source: NoiseSource, num_trajectories: int | None, num_draws: int) -> np.ndarray:
    """Standard normal noise (num_draws, K, 2). A Generator draws it in one call (K must be given);
    a seed list gives trajectory k its own default_rng(seeds[k]), so it does not depend on K."""
    if isinstance(source, np.random.Generator):
        if num_trajectories is None:
            raise ValueError("with a single Generator, pass num_trajectories")
        return source.standard_normal((num_draws, num_trajectories, 2))
    seeds = list(source)
    if num_trajectories not in (None, len(seeds)):
        raise ValueError(f"got {len(seeds)} seeds but num_trajectories={num_trajectories}")
    return np.stack([np.random.default_rng(s).standard_normal((num_draws, 2)) for s in seeds], axis=1)


def reverse_trajectories(
    mixture: GaussianMixture,
    x_tilde: np.ndarray,
    sigma: float,
    noise: NoiseSource,
    num_trajectories: int | None = None,
    steps: int | None = None,
    method: Method = "ddpm",
    alphas_cumprod: np.ndarray | None = None,
) -> ReverseTrajectories:
    """Run K chains at once from x_t* = sqrt(ab_t*) x~ to x0 with the exact score.

    noise: a Generator (then num_trajectories = K) or a list of K seeds, one per trajectory.
    steps: None for the full chain t*, ..., 0; an int for a respaced chain (1 = one-shot Tweedie).
    """
    if method not in ("ddpm", "ddim"):
        raise ValueError(f"method must be 'ddpm' or 'ddim', got {method!r}")
    ab_all = ddpm_alphas_cumprod() if alphas_cumprod is None else np.asarray(alphas_cumprod, dtype=np.float64)
    t_star = timestep_for_sigma(sigma, ab_all, DATA_SCALE)
    sampled = sampler_timesteps("full", t_star) if steps is None else sampler_timesteps("fast", t_star, steps)
    timesteps = np.array(sampled)  # (S,) descending
    alpha_bars = np.r_[ab_all[timesteps], 1.0]  # (S + 1,)
    z = _noise(noise, num_trajectories, len(timesteps))  # (S, K, 2)
    x_tilde = np.asarray(x_tilde, dtype=np.float64).reshape(2)
    x = np.broadcast_to(np.sqrt(alpha_bars[0]) * x_tilde, z.shape[1:]).copy()  # (K, 2) x_t*
    path = [x / np.sqrt(alpha_bars[0])]
    for i, (ab_t, ab_s) in enumerate(zip(alpha_bars[:-1], alpha_bars[1:])):
        # 1. x0_hat = E[x0 | x_t] by Tweedie's formula with the exact score (Ho et al. eq. 15)
        x0_hat = (x + (1.0 - ab_t) * noised_score(mixture, x, ab_t)) / np.sqrt(ab_t)
        if method == "ddim":
            # 2a. DDIM (eta = 0): keep the predicted noise, eps = (x_t - sqrt(ab_t) x0_hat) / sqrt(1 - ab_t)
            eps = (x - np.sqrt(ab_t) * x0_hat) / np.sqrt(1.0 - ab_t)
            x = np.sqrt(ab_s) * x0_hat + np.sqrt(1.0 - ab_s) * eps
        else:
            # 2b. DDPM posterior q(x_s | x_t, x0_hat) between steps s < t (Ho et al. eqs. 6-7)
            alpha = ab_t / ab_s
            mean = (np.sqrt(ab_s) * (1.0 - alpha) * x0_hat + np.sqrt(alpha) * (1.0 - ab_s) * x) / (1.0 - ab_t)
            x = mean + np.sqrt((1.0 - alpha) * (1.0 - ab_s) / (1.0 - ab_t)) * z[i]
        path.append(x / np.sqrt(ab_s))
    sigma_eff = sigma_for_timestep(t_star, ab_all)
    return ReverseTrajectories(
        x_tilde=x_tilde,
        sigma=sigma_eff,
        method=method,
        timesteps=timesteps,
        alpha_bars=alpha_bars,
        path=np.stack(path),
        labels=bayes_labels(mixture, x),
        exact_probabilities=label_probabilities(mixture, x_tilde[None], sigma_eff)[0],
    )
