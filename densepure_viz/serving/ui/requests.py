"""Validated requests shared by the Purify, Certify and High-density views (the app's edge: no math).

`endpoint` turns a view's body, a function of its request dataclass (densepure_viz.serving.api), into the Gradio
handler whose parameters are the request's fields. Each parse_* function takes the raw values a request carries
(from a UI event or an API call), coerces them to numbers
and choices (`validation`), applies the app's per-request caps (the global range `LIMITS`, then the request's model's
own, `limits_for`, refused in one line naming the model), and builds the engine's
frozen configs, whose own `__post_init__` checks every range; errors are `InputError`s, turned into
one-line messages by `validation.user_errors`. Defaults are the configs' own, so the app and
`python -m densepure_viz` agree.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from inspect import Parameter, Signature
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr

from densepure_viz.attacks.pgd import NORMS, THREATS, AttackConfig
from densepure_viz.smoothing.certify import CertifyConfig
from densepure_viz.engine.diffusion import SAMPLERS
from densepure_viz.models.inputs import true_label
from densepure_viz.models.registry import DensePureModels
from densepure_viz.engine.purify import PurifyConfig
from densepure_viz.serving.api import PARAMETERS, CertifyRequest, DensityRequest, PurifyRequest
from densepure_viz.serving.ui.validation import (LIMITS, capped, choice, evaluations, image_file, integer, model_id,
                                                 number)

ATTACKS = ("none", "FGSM", "PGD")  # FGSM = one step of length eps from x itself; PGD = steps from a random start
R = TypeVar("R")


def no_progress(*args: Any, **kwargs: Any) -> None:
    """The progress of a handler run outside an event (the first view, scripts): nowhere."""


def endpoint(request: type[R], body: Callable[[R, Any], Any], progress: bool = True) -> Callable:
    """The Gradio handler of `body(request, progress)`, a function or a generator.

    Its parameters are the request's fields (Gradio's API shows their names and defaults, and calls it with the
    inputs in their order), then, when `progress`, a gr.Progress that Gradio fills in (elsewhere: `no_progress`).
    """
    names = PARAMETERS[request.view]  # type: ignore[attr-defined]

    def call(args: tuple, kwargs: dict) -> tuple:
        if len(args) > len(names) + progress:
            raise TypeError(f"{request.view} takes {len(names)} parameters, got {len(args)}")  # type: ignore[attr-defined]
        values = {**dict(zip((*names, "progress"), args)), **kwargs}
        return request(**{k: v for k, v in values.items() if k != "progress"}), values.get("progress", no_progress)

    if inspect.isgeneratorfunction(inspect.unwrap(body)):
        def handler(*args, **kwargs):
            yield from body(*call(args, kwargs))
    else:
        def handler(*args, **kwargs):
            return body(*call(args, kwargs))
    parameters = [Parameter(f.name, Parameter.POSITIONAL_OR_KEYWORD, default=f.default) for f in fields(request)]
    if progress:
        parameters.append(Parameter("progress", Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress()))
    handler.__signature__ = Signature(parameters)  # type: ignore[attr-defined]
    handler.__name__ = handler.__qualname__ = request.view  # type: ignore[attr-defined]
    return handler


def parse_purify(req: PurifyRequest | CertifyRequest, view: str = "purify") -> tuple[str, PurifyConfig, int]:
    """(image path, PurifyConfig, seed) of a request, K capped as `view` ("purify" or "certify") caps it for the model."""
    path = image_file(req.image)
    seeds = capped(req.seeds, "K (seeds)", "certify_seeds" if view == "certify" else "purify_seeds", req.model)
    steps = capped(req.steps, "steps", "steps", req.model)
    cfg = PurifyConfig(sigma=float(number(req.sigma, "sigma", 0, LIMITS.sigma_max)), seeds=seeds,
                       sampler=choice(req.sampler, "sampler", SAMPLERS), steps=steps)
    return path, cfg, integer(req.seed, "seed", 0, LIMITS.seed)


@dataclass(frozen=True)
class PurifyInputs:
    """A Purify-view request, checked: what the Purify and High-density handlers and the shared answers' key use."""

    model: str  # one of the app's models
    path: str  # the input image file
    cfg: PurifyConfig  # sigma, K, sampler, b
    seed: int  # base seed of every draw
    attack: AttackConfig | None  # None: no attack


