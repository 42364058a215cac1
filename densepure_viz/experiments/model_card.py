"""Measure the embedded models on the held-out split and write their model card.

`python -m densepure_viz.experiments.model_card` reports, on the 360 held-out digits: the classifier's clean
accuracy; its accuracy on x + delta, delta ~ N(0, sigma^2) (the bare classifier under smoothing
noise); and the per-draw accuracy of one-shot denoising (Carlini et al. 2023), DensePure with the
fast sampler and DensePure with the full DDPM chain (Xiao et al. 2023). Each noisy method is measured
on several seeded smoothing draws per image and reported as the mean and spread (sample standard
deviation) of the per-draw accuracies. Draw d of image i is engine draw d * DRAW_STRIDE + i of stream
ESTIMATE (`densepure_viz.experiments.study.draw_ids`), so draw 0 is the study's draw 0. The full chain is slow and
runs on the first `--full-images` images; the other methods are also reported on that subset, so the
rows can be compared on the same images.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from densepure_viz.models.data import split_digits
from densepure_viz.paths import ASSETS
from densepure_viz.models.registry import DensePureModels, load_models
from densepure_viz.engine.purify import PurifyConfig
from densepure_viz.smoothing.base import bare_base, densepure_base
from densepure_viz.engine.seeding import Stream
from densepure_viz.experiments.study import draw_ids

Predict = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (images (m, C, H, W), draw ids (m,)) -> labels (m,)


@dataclass(frozen=True)
class CardRow:
    """One measured accuracy, over several smoothing draws per image."""

    method: str  # what was measured
    per_draw: tuple[float, ...]  # accuracy (fraction correct) on each smoothing draw
    images: int  # held-out images used
    seconds: float  # wall time on this machine, all draws

    @property
    def accuracy(self) -> float:
        """Mean over draws of the per-draw accuracy."""
        return sum(self.per_draw) / len(self.per_draw)

    @property
    def spread(self) -> float:
        """Sample standard deviation of the per-draw accuracies (0 for one draw)."""
        if len(self.per_draw) < 2:
            return 0.0
        return float(torch.tensor(self.per_draw, dtype=torch.float64).std())


def correct_table(predict: Predict, images: torch.Tensor, labels: torch.Tensor, draws: int, method: str,
                  batch: int = 64) -> tuple[torch.Tensor, float]:
    """(correctness (draws, N) bool of `predict` on draws 0..draws-1 of every image, seconds)."""
    start, rows = time.perf_counter(), []
    for d in range(draws):
        row = torch.cat([predict(images[idx], draw_ids(idx, d)) == labels[idx]
                         for idx in torch.arange(len(labels)).split(batch)])
        rows.append(row)
        tqdm.write(f"{method}: draw {d}: {100 * row.float().mean():.1f}% of {len(row)}")
    return torch.stack(rows), time.perf_counter() - start


def card_row(method: str, correct: torch.Tensor, seconds: float, images: int | None = None) -> CardRow:
    """The row of correctness (draws, N) restricted to the first `images` images (default: all)."""
    part = correct[:, :images]
    share = part.shape[1] / correct.shape[1]  # of the measured time
    return CardRow(method, tuple(part.float().mean(1).tolist()), part.shape[1], seconds * share)


def measure(models: DensePureModels, sigma: float, seeds: int, steps: int, full_images: int, draws: int,
            full_draws: int, seed: int = 0) -> list[CardRow]:
    """The card's rows on all held-out images and on the first `full_images` (where the full chain runs, unless
    full_draws = 0)."""
    split = split_digits()
    x, y = split.test_images, split.test_labels

    def smoothed(cfg: PurifyConfig) -> Predict:
        return lambda images, ids: densepure_base(models, images, cfg, seed)(Stream.ESTIMATE, ids)

    def bare(images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return bare_base(models, images, sigma, seed)(Stream.ESTIMATE, ids)

    def clean(images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return models.predict(images).cpu()

    methods: list[tuple[str, Predict, int]] = [
        ("classifier, clean", clean, 1),
        (f"classifier on x + N(0, {sigma}^2)", bare, draws),
        ("one-shot denoising + classifier", smoothed(PurifyConfig(sigma, 1, "one-shot")), draws),
        (f"DensePure, K={seeds}, fast sampler b={steps}", smoothed(PurifyConfig(sigma, seeds, "fast", steps)), draws),
    ]
    tables = [(name, *correct_table(predict, x, y, n, name)) for name, predict, n in methods]
    rows = [card_row(name, correct, seconds) for name, correct, seconds in tables]
    rows += [card_row(name, correct, seconds, full_images) for name, correct, seconds in tables[1:]]
    if full_draws == 0:
        return rows
    full = f"DensePure, K={seeds}, full DDPM chain"
    correct, seconds = correct_table(smoothed(PurifyConfig(sigma, seeds, "full")), x[:full_images], y[:full_images],
                                     full_draws, full)
    return rows + [card_row(full, correct, seconds)]


def card_table(rows: list[CardRow]) -> str:
    lines = ["| method | images | draws | accuracy, mean ± sd over draws | per-draw range | time (s) |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.method} | {r.images} | {len(r.per_draw)} | {100 * r.accuracy:.1f}% ± {100 * r.spread:.1f} "
              f"| {100 * min(r.per_draw):.1f}-{100 * max(r.per_draw):.1f} | {r.seconds:.0f} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigma", type=float, default=0.5)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--draws", type=int, default=5, help="smoothing draws per image")
    parser.add_argument("--full-images", type=int, default=100, help="held-out images for the (slow) full chain")
    parser.add_argument("--full-draws", type=int, default=3, help="smoothing draws per image for the full chain (0: skip it)")
    parser.add_argument("--out", type=Path, default=ASSETS / "digits" / "RESULTS.md")
    args = parser.parse_args(argv)
    rows = measure(load_models("digits", device="cpu"), args.sigma, args.seeds, args.steps, args.full_images,
                   args.draws, args.full_draws)
    header = (f"Measured by `python -m densepure_viz.experiments.model_card --sigma {args.sigma} --seeds {args.seeds} "
              f"--steps {args.steps} --draws {args.draws} --full-images {args.full_images} "
              f"--full-draws {args.full_draws}` on {platform.machine()} CPU ({torch.get_num_threads()} threads), "
              f"torch {torch.__version__}, seed 0. Accuracy is per smoothing draw (one noise draw of each image), "
              f"averaged over the draws; sd is the spread of that accuracy from draw to draw.\n\n")
    args.out.write_text(header + card_table(rows) + "\n")
    print(header + card_table(rows))


if __name__ == "__main__":
    main()
