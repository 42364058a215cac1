"""Speed of the DensePure engine beside the per-seed reference and the bare networks (issues 2 and 5).

    python -m bench.speed [--quick] [--device cpu|cuda] [--models digits,cifar10] [--dtype D] [--compile [MODE]]
    python -m bench.speed --sweep [--batches 256,512,...] [--compile MODE] [--peak-tflops P]

On the same inputs and seeds, each case runs (a) the engine (`purify`, or CERTIFY with
`densepure_base`), (b) the per-seed reference structure (densepure_viz/experiments/reference.py: one pass per seed), and
(c) the bare UNet and classifier replaying the batch shapes and counts that (a) ran: the floor.
Printed as Markdown: times, a/b and a/c, UNet image-evaluations, peak memory, and whether (a) and
(b) agree. Then the engine summary of issue 2: UNet evaluations per second, purify and certify
times, and the share of wall time spent inside the UNet. Models: "digits" (the shipped model) and
"cifar10", a random-weight UNet with google/ddpm-cifar10-32's architecture (cifar10_ddpm.json,
35.7M parameters, no download) and a random timm ResNet-18 for 3x32x32. Thread count: torch's
default, or set OMP_NUM_THREADS. `--quick` is a smoke run of about a minute.

`--sweep` (issue 23) measures the bare UNet instead, per model and batch size, eager and compiled: FLOPs per
evaluation (counted by torch.utils.flop_counter.FlopCounterMode: 2 per multiply-add of convolutions, matmuls
and attention), evaluations per second, TFLOP/s and MFU, the share of the device's dense bf16 peak
(`PEAK_TFLOPS`; none on a CPU). On CUDA the batches double from 256 until memory runs out.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import platform
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from diffusers import DDPMScheduler, UNet2DModel
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from densepure_viz.smoothing.certify import CertifyConfig, CertifyResult, certify
from densepure_viz.models.registry import DensePureModels, default_dtype, load_models
from densepure_viz.engine.purify import PurifyConfig, PurifyResult, purify
from densepure_viz.smoothing.base import densepure_base
from densepure_viz.engine.runtime import COMPILE_MODES, EvalCounter, accelerate, auto_batch, unet_eps
from densepure_viz.engine.seeding import Stream
from densepure_viz.experiments.reference import per_seed_certify, per_seed_labels, replay

CIFAR_CONFIG = Path(__file__).with_name("cifar10_ddpm.json")
SIGMA = 0.5  # smoothing std of every case
SEED = 0  # seed of every case


@dataclass(frozen=True)
class Plan:
    """The cases run for one model."""

    purify_seeds: tuple[int, ...]  # K values of the purify rows
    purify_steps: tuple[int, ...]  # b values of the purify rows
    certify: tuple[int, int, int, int]  # (n0, n, K, b) of the side-by-side certify row
    summary_certify: tuple[int, int, tuple[int, ...], int]  # (n0, n, K values, b): engine-only rows of issue 2


PLANS = {  # (model, quick) -> Plan; CIFAR on CPU stays small (a 35.7M UNet evaluates ~10 images/s per core)
    ("digits", False): Plan((1, 4, 8, 16), (1, 10), (100, 1000, 10, 10), (100, 1000, (1, 4), 10)),
    ("digits", True): Plan((1, 4, 8, 16), (1, 10), (10, 40, 10, 4), (10, 40, (1, 4), 4)),
    ("cifar10", False): Plan((1, 4, 8, 16), (1, 10), (8, 32, 4, 4), (8, 32, (1,), 4)),
    ("cifar10", True): Plan((4,), (1, 10), (2, 4, 4, 2), (2, 4, (1,), 2)),
}
CUDA_CIFAR = Plan((1, 4, 8, 16), (1, 10), (100, 1000, 10, 10), (100, 1000, (1, 4), 10))
# Dense (no 2:4 sparsity) bf16 tensor-core peaks in TFLOP/s from NVIDIA's datasheets, matched on the device name
# in order (H100 PCIe before H100 SXM; "A10" is not "A10G", whose figure NVIDIA does not publish). T4: fp16.
PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    (r"H200", 989.0), (r"H100 PCIe", 756.0), (r"H100", 989.0), (r"A100", 312.0), (r"L40S", 362.0),
    (r"\bL4\b", 121.0), (r"\bA10\b", 125.0), (r"\bT4\b", 65.0),
)
SWEEP_BATCHES = {"cpu": (8, 32), "cuda": tuple(256 * 2**i for i in range(8))}  # cuda: 256 .. 32768, until OOM
SWEEP_SECONDS = 2.0  # time each batch size for at least this long (after its warm-up call)


@dataclass
class Run:
    """One timed call."""

    seconds: float  # wall time
    cpu_seconds: float  # CPU time of this process (all threads): less sensitive than wall time to other load
    peak_mb: float  # peak memory above the start (CUDA: allocated; CPU: resident set, sampled)
    counter: EvalCounter  # network calls it made
    result: object  # what it returned


# --- measurement --------------------------------------------------------------------------------


def _trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc), so the next peak is measured from a low start."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@contextmanager
def _peak_memory(device: torch.device) -> Iterator[list[float]]:
    """Yields a one-item list that receives the peak memory (MB) above the start of the block."""
    out = [0.0]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield out
        torch.cuda.synchronize(device)
        out[0] = (torch.cuda.max_memory_allocated(device) - start) / 2**20
        return
    _trim_heap()
    start, peak, stop = _rss_bytes(), [0], threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            peak[0] = max(peak[0], _rss_bytes())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()
        out[0] = max(0, max(peak[0], _rss_bytes()) - start) / 2**20


def timed(device: torch.device, fn: Callable[[EvalCounter], object]) -> Run:
    """Run fn(counter) once and time it (CUDA synchronised at both ends)."""
    counter = EvalCounter()
    with _peak_memory(device) as peak:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        result = fn(counter)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return Run(seconds, cpu_seconds, peak[0], counter, result)


def floor(models: DensePureModels, engine: Run) -> Run:
    """(c): the bare networks on the engine's batch shapes."""
    return timed(models.device, lambda _: replay(models, engine.counter))


