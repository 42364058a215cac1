"""Adversarial perturbations: FGSM, PGD (L-inf and L2), and the adaptive EOT attack through the purifier.

FGSM (Goodfellow et al. 2015) takes one step along the sign of the loss gradient; PGD (Madry et al.
2018) takes `steps` such steps from a random point of the epsilon ball, projecting back onto the
ball and onto the [0, 1] image box after each. Under L2 the step follows the normalised gradient
and the projection rescales the perturbation to norm eps.

Two threat models, named as in the UI and CLI:
  classifier: attack the bare classifier, then hand the image to the purifier (the transfer setting
              in which purification defences were first evaluated);
  adaptive:   attack the purifier itself with Expectation over Transformation (Athalye et al. 2018):
              each PGD step averages the loss over `eot_samples` seeded noise draws delta of the
              smoothing that DensePure applies (Xiao et al. 2023, Alg. 1), through the diffusion
              model's one-shot x0 prediction (Carlini et al. 2023) or a short respaced reverse chain,
              and the classifier. Gradients flow through the UNet itself, so no BPDA surrogate is
              needed; only the clipping of x0 to the image range stops them where it saturates.
The adaptive attacker draws its own noise (streams Stream.ATTACK_START / Stream.ATTACK_EOT), never the
defender's streams, and its success is judged on fresh draws it did not optimise against.

Randomness enters only through explicit seeds (see `seeding`); the global RNG is never touched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from densepure_viz.errors import InputError
from densepure_viz.engine.diffusion import (
    DATA_SCALE,
    noised_start,
    sampler_timesteps,
    timestep_for_sigma,
    to_unit,
)
from densepure_viz.models.registry import DensePureModels
from densepure_viz.engine.reverse import reverse_steps
from densepure_viz.engine.seeding import Stream, gaussian_stream, make_generator, rand, randn
from densepure_viz.engine.votes import majority_vote

Norm = Literal["linf", "l2"]
Threat = Literal["classifier", "adaptive"]
AdaptiveSampler = Literal["one-shot", "fast"]
NORMS: tuple[Norm, ...] = ("linf", "l2")
THREATS: tuple[Threat, ...] = ("classifier", "adaptive")
ADAPTIVE_SAMPLERS: tuple[AdaptiveSampler, ...] = ("one-shot", "fast")
MAX_STEPS = 1000  # caps that keep one request bounded
MAX_EOT = 256
MAX_ADAPTIVE_STEPS = 50

LossFn = Callable[[torch.Tensor, int], torch.Tensor]  # (x_adv (B, C, H, W), step) -> loss to ascend (B,)


@dataclass(frozen=True)
class AttackConfig:
    """One attack: threat model, norm ball, PGD schedule and, for the adaptive threat, the purifier it targets."""

    norm: Norm = "linf"  # the ball the perturbation lives in
    eps: float = 0.1  # its radius, on [0, 1] pixels
    steps: int = 10  # PGD iterations; steps=1 without random start is FGSM
    step_size: float | None = None  # per-step length; None: 2.5 * eps / steps (Madry et al. 2018)
    random_start: bool = True  # start from a uniform point of the ball
    target: int | None = None  # class to reach (targeted), or None to leave the true class (untargeted)
    threat: Threat = "classifier"  # attack the bare classifier, or the purifier + classifier (adaptive)
    eot_samples: int = 8  # adaptive: noise draws averaged per gradient
    sigma: float = 0.25  # adaptive: the purifier's smoothing sigma on [0, 1] pixels
    adaptive_sampler: AdaptiveSampler = "one-shot"  # adaptive: x0 prediction at t*, or a short reverse chain
    adaptive_steps: int = 2  # adaptive "fast": UNet evaluations of the differentiated chain
    seed: int = 0  # seeds the random start and the EOT draws

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise InputError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.threat not in THREATS:
            raise InputError(f"threat must be one of {THREATS}, got {self.threat!r}")
        if self.adaptive_sampler not in ADAPTIVE_SAMPLERS:
            raise InputError(f"adaptive_sampler must be one of {ADAPTIVE_SAMPLERS}, got {self.adaptive_sampler!r}")
        if not (isinstance(self.eps, (int, float)) and self.eps >= 0):
            raise InputError(f"eps must be >= 0, got {self.eps!r}")
        if self.norm == "linf" and self.eps > 1:
            raise InputError(f"linf eps must be <= 1 (pixels are in [0, 1]), got {self.eps}")
        if not (isinstance(self.steps, int) and 1 <= self.steps <= MAX_STEPS):
            raise InputError(f"steps must be an integer in 1..{MAX_STEPS}, got {self.steps!r}")
        if self.step_size is not None and not self.step_size > 0:
            raise InputError(f"step_size must be > 0 (or None for 2.5 * eps / steps), got {self.step_size}")
        if self.target is not None and not (isinstance(self.target, int) and self.target >= 0):
            raise InputError(f"target must be a class index >= 0 or None, got {self.target!r}")
        if not (isinstance(self.eot_samples, int) and 1 <= self.eot_samples <= MAX_EOT):
            raise InputError(f"eot_samples must be an integer in 1..{MAX_EOT}, got {self.eot_samples!r}")
        if not (isinstance(self.sigma, (int, float)) and 0 < self.sigma <= 10):
            raise InputError(f"sigma must be in (0, 10], got {self.sigma!r}")
        if not (isinstance(self.adaptive_steps, int) and 1 <= self.adaptive_steps <= MAX_ADAPTIVE_STEPS):
            raise InputError(f"adaptive_steps must be an integer in 1..{MAX_ADAPTIVE_STEPS}, "
                             f"got {self.adaptive_steps!r}")

    @property
    def alpha(self) -> float:
        """The PGD step length actually used."""
        return self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps


@dataclass
class AttackProgress:
    """One finished PGD step."""

    step: int  # 1-based index of the step just taken
    total: int  # steps in the attack
    loss: float  # the attacker's objective at the iterate the step started from (mean over the batch)


@dataclass
class AttackResult:
    """An adversarial image and how it fared."""

    adversarial: torch.Tensor  # (C, H, W) in [0, 1]
    clean_label: int  # bare classifier on the clean image
    adversarial_label: int  # bare classifier on the adversarial image
    success: bool  # the attack reached its goal on its own target (bare classifier, or the purifier's vote)
    target_label_rate: float  # fraction of draws on which the attacked model gives the attacker's outcome
    linf: float  # L-inf norm of the perturbation applied
    l2: float  # L2 norm of the perturbation applied


# --- PGD on any differentiable loss -------------------------------------------------------------


def max_l2_eps(shape: torch.Size | tuple[int, ...]) -> float:
    """sqrt(C * H * W): the diameter of the [0, 1] image box, the largest meaningful L2 eps."""
    numel = 1
    for size in shape[-3:]:
        numel *= size
    return float(numel**0.5)


def _flat_norm(x: torch.Tensor) -> torch.Tensor:
    """Per-example L2 norm (B, 1, 1, 1) of a batch (B, ...)."""
    return x.flatten(1).norm(dim=1).view(-1, *([1] * (x.dim() - 1)))


def project(x: torch.Tensor, x_adv: torch.Tensor, norm: Norm, eps: float) -> torch.Tensor:
    """Nearest point of the eps-ball around x (L-inf: clip; L2: rescale), then of the [0, 1] box.

    Clipping to the box after the ball keeps the result in the ball: x itself lies in the box, so
    clipping only moves each coordinate of the perturbation towards 0.
    """
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * (eps / _flat_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
    return (x + delta).clamp(0, 1)


def random_start(x: torch.Tensor, norm: Norm, eps: float, generator: torch.Generator) -> torch.Tensor:
    """A uniform point of the ball around each image (L2: Gaussian direction, radius eps * U^(1/d)), in the box."""
    if norm == "linf":
        delta = (2 * rand(x.shape, generator, x.device) - 1) * eps
    else:
        direction = randn(x.shape, generator, x.device)
        u = rand((x.shape[0],) + (1,) * (x.dim() - 1), generator, x.device)
        delta = direction / _flat_norm(direction).clamp_min(1e-12) * eps * u ** (1.0 / x[0].numel())
    return project(x, x + delta.to(x.dtype), norm, eps)


def ascent_direction(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Steepest ascent of unit norm: sign(g) for L-inf, g / ||g||_2 for L2 (0 where g is 0)."""
    if norm == "linf":
        return grad.sign()
    return grad / _flat_norm(grad).clamp_min(1e-12)


