"""Diffusion arithmetic for DensePure: noise level <-> timestep, and the (respaced) DDPM reverse step.

DensePure (Xiao et al. 2023, Sec. 4) feeds a randomized-smoothing input x + delta, delta ~ N(0, sigma^2 I),
to a diffusion model as if it were a noisy sample at step t*. The step is chosen so that the noise
levels agree: x_t = sqrt(ab_t) * (x + sqrt((1 - ab_t) / ab_t) * eps), so we need
sqrt((1 - ab_t*) / ab_t*) = sigma_model, i.e. ab_t* = 1 / (1 + sigma_model^2). Images live in [0, 1]
for the user and in [-1, 1] for the model; the map y = 2x - 1 doubles every distance, hence
sigma_model = 2 * sigma (Carlini et al. 2023 use the same factor).

The reverse step is the DDPM posterior q(x_s | x_t, x0_hat) of Ho et al. (2020, eqs. 6-7) between two
arbitrary steps s < t of the training schedule (respacing, Nichol & Dhariwal 2021): it reduces to
`DDPMScheduler.step` when s = t - 1 (a test checks that), but takes its Gaussian noise as an argument
and never mutates the scheduler, so many users can share one scheduler and every trajectory's noise
comes from its own seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import torch
from diffusers import DDPMScheduler

Sampler = Literal["one-shot", "fast", "full"]
SAMPLERS: tuple[Sampler, ...] = ("one-shot", "fast", "full")
DATA_SCALE = 2.0  # [0, 1] -> [-1, 1] multiplies distances (and so sigma) by 2


@lru_cache(maxsize=4)
def ddpm_alphas_cumprod(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """ab_t = prod_{i <= t} (1 - beta_i) of the linear DDPM schedule (Ho et al. 2020) -> (num_steps,), read-only.

    The schedule of the shipped models, in float64: DDPMScheduler computes it in float32, but the exact
    2D world (densepure_viz.toy2d) compares its chains with closed forms to ~1e-12 and needs the precision.
    """
    ab = np.cumprod(1.0 - np.linspace(beta_start, beta_end, num_steps))
    ab.setflags(write=False)
    return ab


def sigma_to_alpha_bar(sigma: float, data_scale: float = DATA_SCALE) -> float:
    """ab(t*) = 1 / (1 + (data_scale * sigma)^2): the schedule value whose noise matches sigma."""
    return 1.0 / (1.0 + (data_scale * sigma) ** 2)


def timestep_for_sigma(
    sigma: float, alphas_cumprod: torch.Tensor | np.ndarray, data_scale: float = DATA_SCALE
) -> int:
    """The step t* of the model's own schedule (a tensor or an array) whose ab_t is nearest to
    sigma_to_alpha_bar(sigma), compared in float64; the 2D world, which has no [0, 1] map, uses data_scale 1."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    target = sigma_to_alpha_bar(sigma, data_scale)
    if isinstance(alphas_cumprod, torch.Tensor):
        ab = alphas_cumprod.double()
    else:
        ab = torch.tensor(alphas_cumprod, dtype=torch.float64)  # a copy: the array may be read-only
    return int(torch.argmin((ab - target).abs()).item())


def sampler_timesteps(sampler: Sampler, t_star: int, steps: int = 10) -> list[int]:
    """Descending timesteps at which the UNet is evaluated, from t* to the last (each has one call).

    one-shot: [t*] (a single x0 prediction, Carlini et al. 2023);
    fast:     `steps` evenly spaced steps from t* down to 0 (DensePure's fast sampling);
    full:     every step t*, t*-1, ..., 0 (the original DDPM chain).
    """
    if sampler == "one-shot":
        return [t_star]
    if sampler == "full":
        return list(range(t_star, -1, -1))
    if sampler != "fast":
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if steps == 1:
        return [t_star]
    grid = np.round(np.linspace(t_star, 0, min(steps, t_star + 1))).astype(int)
    return sorted(set(grid.tolist()), reverse=True)