# --- models ---------------------------------------------------------------------------------------


def seeded_weights(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Deterministic random weights, in eval mode: N(0, 1/fan_in) for weight matrices/kernels, zero biases of the
    layers they belong to (the random-weight replicas of bench and tests/rgb_replicas.py)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            weight, bias = getattr(layer, "weight", None), getattr(layer, "bias", None)
            if isinstance(weight, torch.nn.Parameter) and weight.dim() > 1:
                weight.copy_(torch.randn(weight.shape, generator=gen) * weight[0].numel() ** -0.5)
                if isinstance(bias, torch.nn.Parameter):
                    bias.zero_()
    return module.eval()


def cifar10_models(device: torch.device, dtype: torch.dtype) -> DensePureModels:
    """google/ddpm-cifar10-32's UNet architecture and a timm ResNet-18 for 3x32x32, both with random weights."""
    config = json.loads(CIFAR_CONFIG.read_text())
    unet = seeded_weights(UNet2DModel(**config["unet"]), 0)
    classifier = seeded_weights(timm.create_model("resnet18", num_classes=10), 1)
    stats = torch.full((1, 3, 1, 1), 0.5, dtype=dtype, device=device)
    return DensePureModels(
        name="cifar10 (random weights)",
        unet=unet.to(device) if dtype == torch.float32 else unet.to(device, dtype),
        scheduler=DDPMScheduler(**config["scheduler"]),
        classifier=classifier.to(device, dtype),
        labels=tuple(str(i) for i in range(10)),
        mean=stats,
        std=stats,
        classifier_size=(32, 32),
        device=device,
        dtype=dtype,
    )


def setup(name: str, device: torch.device, dtype: torch.dtype, compile: bool | str | None) -> tuple[DensePureModels, torch.Tensor]:
    """(models, the input image) of a benchmark model, with the engine's speed options applied (compile: as
    `runtime.compile_mode` reads it; None follows DENSEPURE_COMPILE)."""
    if name == "digits":
        from densepure_viz.models.data import split_digits

        models, image = load_models("digits", device=device, dtype=dtype), split_digits().test_images[0]
    else:
        models = cifar10_models(device, dtype)
        image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    return accelerate(models, compile=compile), image


# --- cases ----------------------------------------------------------------------------------------


def _row(cells: list[object]) -> str:
    """A Markdown table row."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 else "-"


def _ratios(a: Run, b: Run, c: Run) -> list[str]:
    """a/b and a/c in wall time, then in CPU time."""
    return [_ratio(a.seconds, b.seconds), _ratio(a.seconds, c.seconds),
            _ratio(a.cpu_seconds, b.cpu_seconds), _ratio(a.cpu_seconds, c.cpu_seconds)]


def purify_rows(name: str, models: DensePureModels, image: torch.Tensor, plan: Plan) -> list[str]:
    """(a) `purify` (the interactive call: frames, all K labels) beside (b) and (c), per K and b."""
    rows = []
    for steps in plan.purify_steps:
        for k in plan.purify_seeds:
            cfg = PurifyConfig(SIGMA, k, "fast", steps)
            a = timed(models.device, lambda c: purify(models, image, cfg, SEED, counter=c))
            b = timed(models.device, lambda c: per_seed_labels(models, image, cfg, SEED, Stream.PURIFY,
                                                               torch.zeros(1, dtype=torch.long), counter=c))
            c = floor(models, a)
            result: PurifyResult = a.result
            same = result.per_seed == b.result[0].tolist()
            rows.append(_row([name, k, steps, f"{a.seconds:.3f}", f"{b.seconds:.3f}", f"{c.seconds:.3f}",
                              *_ratios(a, b, c), f"{a.counter.unet_images} / {b.counter.unet_images}",
                              f"{a.peak_mb:.0f} / {b.peak_mb:.0f}", "yes" if same else "NO"]))
    return rows


def certify_engine(models: DensePureModels, image: torch.Tensor, n0: int, n: int, k: int, steps: int) -> Run:
    """(a) CERTIFY with the engine, chunked as the CLI does."""
    cfg, ccfg = PurifyConfig(SIGMA, k, "fast", steps), CertifyConfig(n0=n0, n=n)
    chunk = max(1, auto_batch(models) // k)
    return timed(models.device, lambda c: certify(densepure_base(models, image, cfg, SEED, counter=c),
                                                  models.num_classes, SIGMA, ccfg, chunk))


def certify_row(name: str, models: DensePureModels, image: torch.Tensor, plan: Plan) -> tuple[str, Run]:
    """(a), (b) and (c) for the plan's certify case; also returns (a) for the summary."""
    n0, n, k, steps = plan.certify
    a = certify_engine(models, image, n0, n, k, steps)
    cfg, ccfg = PurifyConfig(SIGMA, k, "fast", steps), CertifyConfig(n0=n0, n=n)
    b = timed(models.device, lambda c: per_seed_certify(models, image, cfg, ccfg, SEED, counter=c))
    c = floor(models, a)
    fast, slow = a.result, b.result
    assert isinstance(fast, CertifyResult) and isinstance(slow, CertifyResult)
    row = _row([name, n0, n, k, steps, f"{a.seconds:.1f}", f"{b.seconds:.1f}", f"{c.seconds:.1f}",
                *_ratios(a, b, c), f"{a.counter.unet_images} / {b.counter.unet_images}", f"{a.peak_mb:.0f} / {b.peak_mb:.0f}",
                f"{fast.label}, {fast.radius:.3f}", "yes" if fast == slow else "NO"])
    return row, a


def summary_row(name: str, models: DensePureModels, image: torch.Tensor, plan: Plan, side_by_side: Run) -> str:
    """Issue 2: UNet evals/s, purify K=8 b=10, certify per K, and the share of wall time spent inside the UNet."""
    cfg = PurifyConfig(SIGMA, 8, "fast", 10)
    purified = timed(models.device, lambda c: purify(models, image, cfg, SEED, counter=c))
    n0, n, seeds, steps = plan.summary_certify
    certified = {k: certify_engine(models, image, n0, n, k, steps) for k in seeds}
    if (n0, n, steps) == (plan.certify[0], plan.certify[1], plan.certify[3]):
        certified[plan.certify[2]] = side_by_side
    runs = [purified, *certified.values()]
    unet_images = sum(r.counter.unet_images for r in runs)
    unet_seconds = sum(r.counter.unet_seconds for r in runs)
    per_k = "; ".join(f"K={k}: {r.seconds:.1f} s ({_share(r)})" for k, r in certified.items())
    return _row([name, f"{unet_images / unet_seconds:.0f}", f"{purified.seconds:.2f} ({_share(purified)})",
                 f"{n0} / {n} / {steps}", per_k, f"{100 * unet_seconds / sum(r.seconds for r in runs):.0f}%"])


def _share(run: Run) -> str:
    """Share of a run's wall time spent inside UNet calls."""
    return f"{100 * run.counter.unet_seconds / run.seconds:.0f}% in UNet"


# --- the bare UNet: FLOPs, throughput, MFU (issue 23) --------------------------------------------------


def peak_for_name(gpu: str) -> float | None:
    """The dense bf16 peak (TFLOP/s) of a GPU by its name (PEAK_TFLOPS), or None when it is not listed."""
    return next((peak for pattern, peak in PEAK_TFLOPS if re.search(pattern, gpu)), None)


def peak_tflops(device: torch.device) -> float | None:
    """The device's dense bf16 peak, or None on a CPU or an unlisted GPU."""
    return peak_for_name(torch.cuda.get_device_name(device)) if device.type == "cuda" else None


def _cpu_attention_flops(query_shape, key_shape, value_shape, *_, out_shape=None, **__) -> int:
    """torch's counter knows the CUDA attention kernels but not the CPU one: the same formula, for the CPU's."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


CPU_ATTENTION = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops}


def flops_per_call(fn: Callable[[], object]) -> int:
    """FLOPs (2 per multiply-add) of one call of fn, counted by torch's FlopCounterMode."""
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION) as counter:
        fn()
    return counter.get_total_flops()


