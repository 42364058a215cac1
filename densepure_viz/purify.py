"""DensePure purification (Xiao et al. 2023, Alg. 1): smooth, diffuse to t*, reverse with K seeds, vote.

For an image x in [0, 1] and a noise draw delta ~ N(0, sigma^2 I), the start point
x_t* = sqrt(ab_t*) * (2 (x + delta) - 1) is shared by all K reverse seeds (as in the paper), so the
first UNet evaluation at t* is computed once per draw and broadcast to the K seeds. The K seeds of
all draws then run as one batch, each (draw, seed) pair with its own noise stream (see `seeding`).
Each purified image is classified and the K labels are majority-voted; a tie goes to the smallest
class index (the rule of `torch.argmax` on the counts).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from densepure_viz.diffusion import (
    DATA_SCALE,
    SAMPLERS,
    Sampler,
    StepOutput,
    ddpm_step,
    noised_start,
    sampler_timesteps,
    timestep_for_sigma,
)
from densepure_viz.certify import BaseClassifier
from densepure_viz.models import DensePureModels
from densepure_viz.seeding import Stream, make_generator

DRAW_BLOCK = 32  # noise draws per generator block: the unit of smoothing/reverse noise streams
MAX_SEEDS = 64  # caps that keep one request bounded
MAX_STEPS = 1000


@dataclass(frozen=True)
class PurifyConfig:
    """What DensePure runs for one noise draw."""

    sigma: float = 0.5  # randomized-smoothing std on [0, 1] pixels
    seeds: int = 8  # K reverse trajectories per draw, majority-voted
    sampler: Sampler = "fast"  # one-shot x0 prediction, respaced few-step chain, or full DDPM chain
    steps: int = 10  # b, the UNet evaluations of the "fast" sampler

    def __post_init__(self) -> None:
        if not (isinstance(self.sigma, (int, float)) and 0 < self.sigma <= 10):
            raise ValueError(f"sigma must be in (0, 10], got {self.sigma}")
        if not 1 <= self.seeds <= MAX_SEEDS:
            raise ValueError(f"seeds (K) must be in 1..{MAX_SEEDS}, got {self.seeds}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if not 1 <= self.steps <= MAX_STEPS:
            raise ValueError(f"steps must be in 1..{MAX_STEPS}, got {self.steps}")

    def plan(self, models: DensePureModels) -> tuple[int, list[int]]:
        """(t*, the descending timesteps evaluated) on this model's schedule."""
        t_star = timestep_for_sigma(self.sigma, models.scheduler.alphas_cumprod, DATA_SCALE)
        return t_star, sampler_timesteps(self.sampler, t_star, self.steps)


