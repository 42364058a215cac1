"""Noise level <-> timestep and the respaced DDPM step, against the scheduler and closed forms."""

import math

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from densepure_viz.engine.diffusion import (
    ddpm_alphas_cumprod,
    ddpm_step,
    noised_start,
    sampler_timesteps,
    sigma_to_alpha_bar,
    timestep_for_sigma,
)


@pytest.fixture(scope="module")
def scheduler() -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")


@pytest.mark.parametrize("sigma", [0.01, 0.12, 0.25, 0.5, 1.0])
def test_timestep_matches_noise_level(scheduler, sigma):
    ab = scheduler.alphas_cumprod.double()
    t = timestep_for_sigma(sigma, scheduler.alphas_cumprod)
    target = 1 / (1 + (2 * sigma) ** 2)
    assert sigma_to_alpha_bar(sigma) == pytest.approx(target)
    # nearest on the schedule: no other step is closer
    assert (ab - target).abs().min().item() == pytest.approx(abs(ab[t].item() - target))
    # the noise std of step t, in [0,1] pixel units, is close to sigma (factor 2 from [-1, 1])
    implied = math.sqrt((1 - ab[t].item()) / ab[t].item()) / 2
    assert implied == pytest.approx(sigma, rel=0.02, abs=2e-3)


def test_known_step_for_sigma_half(scheduler):
    # ab = 1/2 on the linear schedule is crossed between steps 258 and 259 (DDPM's betas 1e-4..0.02)
    assert timestep_for_sigma(0.5, scheduler.alphas_cumprod) in (258, 259)


def test_sigma_must_be_positive(scheduler):
    with pytest.raises(ValueError):
        timestep_for_sigma(0.0, scheduler.alphas_cumprod)


def test_float64_schedule_matches_the_scheduler_and_steps_the_betas(scheduler):
    ab = ddpm_alphas_cumprod()
    assert ab.shape == (1000,) and ab.dtype == np.float64 and not ab.flags.writeable
    assert ab[0] == pytest.approx(1 - 1e-4)
    np.testing.assert_allclose(ab[1] / ab[0], 1 - (1e-4 + 0.0199 / 999))
    np.testing.assert_allclose(ab, scheduler.alphas_cumprod.double().numpy(), rtol=1e-5)


def test_timestep_for_sigma_takes_an_array_and_a_data_scale(scheduler):
    ab = ddpm_alphas_cumprod()
    for sigma in (0.1, 0.5, 1.0, 3.0):
        t = timestep_for_sigma(sigma, ab, data_scale=1.0)  # the 2D world: sigma already in model space
        target = 1 / (1 + sigma**2)
        assert abs(ab[t] - target) <= min(abs(ab[t - 1] - target), abs(ab[t + 1] - target))
        assert t == timestep_for_sigma(sigma / 2, scheduler.alphas_cumprod)  # same noise level, [0, 1] pixels


def test_sampler_timesteps():
    assert sampler_timesteps("one-shot", 250, 10) == [250]
    full = sampler_timesteps("full", 250)
    assert full == list(range(250, -1, -1))
    fast = sampler_timesteps("fast", 250, 10)
    assert len(fast) == 10 and fast[0] == 250 and fast[-1] == 0
    assert all(a > b for a, b in zip(fast, fast[1:]))
    assert sampler_timesteps("fast", 3, 10) == [3, 2, 1, 0]  # never more steps than exist
    with pytest.raises(ValueError):
        sampler_timesteps("ddim", 10, 2)


def test_noised_start_closed_form():
    x, delta, ab = torch.rand(2, 1, 4, 4), torch.randn(2, 1, 4, 4), 0.3
    expected = math.sqrt(ab) * (2 * (x + delta) - 1)
    torch.testing.assert_close(noised_start(x + delta, ab), expected)


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("t", [500, 37, 1, 0])
def test_step_equals_diffusers_for_consecutive_steps(variance_type, prediction_type, t):
    sched = DDPMScheduler(beta_schedule="linear", variance_type=variance_type, prediction_type=prediction_type)
    sched.set_timesteps(1000)
    g = torch.Generator().manual_seed(3)
    sample, output = torch.randn(3, 1, 5, 5, generator=g), torch.randn(3, 1, 5, 5, generator=g)
    theirs = sched.step(output, t, sample, generator=torch.Generator().manual_seed(9))
    noise = torch.randn(3, 1, 5, 5, generator=torch.Generator().manual_seed(9))
    ours = ddpm_step(sched, output, t, t - 1, sample, noise if t > 0 else None)
    # float32 (diffusers) vs float64 coefficients (ours): agree to ~1e-4 where 1 - ab_t is tiny
    torch.testing.assert_close(ours.prev_sample, theirs.prev_sample, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(ours.pred_original_sample, theirs.pred_original_sample, atol=2e-4, rtol=1e-4)


def _gaussian_eps(x: torch.Tensor, ab: float, s2: float) -> torch.Tensor:
    """Exact epsilon of data N(0, s2): eps = -sqrt(1 - ab) * score, score = -x / (ab s2 + 1 - ab)."""
    return math.sqrt(1 - ab) * x / (ab * s2 + 1 - ab)


@pytest.mark.parametrize("sampler, tol", [("full", 0.03), ("fast", 0.08)])
def test_reverse_chain_samples_the_gaussian_posterior(scheduler, sampler, tol):
    """With the exact score of N(0, s2) data, endpoints from x_t follow p(x0 | x_t) (closed form).

    The full chain matches mean and variance; the 10-step respaced chain matches the mean but,
    with DDPM's fixed_small variance, under-disperses (a known property of few-step DDPM).
    """
    sched = DDPMScheduler(beta_schedule="linear", clip_sample=False)
    s2, t_star, n = 0.25, 300, 20000
    ab_star = sched.alphas_cumprod[t_star].item()
    x_t = torch.full((n, 1, 1, 1), 0.8)
    g = torch.Generator().manual_seed(0)
    steps = sampler_timesteps(sampler, t_star, 10)
    x = x_t
    for i, t in enumerate(steps):
        prev_t = steps[i + 1] if i + 1 < len(steps) else -1
        eps = _gaussian_eps(x, sched.alphas_cumprod[t].item(), s2)
        x = ddpm_step(sched, eps, t, prev_t, x, torch.randn(x.shape, generator=g)).prev_sample
    denom = ab_star * s2 + 1 - ab_star
    mean, var = math.sqrt(ab_star) * s2 * 0.8 / denom, s2 * (1 - ab_star) / denom
    assert x.mean().item() == pytest.approx(mean, abs=tol * math.sqrt(var) + 4 * math.sqrt(var / n))
    if sampler == "full":
        assert x.var().item() == pytest.approx(var, rel=4 * tol)
    else:
        assert 0.5 * var < x.var().item() < 0.9 * var
