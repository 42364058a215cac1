"""Issue 23's device checks in one run of about 6-8 minutes on one H200: `python -m bench.gpu_check [--mode M]`.

1. The bare UNet, digits and CIFAR-size (bench.speed's random-weight google/ddpm-cifar10-32 replica), bf16,
   eager and compiled in `--mode`, over batch sizes: FLOPs per evaluation, evaluations/s, MFU.
2. CERTIFY n0 = 100, n = 10,000, K = 10, b = 10 on a CIFAR-size image, compiled bf16 (goal: under 60 s),
   with the UNet evaluations per second it reached.
3. Agreement of DensePure's votes, compiled bf16 against eager float32, per noise draw (goal: at least 99%)
   on the digits model (held-out images) and the CIFAR-size replica (random weights: its seeds mostly agree,
   so its agreement is a weak check; the digits figure is the one that matters).
4. The shipped Purify stories (assets/stories.json) on the GPU in float32 and bf16 against the CPU: the same seed
   must tell the same story (issue 21: every draw comes from CPU generators; float32 should reproduce the
   per-seed labels, bf16's agreement is reported).

Each section's Markdown table is printed as soon as it is done and, when $OUT is set, appended to
$OUT/gpu_check.md, so a run stopped by its time limit still returns what it finished.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from bench.speed import SEED, SIGMA, SWEEP_HEADER, certify_engine, header, peak_tflops, setup, sweep, sweep_rows, unet_flops
from densepure_viz.attacks.prepare import run_prepare
from densepure_viz.engine.purify import PurifyConfig, densepure_votes, purify
from densepure_viz.engine.runtime import COMPILE_MODES, accelerate
from densepure_viz.engine.seeding import Stream
from densepure_viz.models.data import split_digits
from densepure_viz.models.registry import DensePureModels, load_models
from densepure_viz.serving.api import PurifyRequest, story_request, view_stories
from densepure_viz.serving.ui.requests import parse_attack, parse_purify

BATCHES = (256, 1024, 4096, 16384)  # the sweep's batch sizes (it stops at the first out of memory)
SWEEP_SECONDS = 1.5  # timed seconds per batch size
AGREEMENT = PurifyConfig(SIGMA, 4, "fast", 10)  # K = 4, b = 10 per draw
AGREEMENT_DRAWS = 256  # noise draws per image
AGREEMENT_IMAGES = 4  # images per model


def emit(text: str) -> None:
    """Print a section and append it to $OUT/gpu_check.md when OUT is set."""
    print(text + "\n", flush=True)
    if os.environ.get("OUT"):
        with open(Path(os.environ["OUT"]) / "gpu_check.md", "a") as f:
            f.write(text + "\n\n")


def sweep_section(device: torch.device, mode: str) -> str:
    """Section 1: the bare UNet of each model, eager then compiled."""
    rows, peak = list(SWEEP_HEADER), peak_tflops(device)
    for name in ("digits", "cifar10"):
        models, _ = setup(name, device, torch.bfloat16, False)
        flops = unet_flops(models, 1)
        rows += sweep_rows(name, "eager", flops, sweep(models, BATCHES, SWEEP_SECONDS), peak)
        rows += sweep_rows(name, mode, flops, sweep(accelerate(models, compile=mode), BATCHES, SWEEP_SECONDS), peak)
    return f"## 1. The bare UNet, bf16 (peak {peak} TFLOP/s)\n\n" + "\n".join(rows)


def certify_section(device: torch.device, mode: str) -> str:
    """Section 2: the issue's certify case, compiled, after a small warm-up certify (compiling, CUDA graphs)."""
    models, image = setup("cifar10", device, torch.bfloat16, mode)
    certify_engine(models, image, 10, 100, 10, 10)
    run = certify_engine(models, image, 100, 10_000, 10, 10)
    evals = run.counter.unet_images
    return ("## 2. CERTIFY n0 = 100, n = 10,000, K = 10, b = 10, CIFAR-size, bf16, " + mode + "\n\n"
            "| wall s | UNet evals | UNet evals/s (wall) | share in UNet | label, radius |\n|---:|---:|---:|---:|---|\n"
            f"| {run.seconds:.1f} | {evals:,} | {evals / run.seconds:,.0f} | "
            f"{100 * run.counter.unet_seconds / run.seconds:.0f}% | {run.result.label}, {run.result.radius:.3f} |")


