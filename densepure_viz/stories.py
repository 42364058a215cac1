"""One-click stories for a class: presets that set every control of one view so that a named effect happens.

A story holds the values of all the controls of its view (the Purify, Certify or 2D view, in the view's
own order) and one line on what to look at. The values were found by a seeded search on the shipped
digits models and the exact 2D world (`scripts/find_stories.py`, record in
assets/results/stories/search.json); tests/test_stories.py runs every story and checks that its effect
happens. The explorer shows them as buttons; the same values reproduce them from the CLI or the API.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from densepure_viz.models import ASSETS

ROOT = ASSETS.parent  # story images are named relative to the repository root


@dataclass(frozen=True)
class Story:
    """What every story has; subclasses add their view's controls, in the view's order."""

    key: str  # stable id (the button's elem_id is story-<key>)
    title: str  # the button's text
    look: str  # one line: what to look at once it has run

    def controls(self) -> tuple:
        """The values of the view's controls, in the order of its endpoint's inputs (image paths made absolute)."""
        own = fields(self)[len(fields(Story)):]
        return tuple(str(ROOT / getattr(self, f.name)) if f.name == "image" else getattr(self, f.name) for f in own)


@dataclass(frozen=True)
class PurifyStory(Story):
    """The Purify view's controls, in its endpoint's order (model included: the stories are the digits')."""

    image: str = ""  # sample file, relative to the repository root
    model: str = "digits"
    sigma: float = 0.5  # smoothing std on [0, 1] pixels
    seeds: int = 8  # K
    sampler: str = "fast"
    steps: int = 10  # b
    seed: int = 0
    attack: str = "none"  # "none", "FGSM" or "PGD"
    norm: str = "l2"
    eps: float = 1.0
    attack_steps: int = 10
    threat: str = "classifier"  # "classifier" or "adaptive"


@dataclass(frozen=True)
class CertifyStory(Story):
    """The Certify view's controls, in its endpoint's order."""

    image: str = ""
    model: str = "digits"
    sigma: float = 0.5
    seeds: int = 4  # K per draw
    sampler: str = "fast"
    steps: int = 10  # b
    seed: int = 0
    n0: int = 10
    n: int = 100
    alpha: float = 0.001
    compare: bool = True  # also certify one-shot denoising and the bare classifier
    target: float = 0.0  # target radius R (0: none)
    stop_early: bool = True


@dataclass(frozen=True)
class RegionsStory(Story):
    """The 2D view's controls, in its endpoint's order."""

    preset: str = "moons"
    sigma: float = 0.4
    x0_x: float = 0.0
    x0_y: float = 0.0
    xa_x: float = 0.0
    xa_y: float = 0.0
    seeds: int = 32  # K trajectories
    steps: int = 0  # 0: the full chain
    method: str = "ddpm"
    labeler: str = "mode"  # the map shown
    seed: int = 0
    n: int = 1000  # certification draws


PURIFY_STORIES: tuple[PurifyStory, ...] = (
    PurifyStory(
        "attack-recovers", "Attack the classifier, DensePure recovers",
        "PGD (L2, eps 1) turns the bare classifier's 4 into an 8 on x_a, yet all K = 8 trajectories from "
        "x_a + delta come back to a 4: the noise and the reverse process wash the perturbation out.",
        image="assets/samples/digits/test_0001_label4.png", sigma=0.5, seeds=8, sampler="fast", steps=10, seed=0,
        attack="PGD", norm="l2", eps=1.0, attack_steps=10, threat="classifier",
    ),
    PurifyStory(
        "adaptive-fools-both", "An adaptive attack that fools both",
        "The same eps 1, but the attacker differentiates through the purifier (EOT over noise draws): the bare "
        "classifier reads x_a as an 8, and so does DensePure's vote (3 of 8 seeds; the true label 1 gets 2).",
        image="assets/samples/digits/test_0000_label1.png", sigma=0.5, seeds=8, sampler="fast", steps=10, seed=0,
        attack="PGD", norm="l2", eps=1.0, attack_steps=10, threat="adaptive",
    ),
    PurifyStory(
        "tie", "A tie",
        "At sigma 1 the K = 8 seeds split 3 for 3, 3 for 8 (and one each for 2 and 7): a tie, broken towards the "
        "smallest label, so the vote says 3 while the digit is an 8. The JSON says tie: true.",
        image="assets/samples/digits/test_0002_label8.png", sigma=1.0, seeds=8, sampler="fast", steps=10, seed=3,
    ),
)
CERTIFY_STORIES: tuple[CertifyStory, ...] = (
    CertifyStory(
        "certify-robust", "Certify: robust",
        "At sigma 0.5, 99 of 100 draws vote 1: DensePure certifies label 1 within an L2 radius of about 0.6, while "
        "the bare classifier on the same noisy draws abstains. Below: how big 0.6 is, and the count on the p_lower curve.",
        image="assets/samples/digits/test_0000_label1.png", sigma=0.5, seeds=4, sampler="fast", steps=10, seed=0,
        n0=10, n=100, alpha=0.001, compare=True, target=0.0, stop_early=True,
    ),
    CertifyStory(
        "certify-abstain", "Certify: abstain",
        "At sigma 1 this 9 drowns: DensePure's draws scatter over many classes, the upper bound on p_A falls below "
        "1/2 after 35 draws and it abstains. The bare classifier certifies 1: a certificate promises a stable "
        "answer, not a right one.",
        image="assets/samples/digits/test_0005_label9.png", sigma=1.0, seeds=4, sampler="fast", steps=10, seed=0,
        n0=10, n=100, alpha=0.001, compare=True, target=0.0, stop_early=True,
    ),
)
REGIONS_STORIES: tuple[RegionsStory, ...] = (
    RegionsStory(
        "region-larger-than-ball", "Robust region larger than the ball",
        "x0's robust region (label 0, area 8.2 or more: the window clips it) is over 13 times the certified ball "
        "(radius 0.44, area 0.61). x_a, 1.5 away, is far outside the ball yet inside the region: DensePure's "
        "highest-density label is still 0 there.",
        preset="moons", sigma=0.25, x0_x=-0.7, x0_y=0.7, xa_x=0.8, xa_y=0.9, seeds=32, steps=0, method="ddpm",
        labeler="mode", seed=0, n=1000,
    ),
)