def vote_counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts (..., num_classes) of integer labels (..., K)."""
    counts = torch.zeros(*labels.shape[:-1], num_classes, dtype=torch.long, device=labels.device)
    return counts.scatter_add_(-1, labels, torch.ones_like(labels))


def majority_vote(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The most frequent label along the last axis; ties go to the smallest class index."""
    return vote_counts(labels, num_classes).argmax(dim=-1)


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Model range [-1, 1] -> display range [0, 1]."""
    return ((x + 1) / DATA_SCALE).clamp(0, 1)


class _BlockNoise:
    """Gaussian draws for a set of noise draws, one generator per (block of draws, stream, seed).

    Draw i lives in block i // DRAW_BLOCK at row i % DRAW_BLOCK; a generator always produces a full
    block, so a trajectory's noise does not depend on which other draws share the batch.
    """

    def __init__(self, seed: int, phase: Stream, draws: torch.Tensor, shape: tuple[int, ...], device: torch.device):
        self.seed, self.phase, self.shape, self.device = seed, phase, shape, device
        self.blocks, self.block_pos = torch.unique(draws // DRAW_BLOCK, return_inverse=True)  # (nb,), (m,)
        self.rows = (draws % DRAW_BLOCK).to(device)
        self.block_pos = self.block_pos.to(device)

    def _generators(self, *keys: int) -> list[torch.Generator]:
        return [make_generator(self.seed, self.phase, *keys, int(b), device=self.device) for b in self.blocks]

    def _gather(self, full: torch.Tensor) -> torch.Tensor:
        """(nb, DRAW_BLOCK, ...) -> the rows of our draws, (m, ...)."""
        return full[self.block_pos, self.rows]

    def smoothing(self) -> torch.Tensor:
        """Standard normal delta/sigma for each draw, (m, *shape)."""
        gens = self._generators(Stream.SMOOTHING)
        full = torch.stack([torch.randn(DRAW_BLOCK, *self.shape, generator=g, device=self.device) for g in gens])
        return self._gather(full)

    def reverse(self, seed_ids: Sequence[int]) -> Iterator[torch.Tensor]:
        """Per reverse step, the noise of every (draw, seed) pair, (m * K, *shape), draw-major."""
        gens = [self._generators(Stream.REVERSE, k) for k in seed_ids]  # [K][nb]
        while True:
            full = torch.stack(
                [torch.stack([torch.randn(DRAW_BLOCK, *self.shape, generator=g, device=self.device) for g in per_seed])
                 for per_seed in gens],
                dim=2,
            )  # (nb, DRAW_BLOCK, K, *shape)
            yield self._gather(full).flatten(0, 1)


@dataclass
class Trajectories:
    """A batch of noise draws about to be reversed, K seeds each."""

    x_start: torch.Tensor  # (m, C, H, W) x_t*, model range
    noisy: torch.Tensor  # (m, C, H, W) x + delta (not clipped: what the bare smoothed classifier sees)
    noise: _BlockNoise  # streams of these draws


def smoothed_draws(
    models: DensePureModels, x01: torch.Tensor, sigma: float, seed: int, phase: Stream, draws: torch.Tensor
) -> tuple[torch.Tensor, _BlockNoise]:
    """x + delta (m, C, H, W) for noise draws `draws` (m,) of image x01, and their noise streams.

    x01 is one image (C, H, W) shared by all draws, or one image per draw (m, C, H, W).
    """
    x = x01.to(models.device, torch.float32)
    noise = _BlockNoise(seed, phase, draws, tuple(x.shape[-3:]), models.device)
    return x + sigma * noise.smoothing(), noise


def start_draws(
    models: DensePureModels, x01: torch.Tensor, sigma: float, t_star: int, seed: int, phase: Stream, draws: torch.Tensor
) -> Trajectories:
    """Smoothing noise and the shared start x_t* for each draw of image x01 (C, H, W)."""
    noisy, noise = smoothed_draws(models, x01, sigma, seed, phase, draws)
    ab = models.scheduler.alphas_cumprod[t_star].item()
    return Trajectories(noised_start(noisy, ab), noisy, noise)


def _unet(models: DensePureModels, x: torch.Tensor, t: int) -> torch.Tensor:
    return models.unet(x.to(models.dtype), t).sample.float()


def reverse(
    models: DensePureModels, traj: Trajectories, timesteps: Sequence[int], seed_ids: Sequence[int]
) -> Iterator[StepOutput]:
    """Run K = len(seed_ids) seeded reverse chains from every start; yield each step, batch (m * K) draw-major.

    The first UNet call at t* sees the same input for all K seeds, so it runs once per draw.
    """
    k = len(seed_ids)
    noise = traj.noise.reverse(seed_ids)
    eps = _unet(models, traj.x_start, timesteps[0]).repeat_interleave(k, dim=0)
    x = traj.x_start.repeat_interleave(k, dim=0)
    for i, t in enumerate(timesteps):
        if i > 0:
            eps = _unet(models, x, t)
        prev_t = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        out = ddpm_step(models.scheduler, eps, t, prev_t, x, next(noise) if prev_t >= 0 else None)
        yield out
        x = out.prev_sample


def auto_batch(models: DensePureModels) -> int:
    """Images per UNet batch: ~2M input values on CPU (2048 at 1x16x16), 8x that on a GPU."""
    values = models.channels * models.image_size**2
    budget = 2**21 * (8 if models.device.type == "cuda" else 1)
    return max(1, budget // values)


@torch.inference_mode()
def densepure_labels(
    models: DensePureModels,
    x01: torch.Tensor,
    cfg: PurifyConfig,
    seed: int,
    phase: Stream,
    draws: torch.Tensor,
    seed_ids: Sequence[int] | None = None,
    max_batch: int | None = None,
) -> torch.Tensor:
    """Labels (m, K) of the purified images for noise draws `draws` (m,) of x01: (C, H, W) or (m, C, H, W)."""
    seed_ids = list(range(cfg.seeds)) if seed_ids is None else list(seed_ids)
    t_star, timesteps = cfg.plan(models)
    per_chunk = max(1, (max_batch or auto_batch(models)) // len(seed_ids))
    images = x01.split(per_chunk) if x01.dim() == 4 else [x01] * len(draws.split(per_chunk))
    labels = []
    for chunk, x in zip(draws.split(per_chunk), images):
        traj = start_draws(models, x, cfg.sigma, t_star, seed, phase, chunk)
        *_, last = reverse(models, traj, timesteps, seed_ids)
        labels.append(models.predict(to_unit(last.prev_sample)).view(len(chunk), len(seed_ids)))
    return torch.cat(labels).cpu()


@dataclass
class PurifyFrame:
    """One reverse step of an interactive purification (all K seeds), in display range [0, 1]."""

    step: int  # 0-based index among the evaluated timesteps
    total: int  # number of evaluated timesteps
    t: int  # the timestep whose UNet output produced this frame
    x_t: torch.Tensor  # (K, C, H, W) the sample entering the step, shown as x_t / sqrt(ab_t)
    x0: torch.Tensor  # (K, C, H, W) the predicted clean image at this step


@dataclass
class PurifyResult:
    """DensePure on one noise draw of one image."""

    label: int  # majority vote of the K seeds (ties: smallest index)
    votes: dict[int, int]  # label -> number of seeds
    per_seed: list[int]  # label of each seed's purified image
    t_star: int  # diffusion step matching sigma
    timesteps: list[int]  # evaluated timesteps, descending
    input_label: int  # bare classifier on the (possibly adversarial) input
    noisy_label: int  # bare classifier on x + delta
    one_shot_label: int  # classifier on the one-shot x0 prediction at t* (Carlini et al.)
    noisy: torch.Tensor  # (C, H, W) x + delta, clipped to [0, 1]
    purified: torch.Tensor  # (K, C, H, W) final purified images
    frames: list[PurifyFrame] = field(default_factory=list)  # every step, when kept


@torch.inference_mode()
def purify_stream(
    models: DensePureModels, x01: torch.Tensor, cfg: PurifyConfig, seed: int = 0
) -> Iterator[PurifyFrame | PurifyResult]:
    """Purify image x01 (C, H, W) in [0, 1]: yield a PurifyFrame per reverse step, then the PurifyResult."""
    t_star, timesteps = cfg.plan(models)
    traj = start_draws(models, x01, cfg.sigma, t_star, seed, Stream.PURIFY, torch.zeros(1, dtype=torch.long))
    x_t, frames = traj.x_start.repeat_interleave(cfg.seeds, dim=0), []
    for i, (t, out) in enumerate(zip(timesteps, reverse(models, traj, timesteps, range(cfg.seeds)))):
        ab = models.scheduler.alphas_cumprod[t].item()
        frame = PurifyFrame(i, len(timesteps), t, to_unit(x_t / ab**0.5).cpu(), to_unit(out.pred_original_sample).cpu())
        frames.append(frame)
        yield frame
        x_t = out.prev_sample
    purified = to_unit(x_t)
    per_seed = models.predict(purified)
    counts = vote_counts(per_seed, models.num_classes)
    one_shot = frames[0].x0[0].to(models.device)  # x0 predicted at t*: the same for every seed
    bare = models.predict(torch.stack([x01.to(models.device, torch.float32), traj.noisy[0], one_shot]))
    yield PurifyResult(
        label=int(counts.argmax()),
        votes={int(c): int(n) for c, n in enumerate(counts.tolist()) if n},
        per_seed=per_seed.tolist(),
        t_star=t_star,
        timesteps=list(timesteps),
        input_label=int(bare[0]),
        noisy_label=int(bare[1]),
        one_shot_label=int(bare[2]),
        noisy=traj.noisy[0].clamp(0, 1).cpu(),
        purified=purified.cpu(),
        frames=frames,
    )


def purify(models: DensePureModels, x01: torch.Tensor, cfg: PurifyConfig, seed: int = 0) -> PurifyResult:
    """Run purify_stream to the end and return its result."""
    *_, result = purify_stream(models, x01, cfg, seed)
    return result


def densepure_base(models: DensePureModels, x01: torch.Tensor, cfg: PurifyConfig, seed: int, max_batch: int | None = None) -> BaseClassifier:
    """DensePure's majority vote as the base classifier of randomized smoothing, for image x01."""

    def base(phase: Stream, draws: torch.Tensor) -> torch.Tensor:
        labels = densepure_labels(models, x01, cfg, seed, phase, draws, max_batch=max_batch)
        return majority_vote(labels, models.num_classes)

    return base


def bare_base(models: DensePureModels, x01: torch.Tensor, sigma: float, seed: int) -> BaseClassifier:
    """The classifier alone on x + delta: Cohen et al.'s smoothed classifier, on the same noise draws."""

    @torch.inference_mode()
    def base(phase: Stream, draws: torch.Tensor) -> torch.Tensor:
        noisy, _ = smoothed_draws(models, x01, sigma, seed, phase, draws)
        return models.predict(noisy).cpu()

    return base