def agreement_row(name: str, device: torch.device, mode: str, images: list[torch.Tensor]) -> str:
    """Votes per draw of compiled bf16 against eager float32 on the same draws and seeds."""
    eager, _ = setup(name, device, torch.float32, False)
    fast, _ = setup(name, device, torch.bfloat16, mode)
    draws, same, start = torch.arange(AGREEMENT_DRAWS), 0, time.perf_counter()
    for image in images:
        reference = densepure_votes(eager, image, AGREEMENT, SEED, Stream.ESTIMATE, draws)
        same += int((densepure_votes(fast, image, AGREEMENT, SEED, Stream.ESTIMATE, draws) == reference).sum())
    total = len(images) * AGREEMENT_DRAWS
    return f"| {name} | {len(images)} | {total} | {same} | {100 * same / total:.2f}% | {time.perf_counter() - start:.0f} |"


def agreement_section(device: torch.device, mode: str) -> str:
    """Section 3: the agreement table."""
    digits = list(split_digits().test_images[:AGREEMENT_IMAGES])
    cifar = [torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(i)) for i in range(AGREEMENT_IMAGES)]
    rows = [agreement_row("digits", device, mode, digits), agreement_row("cifar10", device, mode, cifar)]
    return (f"## 3. Votes per draw, {mode} bf16 against eager float32 (K = {AGREEMENT.seeds}, b = {AGREEMENT.steps})\n\n"
            "| model | images | draws | same vote | agreement | s |\n|---|---:|---:|---:|---:|---:|\n" + "\n".join(rows))


def story_outcome(models: DensePureModels, request: PurifyRequest) -> tuple[list[int], int]:
    """(per-seed labels, vote) of a Purify story on `models`: the app's own path (attack from the request, then
    DensePure with the request's seed), every draw from CPU generators."""
    path, cfg, seed = parse_purify(request)
    prepared = run_prepare(models, path, parse_attack(request, cfg.sigma, seed))
    result = purify(models, prepared.purifier_input, cfg, seed)
    return result.per_seed, result.label


def stories_section(device: torch.device, mode: str, dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.bfloat16)) -> str:
    """Section 4: the shipped Purify stories on the device against the CPU in float32 (the same seed must tell the
    same story: issue 21), in each of `dtypes`. `mode` is unused: the app runs the networks eagerly."""
    cpu = load_models("digits", device="cpu")
    rows = []
    for dtype in dtypes:
        on_device = cpu.to_device(device, dtype)
        for story in view_stories("purify"):
            request = story_request(story)
            want, got = story_outcome(cpu, request), story_outcome(on_device, request)
            same = sum(a == b for a, b in zip(want[0], got[0]))
            rows.append(f"| {story.key} | {str(dtype).removeprefix('torch.')} | {want[1]} / {got[1]} | "
                        f"{same}/{len(want[0])} | {'same story' if want == got else 'DIFFERENT'} |")
    return (f"## 4. The Purify stories on {device} against the CPU (float32)\n\n"
            "| story | device precision | vote CPU / device | same per-seed labels | verdict |\n|---|---|---|---:|---|\n"
            + "\n".join(rows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=COMPILE_MODES, default="reduce-overhead", help="torch.compile mode")
    parser.add_argument("--sections", default="1,2,3,4", help="comma-separated sections to run")
    args = parser.parse_args(argv)
    device = torch.device("cuda")
    emit(header(device, torch.bfloat16, False, " ".join(["python -m bench.gpu_check", *(sys.argv[1:] if argv is None else argv)]))
         + f" CUDA runtime {torch.version.cuda}.")
    sections = {"1": sweep_section, "2": certify_section, "3": agreement_section, "4": stories_section}
    for key in args.sections.split(","):
        start = time.perf_counter()
        emit(sections[key](device, args.mode) + f"\n\n(section {key}: {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
