"""How the DensePure engine runs its two networks: precision, memory format, compilation, batch size, counting.

The algorithm (purify.py, reverse.py) calls the UNet and the classifier only through `unet_eps` and
`predict_labels`, so every speed choice lives here:
- precision: the networks run under `DensePureModels.autocast` in `models.dtype` (bfloat16/float16 on
  GPU, see `models.default_dtype`); the diffusion arithmetic around them stays float32;
- memory format and compilation: `accelerate` converts both networks to channels_last (default on
  CUDA, where cuDNN's convolutions prefer NHWC) and, opt-in, wraps them in `torch.compile`; a compiled
  UNet sees its batch padded to a few sizes (`batch_bucket`), so CUDA graphs and autotuned kernels are
  made for a bounded set of static shapes; eager CPU networks run as TorchScript traces
  (`models.tracing.run_network`: the same bits, without Python's GIL taken back at every operator);
- no host synchronisation per UNet call: the timestep goes in as a (B,) tensor made on the device (an int
  would be copied from the host on every call, and a compiled UNet would recompile for every timestep);
- batch size: `auto_batch` picks images per UNet call from a CPU cache budget or from free GPU memory
  and the UNet's activation memory per image (measured once, when the models were created);
- counting: an optional `EvalCounter` records every network call (images, timestep, time inside the
  UNet), so benchmarks can report evaluations saved and the share of wall time inside the network.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from densepure_viz.errors import InputError
from densepure_viz.models.registry import DensePureModels
from densepure_viz.models.tracing import is_compiled, run_network

COMPILE_ENV = "DENSEPURE_COMPILE"  # 1 or a mode of COMPILE_MODES: torch.compile the networks in `accelerate` (off by default)
# torch.compile modes: "reduce-overhead" adds CUDA graphs, "max-autotune" autotuned kernels and CUDA graphs
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# Input values per UNet call on CPU: 256 digits images or 21 CIFAR images. Measured on 2 cores, digits
# throughput is flat from ~32 to ~256 images per call and drops past ~512 (the activations leave the caches).
CPU_BATCH_VALUES = 2**16
GPU_MEMORY_SHARE = 0.5  # share of free GPU memory one UNet call's activations may take
MAX_GPU_BATCH = 4096  # cap on images per UNet call on GPU
# A compiled UNet's batch is padded to a power of two from MIN_BUCKET up to BUCKET_STEP, then to a multiple of
# BUCKET_STEP. Under 64 images diffusers' upsampler takes another branch (and torch's convolutions other guards),
# which would compile a second and a third graph: from 64 on, one graph serves every batch.
MIN_BUCKET = 64
BUCKET_STEP = 256


@dataclass
class EvalCounter:
    """Every network call the engine made, in order (pass one to the engine to fill it)."""

    unet_calls: list[tuple[int, int]] = field(default_factory=list)  # (timestep, images) per UNet call
    classifier_calls: list[int] = field(default_factory=list)  # images per classifier call
    unet_seconds: float = 0.0  # wall time inside UNet calls (CUDA is synchronised around each counted call)

    @property
    def unet_images(self) -> int:
        """UNet image-evaluations: the cost unit of DensePure (K seeds x b steps per noise draw, less sharing)."""
        return sum(images for _, images in self.unet_calls)

    @property
    def classifier_images(self) -> int:
        return sum(self.classifier_calls)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batch_bucket(n: int) -> int:
    """The padded batch of a compiled UNet call of n images: the next power of two from MIN_BUCKET up to
    BUCKET_STEP, then the next multiple of BUCKET_STEP (above BUCKET_STEP images, under 2x the work)."""
    if n <= BUCKET_STEP:
        return max(MIN_BUCKET, 1 << max(0, n - 1).bit_length())
    return -(-n // BUCKET_STEP) * BUCKET_STEP


def _unet(models: DensePureModels, x: torch.Tensor, t: int) -> torch.Tensor:
    """The UNet's output (float32) on x (B, C, H, W) at timestep t; a compiled UNet sees a bucketed batch."""
    n, compiled = len(x), is_compiled(models.unet)
    if compiled and batch_bucket(n) > n:
        x = torch.cat([x, x.new_zeros(batch_bucket(n) - n, *x.shape[1:])])
    timesteps = torch.full((len(x),), t, dtype=torch.long, device=x.device)
    with models.autocast():
        out = run_network(models.unet, "unet", x.to(models.dtype), timesteps)[:n]
    return out.to(torch.float32, copy=compiled)  # a CUDA graph's next replay overwrites its output: keep a copy


