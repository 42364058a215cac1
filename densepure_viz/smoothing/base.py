"""The base classifiers randomized smoothing wraps, built once for the CLI, the Certify view and the evaluation.

CERTIFY (`certify`, `sequential`) takes any `BaseClassifier`: (phase, draw indices) -> labels, each draw on its
own keyed noise stream. Three are compared throughout: the bare classifier on x + delta (Cohen et al. 2019),
one-shot denoising, a single x0 prediction at t* (Carlini et al. 2023), and DensePure's majority vote over K
reverse trajectories (Xiao et al. 2023). With the base comes its chunk: the draws per call that fill one batch
of the networks (K images per draw for a purifier). Results never depend on the chunk (every draw has its own
stream); only memory and progress reports do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from densepure_viz.engine.purify import PurifyConfig, densepure_votes, smoothed_draws
from densepure_viz.engine.runtime import EvalCounter, auto_batch, predict_labels
from densepure_viz.engine.seeding import Stream
from densepure_viz.models.registry import DensePureModels
from densepure_viz.smoothing.certify import BaseClassifier

Method = Literal["bare", "one-shot", "densepure"]
METHODS: tuple[Method, ...] = ("bare", "one-shot", "densepure")


@dataclass(frozen=True)
class Smoothed:
    """A base classifier for one image, and how to call it."""

    base: BaseClassifier  # (phase, draws (m,)) -> labels (m,) on the image's own noise draws
    chunk: int  # draws per call: one batch of the networks
    purifier: PurifyConfig | None  # the denoiser in front of the classifier (None: the bare classifier)


def one_shot(sigma: float, steps: int = PurifyConfig.steps) -> PurifyConfig:
    """One-shot denoising at sigma: one x0 prediction at t* (steps is only recorded: one-shot makes one call)."""
    return PurifyConfig(sigma=sigma, seeds=1, sampler="one-shot", steps=steps)


def densepure_base(
    models: DensePureModels,
    x01: torch.Tensor,
    cfg: PurifyConfig,
    seed: int,
    max_batch: int | None = None,
    counter: EvalCounter | None = None,
) -> BaseClassifier:
    """DensePure's majority vote as the base classifier of randomized smoothing, for image x01 (early-stopping votes)."""

    def base(phase: Stream, draws: torch.Tensor) -> torch.Tensor:
        return densepure_votes(models, x01, cfg, seed, phase, draws, max_batch=max_batch, counter=counter)

    return base


def bare_base(models: DensePureModels, x01: torch.Tensor, sigma: float, seed: int) -> BaseClassifier:
    """The classifier alone on x + delta: Cohen et al.'s smoothed classifier, on the same noise draws."""

    @torch.inference_mode()
    def base(phase: Stream, draws: torch.Tensor) -> torch.Tensor:
        noisy, _ = smoothed_draws(models, x01, sigma, seed, phase, draws)
        return predict_labels(models, noisy).cpu()

    return base


def smoothed(models: DensePureModels, x01: torch.Tensor, method: Method, cfg: PurifyConfig, seed: int) -> Smoothed:
    """`method` at cfg's sigma on image x01's draws: the bare classifier, one-shot denoising, or DensePure as cfg."""
    if method == "bare":
        return Smoothed(bare_base(models, x01, cfg.sigma, seed), auto_batch(models), None)
    purifier = cfg if method == "densepure" else one_shot(cfg.sigma, cfg.steps)
    return Smoothed(densepure_base(models, x01, purifier, seed), max(1, auto_batch(models) // purifier.seeds), purifier)
