"""The reverse diffusion loop from x_t* (Ho et al. 2020; respaced, Nichol & Dhariwal 2021): the only one.

DensePure (Xiao et al. 2023, Alg. 1) runs it K times per noise draw; the adaptive attack runs it
differentiably through the purifier; the per-seed reference runs it one seed at a time. Each step is
one UNet call through `runtime.unet_eps` and one `diffusion.ddpm_step`; a Gaussian draw is taken from
`noise` after the UNet call of every step but the last (which returns x0_hat itself). Callers bring
the noise (the engine's keyed `seeding.BlockNoise` streams or the attacker's single generator, see
`seeding.gaussian_stream`) and the gradient mode: the engine's entry points run under inference_mode,
the attack with gradients on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from densepure_viz.engine.diffusion import StepOutput, ddpm_step
from densepure_viz.models.registry import DensePureModels
from densepure_viz.engine.runtime import EvalCounter, unet_eps


def reverse_steps(
    models: DensePureModels,
    x_start: torch.Tensor,
    timesteps: Sequence[int],
    noise: Iterator[torch.Tensor],
    eps_start: torch.Tensor | None = None,
    counter: EvalCounter | None = None,
) -> Iterator[StepOutput]:
    """Reverse chains from x_start (B, C, H, W) at timesteps[0] through the descending `timesteps`.

    Yields each step's StepOutput (x at the next timestep, and x0_hat); the last step's prev_sample
    is the purified image (model range). eps_start (B, C, H, W), when given, is the UNet output at
    timesteps[0], computed once by a caller whose chains share their start. `noise` yields standard
    normal draws (B, C, H, W), one per step except the last.
    """
    x = x_start
    for i, t in enumerate(timesteps):
        eps = eps_start if i == 0 and eps_start is not None else unet_eps(models, x, t, counter)
        prev_t = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        out = ddpm_step(models.scheduler, eps, t, prev_t, x, next(noise) if prev_t >= 0 else None)
        yield out
        x = out.prev_sample
