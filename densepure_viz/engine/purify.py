"""DensePure purification (Xiao et al. 2023, Alg. 1): smooth, diffuse to t*, reverse with K seeds, vote.

For an image x in [0, 1] and a noise draw delta ~ N(0, sigma^2 I), the start point
x_t* = sqrt(ab_t*) * (2 (x + delta) - 1) is shared by all K reverse seeds (as in the paper), so the
first UNet evaluation at t* is computed once per draw and reused by every seed. The seeds of all
draws run as one batch of chains, each (draw, seed) pair with its own noise stream (see `seeding`).
Each purified image is classified and the K labels are majority-voted (`votes`); a tie goes to the
smallest class index.

When only the vote is needed (`densepure_votes`, the base classifier of CERTIFY), seeds run in
rounds: first K // 2 + 1 seeds per draw (the fewest that can decide a majority), then only the
undecided draws continue, each with the fewest further seeds that could decide it
(`votes.seeds_to_decide`). Because a chain's noise depends only on its (draw, seed) keys, the votes are
exactly those of running all K seeds, at a fraction of the UNet evaluations. How the networks are
run (precision, batch size, counting) lives in `runtime`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from densepure_viz.engine.diffusion import (
    DATA_SCALE,
    SAMPLERS,
    Sampler,
    StepOutput,
    noised_start,
    sampler_timesteps,
    timestep_for_sigma,
    to_unit,
)
from densepure_viz.errors import InputError
from densepure_viz.models.registry import DensePureModels
from densepure_viz.engine.reverse import reverse_steps
from densepure_viz.engine.runtime import EvalCounter, auto_batch, predict_labels, unet_eps
from densepure_viz.engine.seeding import BlockNoise, Stream
from densepure_viz.engine.votes import first_round_seeds, seeds_to_decide, vote_counts

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
            raise InputError(f"sigma must be in (0, 10], got {self.sigma}")
        if not 1 <= self.seeds <= MAX_SEEDS:
            raise InputError(f"seeds (K) must be in 1..{MAX_SEEDS}, got {self.seeds}")
        if self.sampler not in SAMPLERS:
            raise InputError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if not 1 <= self.steps <= MAX_STEPS:
            raise InputError(f"steps must be in 1..{MAX_STEPS}, got {self.steps}")

    def plan(self, models: DensePureModels) -> tuple[int, list[int]]:
        """(t*, the descending timesteps evaluated) on this model's schedule."""
        t_star = timestep_for_sigma(self.sigma, models.scheduler.alphas_cumprod, DATA_SCALE)
        return t_star, sampler_timesteps(self.sampler, t_star, self.steps)


CERTIFY_PURIFIER = PurifyConfig(seeds=4)  # certify's default: each of the n0 + n draws runs K chains, so fewer


@dataclass
class Trajectories:
    """A batch of noise draws about to be reversed, K seeds each."""

    x_start: torch.Tensor  # (m, C, H, W) x_t*, model range
    noisy: torch.Tensor  # (m, C, H, W) x + delta (not clipped: what the bare smoothed classifier sees)
    noise: BlockNoise  # streams of these draws


def smoothed_draws(
    models: DensePureModels, x01: torch.Tensor, sigma: float, seed: int, phase: Stream, draws: torch.Tensor
) -> tuple[torch.Tensor, BlockNoise]:
    """x + delta (m, C, H, W) for noise draws `draws` (m,) of image x01, and their noise streams.

    x01 is one image (C, H, W) shared by all draws, or one image per draw (m, C, H, W).
    """
    x = x01.to(models.device, torch.float32)
    noise = BlockNoise(seed, phase, draws, tuple(x.shape[-3:]), models.device)
    return x + sigma * noise.smoothing(), noise


def start_draws(
    models: DensePureModels, x01: torch.Tensor, sigma: float, t_star: int, seed: int, phase: Stream, draws: torch.Tensor
) -> Trajectories:
    """Smoothing noise and the shared start x_t* for each draw of image x01 (C, H, W)."""
    noisy, noise = smoothed_draws(models, x01, sigma, seed, phase, draws)
    ab = models.scheduler.alphas_cumprod[t_star].item()
    return Trajectories(noised_start(noisy, ab), noisy, noise)


