"""Device-hours of DensePure's certification at the paper's scale, from a UNet throughput: `python -m bench.scale`.

Nothing is timed here: the table is arithmetic on a throughput measured elsewhere (`python -m bench.speed`,
its "UNet evals/s" column), given per dataset on the command line. The cost model is our engine's
(densepure_viz.engine.purify): each of an image's n0 + N noise draws costs one UNet evaluation at t*, shared by
the K seeds, and b - 1 more for every seed that runs. Seeds run in rounds and a draw stops once its
majority is decided, so between K // 2 + 1 (every seed agrees) and K seeds run per draw. On digits
(n0 = 100, N = 1000, K = 10, b = 10) that gives 60,500 to 100,100 evaluations; bench/RESULTS.md measured
60,608. The network cost of the classifier is left out (under 1% of the wall time in bench.speed).

The paper's settings are those of the reference scripts (Jayfeather1024/DensePure, run_scripts/):
CIFAR-10 every 20th test image (500), ImageNet every 500th validation image (100), n0 = 100, N = 100,000
and 10,000, K = 10 reverse seeds; b is a script argument (its README's example runs 2 steps), so the
table shows b = 2 and b = 10. Each sigma (0.25, 0.5, 1.0 in the paper) is one such run.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    """One certification run of the paper: a dataset at one sigma."""

    dataset: str  # "cifar10" or "imagenet"
    images: int  # test images certified
    n0: int  # CERTIFY selection draws per image
    n: int  # CERTIFY estimation draws per image (the paper's N)
    seeds: int  # K reverse seeds per draw
    steps: int  # b reverse steps per seed


PAPER: tuple[Setting, ...] = tuple(
    Setting(dataset, images, 100, n, 10, steps)
    for dataset, images, n in (("cifar10", 500, 100_000), ("imagenet", 100, 10_000))
    for steps in (2, 10)
)


def unet_evaluations(setting: Setting, seeds_run: int) -> int:
    """UNet image-evaluations of the run when `seeds_run` of the K seeds run per draw: (n0 + N)(1 + (b - 1) k) per image."""
    return setting.images * (setting.n0 + setting.n) * (1 + (setting.steps - 1) * seeds_run)


def hours(evaluations: int, per_second: float) -> float:
    """Device-hours at `per_second` UNet image-evaluations per second."""
    return evaluations / per_second / 3600


def table(throughput: dict[str, float]) -> str:
    """The Markdown table: evaluations and hours per setting, between all-seeds-agree and no-early-stop."""
    lines = [
        "| dataset | images | n0 + N | K | b | UNet evals (millions) | hours at 1,000 evals/s | throughput T (evals/s) "
        "| hours at T |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in PAPER:
        low, high = (unet_evaluations(s, k) for k in (s.seeds // 2 + 1, s.seeds))
        rate = throughput.get(s.dataset)
        shown, at_rate = (f"{rate:g}", f"{hours(low, rate):,.0f} - {hours(high, rate):,.0f}") if rate else ("-", "not measured")
        lines.append(
            f"| {s.dataset} | {s.images} | {s.n0 + s.n:,} | {s.seeds} | {s.steps} | {low / 1e6:,.0f} - {high / 1e6:,.0f} "
            f"| {hours(low, 1000):,.0f} - {hours(high, 1000):,.0f} | {shown} | {at_rate} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar10", type=float, default=None,
                        help="UNet evals/s of the CIFAR-size UNet on one device (bench.speed's summary)")
    parser.add_argument("--imagenet", type=float, default=None, help="UNet evals/s of the ImageNet 256x256 UNet")
    args = parser.parse_args()
    print(table({"cifar10": args.cifar10, "imagenet": args.imagenet}), end="")


if __name__ == "__main__":
    main()