def unet_flops(models: DensePureModels, batch: int) -> int:
    """FLOPs of one UNet call on `batch` images (the eager network: count before compiling)."""
    x = torch.zeros(batch, models.channels, models.image_size, models.image_size, device=models.device)
    with torch.inference_mode():
        return flops_per_call(lambda: unet_eps(models, x, 0))


@dataclass
class Throughput:
    """The bare UNet on one batch size."""

    batch: int  # images per call
    first_s: float  # the first call (for a compiled UNet: compiling it for this batch bucket)
    evals_per_s: float  # image-evaluations per second after the first call


def unet_throughput(models: DensePureModels, batch: int, seconds: float = SWEEP_SECONDS) -> Throughput:
    """Time UNet calls on `batch` images at t = 500 (the work does not depend on t) for at least `seconds`."""
    x = torch.randn(batch, models.channels, models.image_size, models.image_size, generator=torch.Generator().manual_seed(0))
    x = x.to(models.device)
    with torch.inference_mode():
        first = timed(models.device, lambda _: unet_eps(models, x, 500))
        calls, start = 0, time.perf_counter()
        while calls == 0 or time.perf_counter() - start < seconds:
            unet_eps(models, x, 500)
            calls += 1
            if models.device.type == "cuda" and calls % 4 == 0:
                torch.cuda.synchronize(models.device)  # keep the clock honest: the queue never runs far ahead
        if models.device.type == "cuda":
            torch.cuda.synchronize(models.device)
        return Throughput(batch, first.seconds, calls * batch / (time.perf_counter() - start))


