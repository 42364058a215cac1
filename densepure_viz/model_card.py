"""Measure the embedded models on the held-out split and write their model card.

`python -m densepure_viz.model_card` reports, on the 360 held-out digits: the classifier's clean
accuracy; its accuracy on x + delta, delta ~ N(0, sigma^2) (the bare classifier under smoothing
noise); and the accuracy of one-shot denoising (Carlini et al. 2023), DensePure with the fast
sampler, and DensePure with the full DDPM chain, each on one seeded noise draw per image.
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from densepure_viz.data import split_digits
from densepure_viz.models import ASSETS, DensePureModels, load_models
from densepure_viz.purify import PurifyConfig, bare_base, densepure_base
from densepure_viz.seeding import Stream


@dataclass(frozen=True)
class CardRow:
    """One measured accuracy."""

    method: str  # what was measured
    accuracy: float  # fraction correct
    images: int  # held-out images used
    seconds: float  # wall time on this machine


def _accuracy(predict, images: torch.Tensor, labels: torch.Tensor, method: str, batch: int) -> CardRow:
    """Accuracy of `predict(images (m, C, H, W), draws (m,)) -> labels (m,)` in batches, timed."""
    start, correct = time.perf_counter(), 0
    for idx in tqdm(torch.arange(len(labels)).split(batch), desc=method, leave=False):
        correct += int((predict(images[idx], idx) == labels[idx]).sum())
    return CardRow(method, correct / len(labels), len(labels), time.perf_counter() - start)


def measure(models: DensePureModels, sigma: float, seeds: int, steps: int, full_images: int, seed: int = 0) -> list[CardRow]:
    """The card's rows: clean, noisy, one-shot, DensePure fast, DensePure full chain (first `full_images`)."""
    split = split_digits()
    x, y = split.test_images, split.test_labels
    batch = 64

    def smoothed(cfg: PurifyConfig):
        return lambda images, draws: densepure_base(models, images, cfg, seed)(Stream.ESTIMATE, draws)

    with torch.inference_mode():
        rows = [
            _accuracy(lambda images, draws: models.predict(images).cpu(), x, y, "classifier, clean", batch),
            _accuracy(lambda images, draws: bare_base(models, images, sigma, seed)(Stream.ESTIMATE, draws), x, y,
                      f"classifier on x + N(0, {sigma}^2)", batch),
        ]
    rows.append(_accuracy(smoothed(PurifyConfig(sigma, 1, "one-shot")), x, y, "one-shot denoising + classifier", batch))
    rows.append(_accuracy(smoothed(PurifyConfig(sigma, seeds, "fast", steps)), x, y,
                          f"DensePure, K={seeds}, fast sampler b={steps}", batch))
    rows.append(_accuracy(smoothed(PurifyConfig(sigma, seeds, "full")), x[:full_images], y[:full_images],
                          f"DensePure, K={seeds}, full DDPM chain", batch))
    return rows


def card_table(rows: list[CardRow]) -> str:
    lines = ["| method | accuracy | images | time (s) |", "|---|---:|---:|---:|"]
    lines += [f"| {r.method} | {100 * r.accuracy:.1f}% | {r.images} | {r.seconds:.0f} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigma", type=float, default=0.5)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--full-images", type=int, default=100, help="held-out images for the (slow) full chain")
    parser.add_argument("--out", type=Path, default=ASSETS / "digits" / "RESULTS.md")
    args = parser.parse_args(argv)
    rows = measure(load_models("digits", device="cpu"), args.sigma, args.seeds, args.steps, args.full_images)
    header = (f"Measured by `python -m densepure_viz.model_card --sigma {args.sigma} --seeds {args.seeds} "
              f"--steps {args.steps} --full-images {args.full_images}` on {platform.machine()} CPU "
              f"({torch.get_num_threads()} threads), torch {torch.__version__}, seed 0.\n\n")
    args.out.write_text(header + card_table(rows) + "\n")
    print(header + card_table(rows))


if __name__ == "__main__":
    main()