def unet_eps(models: DensePureModels, x: torch.Tensor, t: int, counter: EvalCounter | None = None) -> torch.Tensor:
    """The UNet's output (float32, like x (B, C, H, W)) at timestep t; recorded in `counter` when given."""
    if counter is None:
        return _unet(models, x, t)
    _sync(models.device)
    start = time.perf_counter()
    out = _unet(models, x, t)
    _sync(models.device)
    counter.unet_seconds += time.perf_counter() - start
    counter.unet_calls.append((t, len(x)))
    return out


def predict_labels(models: DensePureModels, images01: torch.Tensor, counter: EvalCounter | None = None) -> torch.Tensor:
    """Labels (B,) of images (B, C, H, W) in [0, 1], under autocast; recorded in `counter` when given."""
    with models.autocast():
        labels = models.predict(images01)
    if counter is not None:
        counter.classifier_calls.append(len(images01))
    return labels


def auto_batch(models: DensePureModels) -> int:
    """Images per UNet call: a cache-sized budget on CPU; on CUDA, GPU_MEMORY_SHARE of free memory.

    Reads only: free memory now, and the activation memory per image measured when `models` was created.
    """
    if models.device.type != "cuda":
        return max(1, CPU_BATCH_VALUES // (models.channels * models.image_size**2))
    free, _ = torch.cuda.mem_get_info(models.device)
    return int(min(MAX_GPU_BATCH, max(1, GPU_MEMORY_SHARE * free // models.unet_bytes_per_image)))


def compile_mode(compile: bool | str | None) -> str | None:
    """The torch.compile mode asked for, or None for eager: True is "default", a string one of COMPILE_MODES;
    None reads DENSEPURE_COMPILE (unset, "" or "0": eager; "1": "default"; else a mode)."""
    if compile is None:
        compile = os.environ.get(COMPILE_ENV, "0")
        compile = {"": False, "0": False, "1": True}.get(compile, compile)
    if compile is False:
        return None
    mode = "default" if compile is True else compile
    if mode not in COMPILE_MODES:
        raise InputError(f"compile mode must be one of {COMPILE_MODES}, got {mode!r} (from {COMPILE_ENV} or --compile)")
    return mode


def accelerate(
    models: DensePureModels, channels_last: bool | None = None, compile: bool | str | None = None,
    backend: str | Callable = "inductor",
) -> DensePureModels:
    """Apply speed options to both networks in place and return `models`.

    channels_last: NHWC weights (default: on CUDA only; on CPU it measured no gain for these UNets).
    compile: `torch.compile` the networks in a mode of COMPILE_MODES (see `compile_mode`; default: the
    environment variable DENSEPURE_COMPILE). Off by default: the first call compiles for minutes (on CPU
    with a C++ compiler), and Hugging Face Spaces ZeroGPU does not support torch.compile. Results agree with the eager networks up to rounding. The shapes are marked dynamic, so
    one graph serves every bucket; CUDA graphs (reduce-overhead, max-autotune) are recorded per bucket.
    backend: torch.compile's backend (tests pass one that traces and counts graphs without generating code).
    """
    if channels_last if channels_last is not None else models.device.type == "cuda":
        models.unet.to(memory_format=torch.channels_last)
        models.classifier.to(memory_format=torch.channels_last)
    mode = compile_mode(compile)
    if mode is not None:
        options = {"backend": backend, "dynamic": True} | ({"mode": mode} if backend == "inductor" else {})
        models.unet.compile(**options)
        models.classifier.compile(**options)
    return models