def mfu_cell(flops_per_s: float, peak: float | None) -> str:
    """MFU as a percentage of `peak` TFLOP/s, or n/a without one."""
    return f"{100 * flops_per_s / (peak * 1e12):.1f}%" if peak else "n/a"


def sweep(models: DensePureModels, batches: tuple[int, ...], seconds: float = SWEEP_SECONDS) -> list[Throughput]:
    """unet_throughput per batch size, stopping at the first that runs out of GPU memory."""
    points = []
    for batch in batches:
        try:
            points.append(unet_throughput(models, batch, seconds))
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            break
    return points


def sweep_rows(name: str, mode: str, flops: int, points: list[Throughput], peak: float | None) -> list[str]:
    """The sweep's Markdown rows of one model and mode."""
    return [_row([name, mode, p.batch, f"{flops / 1e9:.3f}", f"{p.first_s:.1f}", f"{p.evals_per_s:,.0f}",
                  f"{p.evals_per_s * flops / 1e12:.2f}", mfu_cell(p.evals_per_s * flops, peak)]) for p in points]


SWEEP_HEADER = ["| model | mode | batch | GFLOP / eval | first call s | evals/s | TFLOP/s | MFU |",
                "|---|---|---:|---:|---:|---:|---:|---:|"]


def sweep_table(names: list[str], device: torch.device, dtype: torch.dtype, batches: tuple[int, ...],
                compile: str | None, peak: float | None) -> str:
    """The sweep of every model: eager, then (when `compile` names a mode) compiled in that mode."""
    rows = list(SWEEP_HEADER)
    for name in names:
        models, _ = setup(name, device, dtype, False)
        flops = unet_flops(models, 1)
        rows += sweep_rows(name, "eager", flops, sweep(models, batches), peak)
        if compile:
            rows += sweep_rows(name, compile, flops, sweep(accelerate(models, compile=compile), batches), peak)
    return "\n".join(rows)