@torch.inference_mode(False)
@torch.enable_grad()
def pgd_steps(
    loss_fn: LossFn,
    x: torch.Tensor,
    norm: Norm,
    eps: float,
    steps: int,
    step_size: float,
    start: bool = True,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """PGD (Madry et al. 2018) on a batch x (B, C, H, W) in [0, 1]: yield (loss (B,), x_adv) per step.

    The loss is the one at the iterate the step started from; x_adv is the iterate after the step.
    `loss_fn` must be differentiable in its first argument; only x_adv's gradient is taken (the
    networks of a DensePureModels are frozen when it is created).
    Gradients are on (even inside a caller's inference_mode) only while this generator runs.
    """
    if norm not in NORMS:
        raise InputError(f"norm must be one of {NORMS}, got {norm!r}")
    if start and generator is None:
        raise InputError("a random start needs a generator (seed it, e.g. seeding.make_generator(seed, ...))")
    x = x.detach().clone()  # a normal tensor even when the caller made x in inference mode
    x_adv = random_start(x, norm, eps, generator) if start and eps > 0 else x.clone()
    for step in range(steps):
        x_adv.requires_grad_(True)
        loss = loss_fn(x_adv, step)  # (B,)
        (grad,) = torch.autograd.grad(loss.sum(), x_adv)
        x_adv = project(x, x_adv.detach() + step_size * ascent_direction(grad, norm), norm, eps)
        yield loss.detach(), x_adv


def final_iterate(x: torch.Tensor, iterates: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """The last x_adv of PGD's iterates (pgd_steps), x itself when there are none."""
    x_adv = x.detach().clone()
    for _, x_adv in iterates:
        pass
    return x_adv


def fgsm(loss_fn: LossFn, x: torch.Tensor, norm: Norm, eps: float) -> torch.Tensor:
    """FGSM (Goodfellow et al. 2015): one step of length eps along the ascent direction, from x itself."""
    return final_iterate(x, pgd_steps(loss_fn, x, norm, eps, steps=1, step_size=eps, start=False))


# --- the attacked models ------------------------------------------------------------------------


def goal_loss(logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """What the attacker ascends (B,): CE to the true label (untargeted), or minus CE to the target (targeted)."""
    ce = F.cross_entropy(logits, labels, reduction="none")
    return -ce if targeted else ce


def reached(predicted: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Whether predictions meet the attacker's goal: equal the target, or differ from the true label."""
    return predicted == labels if targeted else predicted != labels


def purifier_logits(
    models: DensePureModels, x01: torch.Tensor, cfg: AttackConfig, generator: torch.Generator
) -> torch.Tensor:
    """Logits (E, B, num_classes) of the differentiable purifier on E = cfg.eot_samples noise draws of x01 (B, C, H, W).

    x + delta, delta ~ N(0, sigma^2 I) -> x_t* (diffusion.noised_start) -> reverse with the model's
    own schedule: one x0 prediction at t* (one-shot), or `adaptive_steps` respaced DDPM steps with
    seeded posterior noise -> classifier. The engine's own reverse loop (reverse.reverse_steps),
    batched over images and differentiable in x01; `generator` draws delta first, then each step's noise.
    """
    e = cfg.eot_samples
    t_star = timestep_for_sigma(cfg.sigma, models.scheduler.alphas_cumprod, DATA_SCALE)
    timesteps = sampler_timesteps(cfg.adaptive_sampler, t_star, cfg.adaptive_steps)
    x = x01.float().unsqueeze(0).expand(e, *x01.shape).flatten(0, 1)  # (E*B, C, H, W)
    delta = randn(x.shape, generator, x.device) * cfg.sigma
    x_start = noised_start(x + delta, models.scheduler.alphas_cumprod[t_star].item())
    *_, last = reverse_steps(models, x_start, timesteps, gaussian_stream(x.shape, generator, x.device))
    return models.logits(to_unit(last.prev_sample)).view(e, x01.shape[0], -1)


def attack_loss(models: DensePureModels, labels: torch.Tensor, cfg: AttackConfig) -> LossFn:
    """The loss of cfg's threat model for goal labels (B,) (true labels, or targets when targeted).

    classifier: the goal loss of the bare classifier;
    adaptive:   the goal loss averaged over the EOT draws of PGD step `step` (generator keyed by it).
    """
    targeted = cfg.target is not None
    if cfg.threat == "classifier":
        return lambda x, step: goal_loss(models.logits(x), labels, targeted)

    def eot(x: torch.Tensor, step: int) -> torch.Tensor:
        logits = purifier_logits(models, x, cfg, make_generator(cfg.seed, Stream.ATTACK_EOT, step))
        losses = goal_loss(logits.flatten(0, 1), labels.repeat(cfg.eot_samples), targeted)  # (E * B,)
        return losses.view(cfg.eot_samples, -1).mean(0)

    return eot


def goal_rate(
    models: DensePureModels, x_adv: torch.Tensor, labels: torch.Tensor, cfg: AttackConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """(success (B,), rate (B,)) of x_adv on the attacked model.

    classifier: one deterministic draw: the bare classifier's label.
    adaptive:   `eot_samples` fresh draws (keyed past the last PGD step, never optimised against);
                success is the majority vote of the purified labels, rate the share of draws that comply.
    """
    targeted = cfg.target is not None
    if cfg.threat == "classifier":
        hit = reached(models.predict(x_adv), labels, targeted)
        return hit, hit.float()
    generator = make_generator(cfg.seed, Stream.ATTACK_EOT, cfg.steps)
    predicted = purifier_logits(models, x_adv, cfg, generator).argmax(-1)  # (E, B)
    vote = majority_vote(predicted.T, models.num_classes)  # (B,)
    return reached(vote, labels, targeted), reached(predicted, labels, targeted).float().mean(0)


# --- one image, with progress -------------------------------------------------------------------


def _check_input(models: DensePureModels, x01: torch.Tensor, label: int, cfg: AttackConfig) -> None:
    shape = (models.channels, models.image_size, models.image_size)
    if tuple(x01.shape) != shape:
        raise InputError(f"image must have shape {shape} for this model, got {tuple(x01.shape)}")
    if not (0 <= float(x01.min()) and float(x01.max()) <= 1):
        raise InputError("image pixels must be in [0, 1]")
    for name, value in (("label", label), ("target", cfg.target)):
        if value is not None and not 0 <= value < models.num_classes:
            raise InputError(f"{name} must be a class index in 0..{models.num_classes - 1}, got {value}")
    if cfg.target is not None and cfg.target == label:
        raise InputError(f"target {cfg.target} is the image's own label; choose another class or no target")
    if cfg.norm == "l2" and cfg.eps > max_l2_eps(shape):
        raise InputError(f"l2 eps must be <= {max_l2_eps(shape):.3g} (the diameter of {shape} images), got {cfg.eps}")


@torch.inference_mode(False)
def attack_stream(
    models: DensePureModels, x01: torch.Tensor, label: int, cfg: AttackConfig
) -> Iterator[AttackProgress | AttackResult]:
    """Attack image x01 (C, H, W) in [0, 1] of true class `label`: AttackProgress per PGD step, then AttackResult."""
    _check_input(models, x01, label, cfg)
    x = x01.detach().clone().to(models.device, torch.float32).unsqueeze(0)  # (1, C, H, W)
    goal = torch.tensor([label if cfg.target is None else cfg.target], device=models.device)
    generator = make_generator(cfg.seed, Stream.ATTACK_START)
    x_adv = x
    loss_fn = attack_loss(models, goal, cfg)
    steps = pgd_steps(loss_fn, x, cfg.norm, cfg.eps, cfg.steps, cfg.alpha, cfg.random_start, generator)
    for step, (loss, x_adv) in enumerate(steps, start=1):
        yield AttackProgress(step, cfg.steps, float(loss.mean()))
    with torch.no_grad():
        success, rate = goal_rate(models, x_adv, goal, cfg)
        labels = models.predict(torch.cat([x, x_adv]))
    delta = (x_adv - x)[0]
    yield AttackResult(
        adversarial=x_adv[0].cpu(),
        clean_label=int(labels[0]),
        adversarial_label=int(labels[1]),
        success=bool(success[0]),
        target_label_rate=float(rate[0]),
        linf=float(delta.abs().max()),
        l2=float(delta.norm()),
    )


def attack(models: DensePureModels, x01: torch.Tensor, label: int, cfg: AttackConfig) -> AttackResult:
    """Run attack_stream to the end and return its result."""
    *_, result = attack_stream(models, x01, label, cfg)
    return result
