"""Search the control values of the explorer's one-click stories (densepure_viz.stories) and record them.

Each search walks a fixed, ordered list of candidates (shipped samples in file order, then seeds or
budgets in increasing order) on the shipped digits models and the exact 2D world, and keeps the first
candidate on which the story happens, computed exactly as the views compute it (the Purify view's
input preparation and purification, the Certify view's anytime-valid CERTIFY, the 2D view's robust
region). Everything is seeded, so a rerun finds the same values. The record (what was tried, what was
found, the outcomes) goes to assets/results/stories/search.json; the values are then copied into
densepure_viz/stories.py, whose tests rerun every story. Example:

    OMP_NUM_THREADS=1 python scripts/find_stories.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from anywhere

import numpy as np  # noqa: E402

from densepure_viz.certify import CertifyConfig  # noqa: E402
from densepure_viz.inputs import load_input, true_label  # noqa: E402
from densepure_viz.images import list_images  # noqa: E402
from densepure_viz.models import load_models  # noqa: E402
from densepure_viz.purify import PurifyConfig, densepure_base, purify  # noqa: E402
from densepure_viz.reports import tied_labels  # noqa: E402
from densepure_viz.sequential import SequentialConfig, sequential_certify  # noqa: E402
from densepure_viz.toy2d import PRESETS, region_maps, robust_region  # noqa: E402
from densepure_viz.ui.requests import parse_attack, run_prepare  # noqa: E402

SAMPLES = sorted(list_images(ROOT / "assets" / "samples" / "digits"))


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def attack_story(models, threat: str, epsilons, want_vote_right: bool, sigma: float = 0.5, k: int = 8) -> dict | None:
    """First (eps, sample) where PGD-10 L2 fools the bare classifier on x_a and a majority of the K seeds
    is right (want_vote_right), or the vote is wrong too."""
    cfg = PurifyConfig(sigma=sigma, seeds=k, sampler="fast", steps=10)
    tried = 0
    for eps in epsilons:
        for path in SAMPLES:
            tried += 1
            attack = parse_attack("PGD", "l2", eps, 10, threat, cfg.sigma, 0)
            prep = run_prepare(models, str(path), attack)
            y = prep.true_label
            result = purify(models, prep.purifier_input, cfg, seed=0)
            fooled_bare = result.input_label != y
            vote_right = result.votes.get(y, 0) > k / 2  # a majority of the seeds, not just the most votes
            if fooled_bare and (vote_right if want_vote_right else result.label != y):
                return {"image": rel(path), "sigma": sigma, "seeds": k, "sampler": "fast", "steps": 10, "seed": 0,
                        "attack": "PGD", "norm": "l2", "eps": eps, "attack_steps": 10, "threat": threat,
                        "true_label": y, "adversarial_label": result.input_label, "vote": result.label,
                        "votes": result.votes, "tried": tried}
    return None


def tie_story(models, sigma: float = 1.0, k: int = 8, seeds: int = 10) -> dict | None:
    """First (sample, seed) at sigma, K where the vote is a tie."""
    cfg = PurifyConfig(sigma=sigma, seeds=k, sampler="fast", steps=10)
    tried = 0
    for path in SAMPLES:
        x = load_input(path, models)
        for seed in range(seeds):
            tried += 1
            result = purify(models, x, cfg, seed=seed)
            if len(tied_labels(result.votes)) > 1:
                return {"image": rel(path), "sigma": sigma, "seeds": k, "sampler": "fast", "steps": 10, "seed": seed,
                        "attack": "none", "true_label": true_label(path), "vote": result.label, "votes": result.votes,
                        "tried": tried}
    return None


def certify_story(models, sigma: float, want_certified: bool, k: int = 4, n0: int = 10, n: int = 100) -> dict | None:
    """First sample whose anytime-valid certificate (the Certify view's) certifies (radius > 0), or abstains
    outright (decision "abstain": even the upper bound on p_A fell below 1/2)."""
    cfg = PurifyConfig(sigma=sigma, seeds=k, sampler="fast", steps=10)
    scfg = SequentialConfig(alpha=0.001, n=n, n0=n0)
    for tried, path in enumerate(SAMPLES, start=1):
        result = sequential_certify(densepure_base(models, load_input(path, models), cfg, 0), models.num_classes,
                                    sigma, scfg, chunk=64)
        if (result.label is not None and result.radius > 0) if want_certified else result.decision == "abstain":
            return {"image": rel(path), "sigma": sigma, "seeds": k, "sampler": "fast", "steps": 10, "seed": 0,
                    "n0": n0, "n": n, "alpha": 0.001, "true_label": true_label(path), "decision": result.decision,
                    "label": result.label, "top_class": result.top_class, "radius": result.radius,
                    "p_lower": result.p_lower, "counts": result.counts, "tried": tried}
    return None


def region_story(n: int = 1000, seed: int = 0) -> dict | None:
    """First (preset, sigma) at the preset's points where x0's robust region is over 4 times the certified
    ball's area and x_a lies in the region but outside the ball (the region may be clipped by the window:
    then its true area is larger still, and the record says so)."""
    tried = 0
    for name in ("moons", "finite dataset", "clusters"):
        p = PRESETS[name]
        for sigma in (0.25, 0.4, 0.5):
            tried += 1
            maps = region_maps(p.mixture, p.grid, sigma)
            robust = robust_region(p.mixture, maps, np.array(p.x0), np.array(p.x_a), np.random.default_rng([seed, 2]),
                                   CertifyConfig(n0=100, n=n))
            if (robust.certificate.label is not None and robust.area > 4 * robust.ball_area and robust.x_a_in_region
                    and not robust.x_a_in_ball):
                return {"preset": name, "sigma": sigma, "x0": list(p.x0), "x_a": list(p.x_a), "seed": seed, "n": n,
                        "area": robust.area, "clipped": robust.clipped, "ball_area": robust.ball_area,
                        "radius": robust.certificate.radius, "tried": tried}
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "results" / "stories" / "search.json")
    args = parser.parse_args(argv)
    models = load_models("digits", device="cpu")
    found = {  # keyed by the story each search is for (densepure_viz.stories)
        "region-larger-than-ball": region_story(),
        "tie": tie_story(models),
        "attack-recovers": attack_story(models, "classifier", (1.0, 1.5), want_vote_right=True),
        "adaptive-fools-both": attack_story(models, "adaptive", (1.0, 1.5, 2.0), want_vote_right=False),
        "certify-robust": certify_story(models, 0.5, want_certified=True),
        "certify-abstain": certify_story(models, 1.0, want_certified=False),
    }
    for key, value in found.items():
        print(key, json.dumps(value))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": models.name, "stories": found}, indent=1) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