def noised_start(noisy01: torch.Tensor, alpha_bar: float, data_scale: float = DATA_SCALE) -> torch.Tensor:
    """x_t* = sqrt(ab) * (scale * (x + delta) - 1): the smoothed input x + delta seen as a diffusion sample."""
    return alpha_bar**0.5 * (data_scale * noisy01 - 1.0)


def to_unit(x: torch.Tensor, data_scale: float = DATA_SCALE) -> torch.Tensor:
    """Model range [-1, 1] -> display range [0, 1] (the inverse of y = scale * x - 1), clipped."""
    return ((x + 1) / data_scale).clamp(0, 1)


@dataclass
class StepOutput:
    """One reverse step, as in diffusers' DDPMSchedulerOutput."""

    prev_sample: torch.Tensor  # x_s, (B, C, H, W), model range
    pred_original_sample: torch.Tensor  # x0_hat at step t, (B, C, H, W), model range


def predict_x0(scheduler: DDPMScheduler, model_output: torch.Tensor, t: int, sample: torch.Tensor) -> torch.Tensor:
    """x0_hat from the network output at step t (Ho et al. eq. 15 for epsilon), clipped as configured."""
    ab = float(scheduler.alphas_cumprod[t])  # a Python float: no host-to-device copy per step
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        x0 = (sample - (1 - ab) ** 0.5 * model_output) / ab**0.5
    elif kind == "sample":
        x0 = model_output
    elif kind == "v_prediction":
        x0 = ab**0.5 * sample - (1 - ab) ** 0.5 * model_output
    else:
        raise ValueError(f"unsupported prediction_type {kind!r}")
    if scheduler.config.clip_sample:
        limit = scheduler.config.clip_sample_range
        x0 = x0.clamp(-limit, limit)
    return x0


def ddpm_step(
    scheduler: DDPMScheduler,
    model_output: torch.Tensor,
    t: int,
    prev_t: int,
    sample: torch.Tensor,
    noise: torch.Tensor | None,
) -> StepOutput:
    """Sample x_prev_t ~ q(x_prev_t | x_t, x0_hat) (Ho et al. eqs. 6-7 with respaced betas).

    `noise` is the standard normal draw (same shape as sample); it is unused when prev_t < 0,
    where the step returns x0_hat itself. prev_t = -1 means "to the data".
    """
    model_output, sample = model_output.float(), sample.float()
    # 1. schedule values at t and at the previous (respaced) step
    ab_t = scheduler.alphas_cumprod[t].item()
    ab_prev = scheduler.alphas_cumprod[prev_t].item() if prev_t >= 0 else 1.0
    beta_t = 1.0 - ab_t / ab_prev  # respaced beta between prev_t and t
    # 2. predicted original sample
    x0 = predict_x0(scheduler, model_output, t, sample)
    if prev_t < 0:
        return StepOutput(prev_sample=x0, pred_original_sample=x0)
    # 3. posterior mean, eq. 7
    mean = (ab_prev**0.5 * beta_t / (1 - ab_t)) * x0 + ((1 - beta_t) ** 0.5 * (1 - ab_prev) / (1 - ab_t)) * sample
    # 4. posterior variance: beta_tilde (fixed_small) or beta (fixed_large), eq. 6 and Sec. 3.2
    variance_type = scheduler.config.variance_type
    if variance_type == "fixed_small":
        variance = max((1 - ab_prev) / (1 - ab_t) * beta_t, 1e-20)
    elif variance_type == "fixed_large":
        variance = beta_t
    else:
        raise ValueError(f"unsupported variance_type {variance_type!r} (use fixed_small or fixed_large)")
    if noise is None:
        return StepOutput(prev_sample=mean, pred_original_sample=x0)
    return StepOutput(prev_sample=mean + variance**0.5 * noise.to(mean), pred_original_sample=x0)
