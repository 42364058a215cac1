"""Validated requests shared by the Purify, Certify and High-density views (the app's edge: no math).

Each parse_* function takes the raw values a UI event or API call delivers, coerces them to numbers
and choices (`validation`), applies the app's per-request caps (`LIMITS`), and builds the engine's
frozen configs, whose own `__post_init__` checks every range; errors are `InputError`s, turned into
one-line messages by `validation.user_errors`. Defaults are the configs' own, so the app and
`python -m densepure_viz` agree.
"""

from __future__ import annotations

from pathlib import Path

from densepure_viz.attacks.pgd import NORMS, THREATS, AttackConfig
from densepure_viz.smoothing.certify import CertifyConfig
from densepure_viz.engine.diffusion import SAMPLERS
from densepure_viz.models.inputs import true_label
from densepure_viz.models.registry import DensePureModels
from densepure_viz.engine.purify import PurifyConfig
from densepure_viz.serving.ui.validation import LIMITS, choice, evaluations, image_file, integer, number

ATTACKS = ("none", "FGSM", "PGD")  # FGSM = one step of length eps from x itself; PGD = steps from a random start


def parse_purify(image, sigma, seeds, sampler, steps, seed, max_seeds: int = LIMITS.purify_seeds) -> tuple[str, PurifyConfig, int]:
    """(image path, PurifyConfig, seed) from raw values."""
    path = image_file(image)
    cfg = PurifyConfig(
        sigma=float(number(sigma, "sigma", 0, LIMITS.sigma_max)),
        seeds=integer(seeds, "K (seeds)", 1, max_seeds),
        sampler=choice(sampler, "sampler", SAMPLERS),
        steps=integer(steps, "steps", 1, LIMITS.steps),
    )
    return path, cfg, integer(seed, "seed", 0, LIMITS.seed)


def parse_attack(attack, norm, eps, attack_steps, threat, sigma: float, seed: int) -> AttackConfig | None:
    """The AttackConfig of the Purify view's adversarial controls (None for 'none').

    The adaptive threat attacks the purifier at the view's own sigma; FGSM is one step of length eps
    from the image itself (no random start), PGD the attack module's defaults for the given steps.
    The config checks eps against its norm's ball; the attack checks L2 eps against the image's size.
    """
    name = choice(attack, "attack", ATTACKS)
    if name == "none":
        return None
    norm, threat = choice(norm, "norm", NORMS), choice(threat, "threat", THREATS)
    eps = float(number(eps, "eps", 0.0, float("inf")))
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
    """CertifyConfig from raw values, with the app's caps on n0 and n (the config checks alpha)."""
    return CertifyConfig(n0=integer(n0, "n0", 1, LIMITS.n0), n=integer(n, "n", 1, LIMITS.n),
                         alpha=float(number(alpha, "alpha", 0.0, 1.0)))


def input_name(path: str) -> str:
    """Whose image a result is about: the file's name and the true label its name gives (shipped samples)."""
    label = true_label(path)
    return f"{Path(path).name} (true label {label if label >= 0 else 'unknown'})"
