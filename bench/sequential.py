"""Sequential CERTIFY against fixed-n CERTIFY on the held-out digits (issue 14's goal).

    OMP_NUM_THREADS=1 python -m bench.sequential [--images 100] [--results FILE] [--no-fixed] [--table-only]
                                                 [--device cuda]

DensePure (Xiao et al. 2023) with the shipped "digits" model at sigma = 0.5, K = 4 seeds, b = 5 fast
steps is the base classifier. Per image, sequential CERTIFY (`densepure_viz.smoothing.sequential`, alpha =
0.001, budget N = 1,000, no selection phase) decides at R = 0.25 and at R = 0.5; fixed-n CERTIFY
(Cohen et al. 2019, n0 = 100, n = 1,000) runs once on the same image with the same seed. Each run
starts from scratch (no votes shared between runs), so every wall time is that method's own cost.
Images run one after another, every method on each, so a partial run compares like with like. Prints a
Markdown table: per R, draws used (mean, median, max; selection draws included), images certified at
R (and certified with the true label), and wall time. `--results FILE` keeps each image's results and
resumes from them (e.g. a `--no-fixed` pass over all images, then fixed-n added to the same file);
`--table-only` prints the table of such a file, comparing the methods on the images both have run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

import torch
from scipy.stats import norm

from densepure_viz.smoothing.certify import CertifyConfig, certify
from densepure_viz.models.data import split_digits
from densepure_viz.models.registry import DensePureModels, load_models
from densepure_viz.engine.purify import PurifyConfig
from densepure_viz.smoothing.base import densepure_base
from densepure_viz.smoothing.sequential import SequentialConfig, sequential_certify

PURIFY = PurifyConfig(sigma=0.5, seeds=4, sampler="fast", steps=5)  # sigma, K, b of the goal
ALPHA = 0.001  # failure probability of both methods
BUDGET = 1000  # sequential budget N, and fixed-n's n
FIXED_N0 = 100  # fixed-n CERTIFY's selection draws
RADII = (0.25, 0.5)  # target radii R
SEED = 0  # seed of every run (same draws for both methods)
T = TypeVar("T")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform's answer elsewhere)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """(result, wall seconds) of fn()."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def run_sequential(models: DensePureModels, x: torch.Tensor) -> dict:
    """Sequential CERTIFY at each R on one image, each from scratch: {R: row of decision, label, radius, draws, seconds}."""
    rows = {}
    for radius in RADII:
        base = densepure_base(models, x, PURIFY, SEED)
        cfg = SequentialConfig(alpha=ALPHA, n=BUDGET, radius=radius)
        r, seconds = timed(lambda: sequential_certify(base, models.num_classes, PURIFY.sigma, cfg))
        rows[str(radius)] = {"decision": r.decision, "label": r.label, "radius": r.radius, "draws": r.n0 + r.draws_used, "seconds": seconds}
    return rows


def run_fixed(models: DensePureModels, x: torch.Tensor) -> dict:
    """Fixed-n CERTIFY on one image: a row of p_lower, label, radius, draws (n0 + n), seconds."""
    base = densepure_base(models, x, PURIFY, SEED)
    r, seconds = timed(lambda: certify(base, models.num_classes, PURIFY.sigma, CertifyConfig(FIXED_N0, BUDGET, ALPHA)))
    return {"p_lower": r.p_lower, "label": r.label, "radius": r.radius, "draws": FIXED_N0 + BUDGET, "seconds": seconds}


def summary(method: str, radius: float, rows: list[dict], certified: list[bool], truths: list[int]) -> str:
    """One Markdown table row."""
    draws = [row["draws"] for row in rows]
    correct = sum(c and row["label"] == t for c, row, t in zip(certified, rows, truths))
    seconds = sum(row["seconds"] for row in rows)
    cells = [method, radius, len(rows), f"{statistics.mean(draws):.1f}", f"{statistics.median(draws):.0f}", max(draws),
             sum(certified), correct, f"{seconds:.0f}", f"{seconds / len(rows):.2f}"]
    return "| " + " | ".join(map(str, cells)) + " |"


def machine(device: str) -> str:
    """The machine line: the CPU and, on CUDA, the GPU."""
    cpu = (f"{cpu_model()}, {os.cpu_count()} cores (the run's thread count: its OMP_NUM_THREADS), "
           f"Python {platform.python_version()}, torch {torch.__version__}")
    return f"{torch.cuda.get_device_name(device)} GPU; {cpu}" if device.startswith("cuda") else cpu


def table(records: list[dict], command: str, machine_line: str) -> str:
    """The Markdown report: sequential on every image, then both methods on the images fixed-n has reached."""
    lines = [f"## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, `{command}`", "",
             f"- **Machine:** {machine_line}",
             f"- **Setup:** {asdict(PURIFY)}, alpha {ALPHA}, budget/n {BUDGET}, fixed-n n0 {FIXED_N0}, seed {SEED}; "
             "held-out digits from the first of the test split", "",
             "| method | R | images | mean draws | median draws | max draws | certified at R | certified, correct label | wall s | s / image |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    both = [r for r in records if r["fixed"] is not None]
    for subset in ([records, both] if 0 < len(both) < len(records) else [records]):
        truths = [r["truth"] for r in subset]
        for radius in RADII:
            rows = [r["sequential"][str(radius)] for r in subset]
            lines.append(summary("sequential", radius, rows, [row["decision"] == "certified" for row in rows], truths))
            if len(subset) == len(both):
                fixed = [r["fixed"] for r in subset]
                threshold = norm.cdf(radius / PURIFY.sigma)
                certified = [row["label"] is not None and row["p_lower"] > threshold for row in fixed]
                lines.append(summary("fixed-n", radius, fixed, certified, truths))
    for radius in RADII:
        decisions = [r["sequential"][str(radius)]["decision"] for r in records]
        lines.append(f"\nR = {radius}: sequential decisions " + ", ".join(f"{d} {decisions.count(d)}" for d in sorted(set(decisions))))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100, help="first N held-out digits (default 100)")
    parser.add_argument("--results", type=Path, help="JSON file of per-image results: resumed from, rewritten after each image")
    parser.add_argument("--no-fixed", action="store_true", help="skip fixed-n CERTIFY (the bulk of the time)")
    parser.add_argument("--table-only", action="store_true", help="print the table of --results and run nothing")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1 ...")
    args = parser.parse_args()

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    records = json.loads(args.results.read_text()) if args.results and args.results.exists() else []
    if not args.table_only:
        models = load_models("digits", device=args.device)
        split = split_digits()
        for i in range(args.images):
            x, truth = split.test_images[i], int(split.test_labels[i])
            if i == len(records):
                records.append({"truth": truth, "sequential": run_sequential(models, x), "fixed": None})
            if records[i]["fixed"] is None and not args.no_fixed:
                records[i]["fixed"] = run_fixed(models, x)
            if args.results:
                args.results.write_text(json.dumps(records, indent=1))
            print(f"image {i}: " + json.dumps(records[i]), flush=True)
    records = records[: args.images]
    print("\n" + table(records, f"python -m bench.sequential --images {len(records)} --device {args.device}",
                        machine(args.device)))


if __name__ == "__main__":
    main()
