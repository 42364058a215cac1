"""Search the control values of the explorer's one-click stories (assets/stories.json) and record them.

Each search walks a fixed, ordered list of candidate controls (shipped samples in file order, then seeds, K or
eps in increasing order) on the shipped digits models and the exact 2D world, runs the view's own endpoint
handler on each (so the outcome is the view's JSON output, exactly as the app computes it) and keeps the first
candidate on which the story happens. Everything is seeded, so a rerun finds the same values. The record (the
controls found, the expected fields of the view's JSON output, how many candidates were tried) goes to
assets/results/stories/search.json; controls and expect are then copied into assets/stories.json, whose tests
check it against the record and replay every story. Example:

    OMP_NUM_THREADS=1 python scripts/find_stories.py
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from anywhere

from densepure_viz.models.images import list_images  # noqa: E402
from densepure_viz.models.inputs import true_label  # noqa: E402
from densepure_viz.models.registry import load_models  # noqa: E402
from densepure_viz.serving.api import arguments, request_of  # noqa: E402
from densepure_viz.teaching.stories import field  # noqa: E402
from densepure_viz.serving.ui import certify_tab, purify_tab, regions_tab  # noqa: E402
from densepure_viz.serving.ui.session import AppContext, ModelPool  # noqa: E402

SAMPLES = [str(p.relative_to(ROOT)) for p in sorted(list_images(ROOT / "assets" / "samples" / "digits"))]
NO_ATTACK = {"attack": "none", "norm": "l2", "eps": 1.0, "attack_steps": 10, "threat": "classifier"}
Run = Callable[[str, dict], dict]  # (view, controls) -> the view's JSON output


def runner(models) -> Run:
    """The views' endpoint handlers on `models`: (view, controls) -> the view's JSON output."""
    ctx = AppContext(pool=ModelPool(lambda name, device: models, ("digits",), "cpu"))
    purify, certify, regions = (tab.make_handler(ctx) for tab in (purify_tab, certify_tab, regions_tab))

    def run(view: str, controls: dict) -> dict:
        request = arguments(request_of(view, controls))
        if view == "purify":
            *_, last = purify(**request)
            return purify_tab.PurifyOutputs(*last).result
        if view == "certify":
            *_, (*_, out) = certify(**request)
            return out
        return regions(**request)[-1]

    return run


def first(run: Run, view: str, candidates: Iterable[dict], happens: Callable[[dict, dict], bool],
          claims: tuple[str, ...]) -> dict | None:
    """The first candidate's controls on which the story happens, with the claimed fields of its output."""
    for tried, controls in enumerate(candidates, start=1):
        output = run(view, controls)
        if happens(controls, output):
            expect = {p: field(output, p) for p in claims}
            expect = {p: round(v, 4) if isinstance(v, float) else v for p, v in expect.items()}
            return {"view": view, "controls": controls, "expect": expect, "tried": tried}
    return None


def purify_controls(image: str, sigma: float, seeds: int, seed: int, attack: dict = NO_ATTACK) -> dict:
    return {"image": image, "model": "digits", "sigma": sigma, "seeds": seeds, "sampler": "fast", "steps": 10,
            "seed": seed, **attack}


def pgd(eps: float, threat: str) -> dict:
    return {"attack": "PGD", "norm": "l2", "eps": eps, "attack_steps": 10, "threat": threat}


def certify_controls(image: str, sigma: float, seeds: int) -> dict:
    return {"image": image, "model": "digits", "sigma": sigma, "seeds": seeds, "sampler": "fast", "steps": 10,
            "seed": 0, "n0": 10, "n": 100, "alpha": 0.001, "compare": True, "target": 0.0, "stop_early": True}


def y(controls: dict) -> int:
    return true_label(controls["image"])


def vote_wins(run: Run) -> dict | None:
    """Sigma 1, no attack: the vote right (no tie) while the bare classifier on the same x + delta and one-shot
    denoising are both wrong; samples, then seeds 0-7, then K = 8, 16, 32 (the smallest K that wins)."""
    candidates = (purify_controls(image, 1.0, k, seed) for image in SAMPLES for seed in range(8) for k in (8, 16, 32))
    return first(run, "purify", candidates,
                 lambda c, o: o["label"] == y(c) != o["noisy_label"] and o["one_shot_label"] != y(c) and not o["tie"],
                 ("true_label", "label", "tie", "votes", "noisy_label", "one_shot_label"))


def noise_alone(run: Run) -> dict | None:
    """PGD-10 L2 on the bare classifier fools it on x_a, yet the bare classifier on x_a + delta (noise, no
    purification) is right again, and so is a majority of the K = 8 seeds: smoothing alone suffices."""
    candidates = (purify_controls(image, 0.5, 8, 0, pgd(eps, "classifier")) for eps in (1.0, 1.5) for image in SAMPLES)
    return first(run, "purify", candidates,
                 lambda c, o: (o["input_label"] != y(c) == o["noisy_label"]
                               and o["votes"].get(str(y(c)), 0) > c["seeds"] / 2),
                 ("true_label", "input_label", "noisy_label", "label", "votes"))