def header(device: torch.device, dtype: torch.dtype, quick: bool, argv: str) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    return (f"Date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; command `{argv}`; "
            f"{platform.platform()}; CPU {cpu}, torch threads {torch.get_num_threads()}; GPU {gpu}; "
            f"torch {torch.__version__}; networks in {dtype}; mode {'quick' if quick else 'full'}.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (about a minute on 2 CPU cores)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", default="digits,cifar10", help="comma-separated: digits, cifar10")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                        help="network dtype (auto: models.default_dtype, float32 on CPU)")
    parser.add_argument("--compile", nargs="?", const="default", choices=COMPILE_MODES, default=None,
                        help="torch.compile the networks (accelerate) in this mode (default: %(const)s)")
    parser.add_argument("--sweep", action="store_true", help="the bare UNet over batch sizes: FLOPs, evals/s, MFU")
    parser.add_argument("--batches", default=None, help="comma-separated batch sizes of --sweep "
                        f"(default: {SWEEP_BATCHES['cpu']} on CPU; on CUDA 256, 512, ... until memory runs out)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's dense peak for MFU "
                        "(default: from PEAK_TFLOPS by GPU name)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = default_dtype(device) if args.dtype == "auto" else getattr(torch, args.dtype)
    print(header(device, dtype, args.quick, " ".join(["python -m bench.speed", *(sys.argv[1:] if argv is None else argv)])) + "\n")
    if args.sweep:
        batches = tuple(map(int, args.batches.split(","))) if args.batches else SWEEP_BATCHES[device.type]
        peak = args.peak_tflops or peak_tflops(device)
        print(f"## The bare UNet (peak {peak or 'n/a'} TFLOP/s)\n\n"
              + sweep_table(args.models.split(","), device, dtype, batches, args.compile, peak))
        return
    purify_table = ["| model | K | b | (a) engine s | (b) per-seed s | (c) networks s | a/b | a/c | a/b CPU | a/c CPU | "
                    "UNet evals a / b | peak MB a / b | same labels |",
                    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    certify_table = ["| model | n0 | n | K | b | (a) engine s | (b) per-seed s | (c) networks s | a/b | a/c | a/b CPU | "
                     "a/c CPU | UNet evals a / b | peak MB a / b | label, radius | same result |",
                     "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    summary = ["| model | UNet evals/s | purify K=8 b=10 s | certify n0 / n / b | certify s per K | share in UNet |",
               "|---|---:|---:|---|---|---:|"]
    for name in args.models.split(","):
        models, image = setup(name, device, dtype, args.compile)
        plan = CUDA_CIFAR if (name == "cifar10" and device.type == "cuda" and not args.quick) else PLANS[name, args.quick]
        purify(models, image, PurifyConfig(SIGMA, 2, "fast", 2), SEED)  # warm-up: first-call allocations, kernels
        purify_table += purify_rows(name, models, image, plan)
        row, side_by_side = certify_row(name, models, image, plan)
        certify_table.append(row)
        summary.append(summary_row(name, models, image, plan, side_by_side))
    print("## Purify (one noise draw, K seeds, b steps)\n\n" + "\n".join(purify_table) + "\n")
    print("## Certify (CERTIFY, n0 selection + n estimation draws)\n\n" + "\n".join(certify_table) + "\n")
    print("## Engine summary (issue 2)\n\n" + "\n".join(summary))


if __name__ == "__main__":
    main()