def _chains(
    models: DensePureModels,
    traj: Trajectories,
    timesteps: Sequence[int],
    rows: torch.Tensor,
    seeds: torch.Tensor,
    eps_start: torch.Tensor,
    counter: EvalCounter | None,
) -> Iterator[StepOutput]:
    """Chains (draw rows[p], seed seeds[p]) (P,), given the UNet output at t* per draw (m, ...); yields each step.

    The first step reuses eps_start, which all seeds of a draw share.
    """
    noise = traj.noise.chains(rows, seeds)
    return reverse_steps(models, traj.x_start[rows], timesteps, noise, eps_start[rows], counter)


def _grid(m: int, seed_ids: Sequence[int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, seeds) of every draw 0..m-1 with every seed, draw-major, (m * K,) each."""
    seeds = torch.as_tensor(list(seed_ids), dtype=torch.long, device=device)
    return torch.arange(m, device=device).repeat_interleave(len(seeds)), seeds.repeat(m)


def reverse(
    models: DensePureModels,
    traj: Trajectories,
    timesteps: Sequence[int],
    seed_ids: Sequence[int],
    counter: EvalCounter | None = None,
) -> Iterator[StepOutput]:
    """Run K = len(seed_ids) seeded reverse chains from every start; yield each step, batch (m * K) draw-major.

    The first UNet call at t* sees the same input for all K seeds, so it runs once per draw.
    """
    rows, seeds = _grid(len(traj.x_start), seed_ids, models.device)
    eps_start = unet_eps(models, traj.x_start, timesteps[0], counter)
    yield from _chains(models, traj, timesteps, rows, seeds, eps_start, counter)


def _draw_chunks(x01: torch.Tensor, draws: torch.Tensor, per_chunk: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(image(s), draws) in chunks of `per_chunk` draws; x01 is one image (C, H, W) or one per draw (m, C, H, W)."""
    images = x01.split(per_chunk) if x01.dim() == 4 else [x01] * len(draws.split(per_chunk))
    return zip(images, draws.split(per_chunk))


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
    counter: EvalCounter | None = None,
) -> torch.Tensor:
    """Labels (m, K) of the purified images for noise draws `draws` (m,) of x01: (C, H, W) or (m, C, H, W).

    Runs every seed of every draw; use `densepure_votes` when only the majority vote is needed.
    """
    seed_ids = list(range(cfg.seeds)) if seed_ids is None else list(seed_ids)
    t_star, timesteps = cfg.plan(models)
    per_chunk = max(1, (max_batch or auto_batch(models)) // len(seed_ids))
    labels = []
    for x, chunk in _draw_chunks(x01, draws, per_chunk):
        traj = start_draws(models, x, cfg.sigma, t_star, seed, phase, chunk)
        *_, last = reverse(models, traj, timesteps, seed_ids, counter)
        labels.append(predict_labels(models, to_unit(last.prev_sample), counter).view(len(chunk), len(seed_ids)))
    return torch.cat(labels).cpu()


def _round_chains(done: torch.Tensor, todo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, seeds) of the next round: draw i runs seeds done[i] .. done[i] + todo[i] - 1."""
    rows = torch.arange(len(todo), device=todo.device).repeat_interleave(todo)
    first_of_row = (todo.cumsum(0) - todo).repeat_interleave(todo)  # position of each row's first chain
    return rows, done[rows] + torch.arange(len(rows), device=todo.device) - first_of_row


def _early_votes(
    models: DensePureModels, traj: Trajectories, timesteps: Sequence[int], k: int, counter: EvalCounter | None
) -> torch.Tensor:
    """Majority votes (m,) of K seeds per draw, running seeds in rounds until every vote is decided."""
    m = len(traj.x_start)
    eps_start = unet_eps(models, traj.x_start, timesteps[0], counter)  # shared by all rounds and seeds
    counts = torch.zeros(m, models.num_classes, dtype=torch.long, device=models.device)
    done = torch.zeros(m, dtype=torch.long, device=models.device)
    todo = torch.full((m,), first_round_seeds(k), dtype=torch.long, device=models.device)
    while bool(todo.any()):  # one host sync per round: which chains run next
        rows, seeds = _round_chains(done, todo)
        *_, last = _chains(models, traj, timesteps, rows, seeds, eps_start, counter)
        labels = predict_labels(models, to_unit(last.prev_sample), counter)
        counts.index_put_((rows, labels), torch.ones_like(labels), accumulate=True)
        done += todo
        todo = seeds_to_decide(counts, k - done)
    return counts.argmax(dim=-1)


@torch.inference_mode()
def densepure_votes(
    models: DensePureModels,
    x01: torch.Tensor,
    cfg: PurifyConfig,
    seed: int,
    phase: Stream,
    draws: torch.Tensor,
    max_batch: int | None = None,
    counter: EvalCounter | None = None,
) -> torch.Tensor:
    """Majority votes (m,) of K = cfg.seeds seeds for noise draws `draws` (m,) of x01 (C, H, W) or (m, C, H, W).

    Equal to votes.majority_vote(densepure_labels(...)) with the same arguments, but seeds run in rounds and
    decided draws stop early (module docstring). max_batch bounds the images of the first round.
    """
    t_star, timesteps = cfg.plan(models)
    per_chunk = max(1, (max_batch or auto_batch(models)) // first_round_seeds(cfg.seeds))
    votes = []
    for x, chunk in _draw_chunks(x01, draws, per_chunk):
        traj = start_draws(models, x, cfg.sigma, t_star, seed, phase, chunk)
        votes.append(_early_votes(models, traj, timesteps, cfg.seeds, counter))
    return torch.cat(votes).cpu()


@dataclass
class PurifyFrame:
    """One reverse step of an interactive purification (all K seeds), in display range [0, 1]."""

    step: int  # 0-based index among the evaluated timesteps
    total: int  # number of evaluated timesteps
    t: int  # the timestep whose UNet output produced this frame
    x_t: torch.Tensor  # (K, C, H, W) the sample entering the step, shown as x_t / sqrt(ab_t)
    x0: torch.Tensor  # (K, C, H, W) the predicted clean image at this step
    labels: list[int] | None = None  # the classifier's K labels of x0, at the steps asked for (label_steps)


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
    models: DensePureModels, x01: torch.Tensor, cfg: PurifyConfig, seed: int = 0, counter: EvalCounter | None = None,
    label_steps: Collection[int] = (),
) -> Iterator[PurifyFrame | PurifyResult]:
    """Purify image x01 (C, H, W) in [0, 1]: yield a PurifyFrame per reverse step, then the PurifyResult.

    The frames of `label_steps` (0-based step indices) carry the classifier's labels of their predicted x0:
    what a viewer shows as the trajectory's colours, classified once, here.
    """
    t_star, timesteps = cfg.plan(models)
    traj = start_draws(models, x01, cfg.sigma, t_star, seed, Stream.PURIFY, torch.zeros(1, dtype=torch.long))
    x_t, frames = traj.x_start.repeat_interleave(cfg.seeds, dim=0), []
    steps = reverse(models, traj, timesteps, range(cfg.seeds), counter)
    for i, (t, out) in enumerate(zip(timesteps, steps)):
        ab = models.scheduler.alphas_cumprod[t].item()
        frame = PurifyFrame(i, len(timesteps), t, to_unit(x_t / ab**0.5).cpu(), to_unit(out.pred_original_sample).cpu())
        if i in label_steps:
            frame.labels = models.predict(frame.x0).cpu().tolist()
        frames.append(frame)
        yield frame
        x_t = out.prev_sample
    purified = to_unit(x_t)
    per_seed = predict_labels(models, purified, counter)
    counts = vote_counts(per_seed, models.num_classes)
    one_shot = frames[0].x0[0].to(models.device)  # x0 predicted at t*: the same for every seed
    bare = predict_labels(models, torch.stack([x01.to(models.device, torch.float32), traj.noisy[0], one_shot]), counter)
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


def purify(
    models: DensePureModels, x01: torch.Tensor, cfg: PurifyConfig, seed: int = 0, counter: EvalCounter | None = None
) -> PurifyResult:
    """Run purify_stream to the end and return its result."""
    *_, result = purify_stream(models, x01, cfg, seed, counter)
    return result
