"""Pick the study's "where the vote wins" example from its records and check it in the Purify view.

(The app's story of that name comes from scripts/find_stories.py, which also asks that the bare classifier on
the same noisy input be wrong.)

From assets/results/study/records.jsonl, take the held-out image where the K-seed vote is right and
one-shot wrong on the largest share of its smoothing draws (densepure_viz.experiments.study.vote_wins). The study's
draws use their own noise streams; the Purify view draws from Stream.PURIFY with a seed, so the script
then looks for the smallest Purify-view seed that shows the same thing on that image (vote right,
one-shot wrong) and records that run's per-seed labels. Writes vote_wins_example.json beside the records
and the input as assets/samples/digits/test_<idx>_label<y>.png. Example:

    OMP_NUM_THREADS=1 python scripts/pick_vote_example.py --sigma 1.0 --k 32
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from anywhere

from densepure_viz.models.data import split_digits  # noqa: E402
from densepure_viz.models.images import save_image  # noqa: E402
from densepure_viz.models.registry import load_models  # noqa: E402
from densepure_viz.engine.purify import PurifyConfig, purify  # noqa: E402
from densepure_viz.experiments.study import Chain, StudyConfig, read_records, vote_wins  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigma", type=float, default=1.0)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--candidates", type=int, default=5, help="images tried, best first")
    parser.add_argument("--purify-seeds", type=int, default=12, help="Purify-view seeds tried per image")
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "results" / "study")
    args = parser.parse_args(argv)
    models = load_models("digits", device="cpu")
    chain = Chain("fast", args.steps)
    records = read_records(args.out / "records.jsonl", StudyConfig(sigmas=(args.sigma,), chains=(chain,)), models.name)
    wins = vote_wins(records, chain.name, args.sigma, args.k, models.num_classes)
    split = split_digits()
    cfg = PurifyConfig(sigma=args.sigma, seeds=args.k, sampler="fast", steps=args.steps)
    images = list(dict.fromkeys(w.index for w in wins))[: args.candidates]
    for index in images:
        x, y = split.test_images[index], int(split.test_labels[index])
        for seed in range(args.purify_seeds):
            result = purify(models, x, cfg, seed=seed)
            if result.label == y and result.one_shot_label != y:
                sample = ROOT / "assets" / "samples" / "digits" / f"test_{index:04d}_label{y}.png"
                if not sample.exists():
                    save_image(x, sample)
                example = {
                    "model": models.name, "image_index": index, "label": y, "image_file": str(sample.relative_to(ROOT)),
                    "sigma": args.sigma, "k": args.k, "sampler": "fast", "steps": args.steps, "purify_seed": seed,
                    "vote": result.label, "one_shot": result.one_shot_label, "bare_noisy": result.noisy_label,
                    "per_seed": result.per_seed, "votes": result.votes,
                    "study_draws": [asdict(w) for w in wins if w.index == index],
                    "how": "purify(models, x, PurifyConfig(sigma, k, 'fast', steps), seed=purify_seed) in the Purify "
                           "view; study_draws are the study's own draws of this image where the vote wins",
                }
                path = args.out / "vote_wins_example.json"
                path.write_text(json.dumps(example, indent=1) + "\n")
                print(path, json.dumps({k: example[k] for k in ("image_index", "label", "purify_seed", "votes")}))
                return
    raise SystemExit(f"no Purify-view seed below {args.purify_seeds} reproduced a win on images {images}")


if __name__ == "__main__":
    main()
