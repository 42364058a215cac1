"""The app's HTTP endpoints: one request dataclass per view fixes its parameters' names, order and defaults.

Gradio's API (`/purify`, `/certify`, `/regions`, `/density`), the views' input components, the first view, the
stories (assets/stories.json names its controls by these fields) and the tests all build from these classes, so a
parameter is named, ordered and defaulted in one place. The values are raw, as an API caller may send them (the
handlers' parsers check and coerce every one); the defaults are what the page opens with. No gradio here: scripts
and tests read requests without a server.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from densepure_viz.attacks.pgd import AttackConfig
from densepure_viz.engine.purify import CERTIFY_PURIFIER, PurifyConfig
from densepure_viz.paths import ROOT
from densepure_viz.smoothing.certify import CertifyConfig
from densepure_viz.teaching import stories
from densepure_viz.toy2d import PRESETS

_PURIFY, _ATTACK = PurifyConfig(), AttackConfig()
CLASSROOM = CertifyConfig(n0=10, n=100)  # the Certify view's preset: seconds on a laptop CPU (the CLI's n is 1000)
DEFAULT_PRESET = "moons"  # the 2D world the Robust-regions view opens with
_TOY = PRESETS[DEFAULT_PRESET]


@dataclass(frozen=True)
class PurifyRequest:
    """`/purify`: purify an image (optionally attacked first) with K seeded reverse trajectories and vote."""

    view: ClassVar[str] = "purify"
    image: str | None = None  # an image file's path (the page sends its upload's)
    model: str = "digits"  # a model of the app (its dropdown's value)
    sigma: float = _PURIFY.sigma  # smoothing std on [0, 1] pixels
    seeds: int = _PURIFY.seeds  # K reverse trajectories
    sampler: str = _PURIFY.sampler  # one-shot, fast or full
    steps: int = _PURIFY.steps  # b, steps of the fast sampler
    seed: int = 0  # base seed of every random draw
    attack: str = "none"  # none, FGSM or PGD
    norm: str = _ATTACK.norm  # linf or l2
    eps: float = _ATTACK.eps  # the attack's budget in its norm
    attack_steps: int = _ATTACK.steps  # PGD iterations
    threat: str = _ATTACK.threat  # classifier (the bare one) or adaptive (through the purifier)


@dataclass(frozen=True)
class CertifyRequest:
    """`/certify`: certify DensePure (anytime-valid), and one-shot and the bare classifier beside it (fixed n)."""

    view: ClassVar[str] = "certify"
    image: str | None = None
    model: str = "digits"
    sigma: float = CERTIFY_PURIFIER.sigma
    seeds: int = CERTIFY_PURIFIER.seeds  # K per noise draw
    sampler: str = CERTIFY_PURIFIER.sampler
    steps: int = CERTIFY_PURIFIER.steps
    seed: int = 0
    n0: int = CLASSROOM.n0  # selection draws
    n: int = CLASSROOM.n  # estimation draws
    alpha: float = CLASSROOM.alpha  # failure probability
    compare: bool = True  # also certify one-shot denoising and the bare classifier
    target: float = 0.0  # target radius R (0: none)
    stop_early: bool = True  # stop as soon as the bounds decide at R


@dataclass(frozen=True)
class RegionsRequest:
    """`/regions`: the exact 2D world's robust regions, reverse trajectories and certificates."""

    view: ClassVar[str] = "regions"
    preset: str = DEFAULT_PRESET
    sigma: float = _TOY.sigma  # model-space std
    x0_x: float = float(_TOY.x0[0])
    x0_y: float = float(_TOY.x0[1])
    xa_x: float = float(_TOY.x_a[0])
    xa_y: float = float(_TOY.x_a[1])
    seeds: int = 32  # K trajectories
    steps: int = 0  # respaced steps (0: the full chain)
    method: str = "ddpm"  # ddpm or ddim
    labeler: str = "mode"  # the map shown
    seed: int = 0
    n: int = 1000  # certification draws


@dataclass(frozen=True)
class DensityRequest(PurifyRequest):
    """`/density`: the Purify view's input and settings, projected with its high-density points."""

    view: ClassVar[str] = "density"
    draws: int = 8  # noise draws, K samples each
    dims: int = 2  # 2D or 3D projection


Request = PurifyRequest | CertifyRequest | RegionsRequest | DensityRequest
REQUESTS: dict[str, type[Request]] = {r.view: r for r in (PurifyRequest, CertifyRequest, RegionsRequest, DensityRequest)}
PARAMETERS: dict[str, tuple[str, ...]] = {view: tuple(f.name for f in fields(r)) for view, r in REQUESTS.items()}


def in_order(request: type[Request], values: dict[str, Any]) -> list:
    """`values` by parameter name as a list in the endpoint's order (KeyError naming a missing one; extras refused)."""
    if extra := set(values) - set(PARAMETERS[request.view]):
        raise KeyError(f"{request.view} has no parameters {sorted(extra)}")
    return [values[name] for name in PARAMETERS[request.view]]


def arguments(request: Request) -> dict[str, Any]:
    """The request as the endpoint's keyword arguments (gradio_client's predict(**arguments(r)) sends it)."""
    return asdict(request)


def view_stories(view: str) -> tuple[stories.Story, ...]:
    """The stories of one view, their controls checked against its endpoint's parameters."""
    return stories.for_view(view, PARAMETERS)


def request_of(view: str, controls: dict[str, Any]) -> Request:
    """The request of a view's controls by name, an image path made absolute (stories name images relative to the
    repository)."""
    image = controls.get("image")
    return REQUESTS[view](**{**controls, **({"image": str(Path(ROOT) / image)} if image is not None else {})})


def story_request(story: stories.Story) -> Request:
    """The request a story sends."""
    return request_of(story.view, story.controls)