def adaptive_fools_both(run: Run) -> dict | None:
    """PGD-10 L2 through the purifier (EOT): a majority of its own noise draws fooled (attack.success), the bare
    classifier wrong on x_a, and the vote wrong (no tie) on the draw shown too: the attack line and verdict agree."""
    candidates = (purify_controls(image, 0.5, 8, 0, pgd(eps, "adaptive"))
                  for eps in (1.0, 1.5, 2.0) for image in SAMPLES)
    return first(run, "purify", candidates,
                 lambda c, o: o["attack"]["success"] and o["input_label"] != y(c) != o["label"] and not o["tie"],
                 ("true_label", "attack.threat", "attack.success", "input_label", "label", "tie", "votes"))


def tie(run: Run) -> dict | None:
    """Sigma 1, K = 8: the first (sample, seed) where the vote is a tie."""
    candidates = (purify_controls(image, 1.0, 8, seed) for image in SAMPLES for seed in range(10))
    return first(run, "purify", candidates, lambda c, o: o["tie"], ("true_label", "tie", "label", "votes"))


def certify_wins(run: Run) -> dict | None:
    """Sigma 1: DensePure certifies the true label with a larger radius than one-shot and the bare classifier
    (each 0 when it abstains); samples, then K = 4, 8."""
    def happens(c: dict, o: dict) -> bool:
        d = o["densepure"]
        return d["label"] == y(c) and d["radius"] > max(o["one_shot"]["radius"], o["bare"]["radius"])

    candidates = (certify_controls(image, 1.0, k) for image in SAMPLES for k in (4, 8))
    return first(run, "certify", candidates, happens,
                 ("densepure.label", "densepure.count", "densepure.radius", "one_shot.label", "one_shot.count",
                  "one_shot.radius", "bare.label", "bare.radius"))


def certify_robust(run: Run) -> dict | None:
    """Sigma 0.5: the first sample DensePure certifies (radius > 0)."""
    return first(run, "certify", (certify_controls(image, 0.5, 4) for image in SAMPLES),
                 lambda c, o: o["densepure"]["label"] is not None and o["densepure"]["radius"] > 0,
                 ("densepure.label", "densepure.count", "densepure.radius", "one_shot.radius", "bare.label"))


def certify_abstain(run: Run) -> dict | None:
    """Sigma 1: the first sample where DensePure abstains outright (even the upper bound on p_A fell below 1/2)."""
    return first(run, "certify", (certify_controls(image, 1.0, 4) for image in SAMPLES),
                 lambda c, o: o["densepure"]["decision"] == "abstain",
                 ("densepure.label", "densepure.decision", "densepure.draws_used", "bare.label", "bare.radius"))


def region_candidates() -> Iterator[dict]:
    from densepure_viz.toy2d import PRESETS

    for name in ("moons", "finite dataset", "clusters"):
        p = PRESETS[name]
        for sigma in (0.25, 0.4, 0.5):
            yield {"preset": name, "sigma": sigma, "x0_x": p.x0[0], "x0_y": p.x0[1], "xa_x": p.x_a[0], "xa_y": p.x_a[1],
                   "seeds": 32, "steps": 0, "method": "ddpm", "labeler": "mode", "seed": 0, "n": 1000}


def region_larger_than_ball(run: Run) -> dict | None:
    """At a preset's points: x0's robust region over 4 times the certified ball's area (a lower bound when the
    window clips it), x_a inside the region but outside the ball."""
    def happens(c: dict, o: dict) -> bool:
        region, ball = o["robust_region"], o["certificate_x0"]
        return (ball["label"] is not None and region["area"] > 4 * math.pi * ball["radius"] ** 2
                and region["x_a_inside"] and not ball["x_a_inside"])

    return first(run, "regions", region_candidates(), happens,
                 ("robust_region.label", "robust_region.area", "robust_region.clipped", "robust_region.x_a_inside",
                  "certificate_x0.label", "certificate_x0.radius", "certificate_x0.x_a_inside"))


SEARCHES = {  # story key (assets/stories.json) -> its search
    "vote-wins": vote_wins, "noise-alone-recovers": noise_alone, "adaptive-fools-both": adaptive_fools_both,
    "tie": tie, "certify-wins": certify_wins, "certify-robust": certify_robust, "certify-abstain": certify_abstain,
    "region-larger-than-ball": region_larger_than_ball,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "results" / "stories" / "search.json")
    parser.add_argument("--only", nargs="*", choices=list(SEARCHES), help="run these searches (default: all)")
    args = parser.parse_args(argv)
    models = load_models("digits", device="cpu")
    run = runner(models)
    found = json.loads(args.out.read_text())["stories"] if args.only and args.out.is_file() else {}
    for key in args.only or SEARCHES:
        found[key] = SEARCHES[key](run)
        print(key, json.dumps(found[key]), flush=True)
    found = {key: found[key] for key in SEARCHES if key in found}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": models.name, "stories": found}, indent=1) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
