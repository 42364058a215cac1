"""Test helpers: the slow, obviously-correct references that the tests and the bench hold the engine to.

Two baselines: the per-seed reference structure and the bare networks.

Per-seed reference: DensePure's public code certifies with one reverse seed per full pass over the
noise draws and merges the per-seed label files afterwards (a majority vote per draw). Each pass
recomputes the UNet at t* and every seed of every draw runs to the end: K * b UNet evaluations per
draw. `per_seed_labels` keeps that structure but reuses the engine's own pieces (noise streams,
`reverse` with one seed, the classifier), so for the same seeds it must give exactly the engine's
labels, votes and certificate; the equivalence tests check that.

Floor: `replay` calls the bare networks with the batch shapes, counts and timesteps that an engine
run recorded in its EvalCounter, on random inputs: the time the networks alone need for the work.
"""

from __future__ import annotations

import torch

from densepure_viz.smoothing.certify import CertifyConfig, CertifyResult, certify
from densepure_viz.engine.diffusion import to_unit
from densepure_viz.models.registry import DensePureModels
from densepure_viz.engine.purify import PurifyConfig, reverse, start_draws
from densepure_viz.engine.runtime import EvalCounter, auto_batch, predict_labels, unet_eps
from densepure_viz.engine.seeding import Stream
from densepure_viz.engine.votes import majority_vote


@torch.inference_mode()
def per_seed_labels(
    models: DensePureModels,
    x01: torch.Tensor,
    cfg: PurifyConfig,
    seed: int,
    phase: Stream,
    draws: torch.Tensor,
    max_batch: int | None = None,
    counter: EvalCounter | None = None,
) -> torch.Tensor:
    """Labels (m, K) of image x01 (C, H, W)'s noise draws (m,): one pass over all draws per seed."""
    t_star, timesteps = cfg.plan(models)
    columns = []
    for k in range(cfg.seeds):
        column = []
        for chunk in draws.split(max_batch or auto_batch(models)):
            traj = start_draws(models, x01, cfg.sigma, t_star, seed, phase, chunk)
            *_, last = reverse(models, traj, timesteps, [k], counter)
            column.append(predict_labels(models, to_unit(last.prev_sample), counter).cpu())
        columns.append(torch.cat(column))
    return torch.stack(columns, dim=1)


def per_seed_certify(
    models: DensePureModels,
    x01: torch.Tensor,
    cfg: PurifyConfig,
    ccfg: CertifyConfig,
    seed: int,
    max_batch: int | None = None,
    counter: EvalCounter | None = None,
) -> CertifyResult:
    """CERTIFY x01 from per-seed passes over the selection and estimation draws, votes merged afterwards."""
    votes = {
        phase: majority_vote(per_seed_labels(models, x01, cfg, seed, phase, torch.arange(n), max_batch, counter),
                             models.num_classes)
        for phase, n in ((Stream.SELECT, ccfg.n0), (Stream.ESTIMATE, ccfg.n))
    }
    return certify(lambda phase, draws: votes[phase][draws], models.num_classes, cfg.sigma, ccfg,
                   chunk=max(ccfg.n0, ccfg.n))


@torch.inference_mode()
def replay(models: DensePureModels, recorded: EvalCounter) -> EvalCounter:
    """Run the bare UNet and classifier on the recorded batch shapes (random inputs); returns the replay's counter."""
    shape = (models.channels, models.image_size, models.image_size)
    largest = max([n for _, n in recorded.unet_calls] + recorded.classifier_calls)
    x = torch.randn(largest, *shape, generator=torch.Generator().manual_seed(0)).to(models.device)
    floor = EvalCounter()
    for t, n in recorded.unet_calls:
        unet_eps(models, x[:n], t, floor)
    for n in recorded.classifier_calls:
        predict_labels(models, x[:n].clamp(0, 1), floor)
    return floor
