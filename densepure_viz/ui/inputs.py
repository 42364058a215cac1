"""Validated requests shared by the Purify, Certify and High-density views (the app's edge: no math).

Each parse_* function takes the raw values a UI event or API call delivers and returns frozen engine
configs, raising ValueError with one clear line (turned into gr.Error by validation.user_errors).
Defaults come from the CLI's own parser, so the app and `python -m densepure_viz` agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from densepure_viz.attacks import AttackConfig, AttackProgress, AttackResult, attack_stream, max_l2_eps
from densepure_viz.certify import CertifyConfig
from densepure_viz.cli import build_parser, load_input, true_label
from densepure_viz.diffusion import SAMPLERS
from densepure_viz.models import DensePureModels
from densepure_viz.purify import PurifyConfig
from densepure_viz.ui.validation import LIMITS, choice, evaluations, image_file, integer, number, positive

ATTACKS = ("none", "FGSM", "PGD")  # FGSM = one step of length eps from x itself; PGD = steps from a random start
NORMS = ("linf", "l2")
THREATS = ("classifier", "adaptive")


@lru_cache(maxsize=None)
def cli_defaults(command: str) -> dict:
    """The CLI's default arguments of `command` ('purify', 'certify', 'attack')."""
    required = {"attack": ["--eps", "0.1", "--out", "x.png"]}.get(command, [])
    return vars(build_parser().parse_args([command, "image.png", *required]))


@dataclass(frozen=True)
class ImageRequest:
    """The common part of every image request."""

    image: str  # path of the input file (Gradio's upload cache or a shipped sample)
    model: str  # registry name, already checked
    cfg: PurifyConfig  # sigma, K, sampler, steps
    seed: int  # base seed of every random draw
    attack: AttackConfig | None  # None: the clean input only
    attack_name: str  # "none", "FGSM" or "PGD"


def parse_purify(model: str, image, sigma, seeds, sampler, steps, seed, max_seeds: int = LIMITS.purify_seeds) -> tuple[str, PurifyConfig, int]:
    """(image path, PurifyConfig, seed) from raw values."""
    path = image_file(image)
    cfg = PurifyConfig(
        sigma=positive(sigma, "sigma", LIMITS.sigma_max),
        seeds=integer(seeds, "K (seeds)", 1, max_seeds),
        sampler=choice(sampler, "sampler", SAMPLERS),
        steps=integer(steps, "steps", 1, LIMITS.steps),
    )
    return path, cfg, integer(seed, "seed", 0, LIMITS.seed)


def parse_attack(attack, norm, eps, attack_steps, threat, sigma: float, seed: int) -> AttackConfig | None:
    """The AttackConfig of the Purify view's adversarial controls (None for 'none').

    The adaptive threat attacks the purifier at the view's own sigma; FGSM is one step of length eps
    from the image itself (no random start), PGD the attack module's defaults for the given steps.
    """
    name = choice(attack, "attack", ATTACKS)
    if name == "none":
        return None
    norm = choice(norm, "norm", NORMS)
    eps = float(number(eps, "eps", 0.0, 1.0 if norm == "linf" else 64.0))
    threat = choice(threat, "threat", THREATS)
    if name == "FGSM":
        return AttackConfig(norm=norm, eps=eps, steps=1, step_size=max(eps, 1e-12), random_start=False,
                            threat=threat, sigma=sigma, seed=seed)
    steps = integer(attack_steps, "attack steps", 1, LIMITS.attack_steps)
    return AttackConfig(norm=norm, eps=eps, steps=steps, threat=threat, sigma=sigma, seed=seed)


def check_budget(models: DensePureModels, cfg: PurifyConfig, draws: int, cap: int, what: str) -> tuple[int, list[int]]:
    """(t*, timesteps) of cfg on this model, refusing requests above `cap` image evaluations."""
    t_star, timesteps = cfg.plan(models)
    evaluations(draws * cfg.seeds * len(timesteps), cap, what)
    return t_star, timesteps


def parse_certify(n0, n, alpha) -> CertifyConfig:
    """CertifyConfig from raw values, with the app's caps."""
    a = float(number(alpha, "alpha", 0.0, 1.0))
    if not 0 < a < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {a:g}")
    return CertifyConfig(n0=integer(n0, "n0", 1, LIMITS.n0), n=integer(n, "n", 1, LIMITS.n), alpha=a)


@dataclass
class PreparedInput:
    """The clean image, what the purifier receives, and how it was made."""

    clean: torch.Tensor  # (C, H, W) in [0, 1], as the CLI loads it
    purifier_input: torch.Tensor  # (C, H, W): clean, or the adversarial image
    clean_label: int  # bare classifier on the clean image
    true_label: int  # label written in the file name, -1 when unknown
    attack: AttackResult | None  # None without an attack
    attack_label: int | None  # the label the attack tried to leave (true label, else the classifier's)


def prepare_input(models: DensePureModels, path: str, attack: AttackConfig | None) -> Iterator[AttackProgress | PreparedInput]:
    """Load the image like the CLI; attack it when asked (yield AttackProgress per step); then the PreparedInput."""
    x = load_input(path, models)
    with torch.inference_mode():
        clean_label = int(models.predict(x[None])[0])
    known = true_label(Path(path))
    known = known if 0 <= known < models.num_classes else -1
    if attack is None:
        yield PreparedInput(x, x, clean_label, known, None, None)
        return
    if attack.norm == "l2" and attack.eps > max_l2_eps(x.shape):
        raise ValueError(f"L2 eps must be <= {max_l2_eps(x.shape):.3g} for {tuple(x.shape)} images, got {attack.eps:g}")
    label = known if known >= 0 else clean_label
    result = None
    for item in attack_stream(models, x, label, attack):
        if isinstance(item, AttackResult):
            result = item
        else:
            yield item
    assert result is not None
    yield PreparedInput(x, result.adversarial, clean_label, known, result, label)


def run_prepare(models: DensePureModels, path: str, attack: AttackConfig | None) -> PreparedInput:
    """prepare_input to the end."""
    *_, prepared = prepare_input(models, path, attack)
    return prepared