def parse_purify_view(req: PurifyRequest, names: Sequence[str]) -> PurifyInputs:
    """The checked inputs of a Purify or High-density request (the model among `names`)."""
    model = model_id(req.model, names)
    path, cfg, seed = parse_purify(req)
    return PurifyInputs(model, path, cfg, seed, parse_attack(req, cfg.sigma, seed))


def parse_attack(req: PurifyRequest, sigma: float, seed: int) -> AttackConfig | None:
    """The AttackConfig of the Purify view's adversarial controls (None for 'none').

    The adaptive threat attacks the purifier at the view's own sigma; FGSM is one step of length eps
    from the image itself (no random start), PGD the attack module's defaults for the given steps.
    The config checks eps against its norm's ball; the attack checks L2 eps against the image's size.
    """
    name = choice(req.attack, "attack", ATTACKS)
    if name == "none":
        return None
    norm, threat = choice(req.norm, "norm", NORMS), choice(req.threat, "threat", THREATS)
    eps = float(number(req.eps, "eps", 0.0, float("inf")))
    if name == "FGSM":
        return AttackConfig(norm=norm, eps=eps, steps=1, step_size=max(eps, 1e-12), random_start=False,
                            threat=threat, sigma=sigma, seed=seed)
    steps = capped(req.attack_steps, "attack steps", "attack_steps", req.model)
    return AttackConfig(norm=norm, eps=eps, steps=steps, threat=threat, sigma=sigma, seed=seed)


def purify_evaluations(models: DensePureModels, cfg: PurifyConfig, draws: int) -> int:
    """UNet image-evaluations of `draws` purifications by cfg on this model: draws x K x evaluated timesteps (the
    caps' count: no sharing of the t* call, no early stop)."""
    return draws * cfg.seeds * len(cfg.plan(models)[1])


def check_budget(models: DensePureModels, cfg: PurifyConfig, draws: int, cap: int, what: str,
                 model: str | None = None) -> tuple[int, list[int]]:
    """(t*, timesteps) of cfg on this model, refusing requests above `cap` image evaluations (`model`'s cap)."""
    evaluations(purify_evaluations(models, cfg, draws), cap, what, model)
    return cfg.plan(models)


def parse_certify(req: CertifyRequest) -> CertifyConfig:
    """The request's CertifyConfig, with the app's caps on n0 and n, the model's own (the config checks alpha)."""
    return CertifyConfig(n0=capped(req.n0, "n0", "n0", req.model), n=capped(req.n, "n", "n", req.model),
                         alpha=float(number(req.alpha, "alpha", 0.0, 1.0)))


def request_evaluations(req: PurifyRequest | CertifyRequest, models: DensePureModels) -> int:
    """UNet image-evaluations a request asks for, counted as check_budget counts them (draws x K x evaluated
    timesteps, no sharing), plus the one-shot comparison's evaluation per draw of a certification (InputError when a
    value is bad)."""
    if isinstance(req, CertifyRequest):
        _, cfg, _ = parse_purify(req, "certify")
        ccfg = parse_certify(req)
        draws = ccfg.n0 + ccfg.n
        return purify_evaluations(models, cfg, draws) + (draws if req.compare else 0)
    _, cfg, _ = parse_purify(req)
    draws = integer(req.draws, "n (noise draws)", 1, LIMITS.density_draws) if isinstance(req, DensityRequest) else 1
    return purify_evaluations(models, cfg, draws)


def input_name(path: str) -> str:
    """Whose image a result is about: the file's name and the true label its name gives (shipped samples)."""
    label = true_label(path)
    return f"{Path(path).name} (true label {label if label >= 0 else 'unknown'})"
