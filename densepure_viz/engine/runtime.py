"""How the DensePure engine runs its two networks: precision, memory format, compilation, batch size, counting.

The algorithm (purify.py, reverse.py) calls the UNet and the classifier only through `unet_eps` and
`predict_labels`, so every speed choice lives here:
- precision: the networks run under `DensePureModels.autocast` in `models.dtype` (bfloat16/float16 on
  GPU, see `models.default_dtype`); the diffusion arithmetic around them stays float32;
- memory format and compilation: `accelerate` converts both networks to channels_last (default on
  CUDA, where cuDNN's convolutions prefer NHWC) and, opt-in, wraps them in `torch.compile`;
- batch size: `auto_batch` picks images per UNet call from a CPU cache budget or from free GPU memory
  and the UNet's activation memory per image (measured once, when the models were created);
- counting: an optional `EvalCounter` records every network call (images, timestep, time inside the
  UNet), so benchmarks can report evaluations saved and the share of wall time inside the network.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import torch

from densepure_viz.models.registry import DensePureModels

COMPILE_ENV = "DENSEPURE_COMPILE"  # set to 1 to torch.compile the networks in `accelerate` (off by default)
# Input values per UNet call on CPU: 256 digits images or 21 CIFAR images. Measured on 2 cores, digits
# throughput is flat from ~32 to ~256 images per call and drops past ~512 (the activations leave the caches).
CPU_BATCH_VALUES = 2**16
GPU_MEMORY_SHARE = 0.5  # share of free GPU memory one UNet call's activations may take
MAX_GPU_BATCH = 4096  # cap on images per UNet call on GPU


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


def unet_eps(models: DensePureModels, x: torch.Tensor, t: int, counter: EvalCounter | None = None) -> torch.Tensor:
    """The UNet's output (float32, like x (B, C, H, W)) at timestep t; recorded in `counter` when given."""
    if counter is None:
        with models.autocast():
            return models.unet(x.to(models.dtype), t).sample.float()
    _sync(models.device)
    start = time.perf_counter()
    with models.autocast():
        out = models.unet(x.to(models.dtype), t).sample.float()
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


def accelerate(models: DensePureModels, channels_last: bool | None = None, compile: bool | None = None) -> DensePureModels:
    """Apply speed options to both networks in place and return `models`.

    channels_last: NHWC weights (default: on CUDA only; on CPU it measured no gain for these UNets).
    compile: `torch.compile` the networks (default: environment variable DENSEPURE_COMPILE=1). Off by
    default: every new batch shape recompiles, CPU compilation needs a C++ compiler, and Hugging Face
    Spaces ZeroGPU does not support torch.compile. Results agree with the eager networks up to rounding.
    """
    if channels_last if channels_last is not None else models.device.type == "cuda":
        models.unet.to(memory_format=torch.channels_last)
        models.classifier.to(memory_format=torch.channels_last)
    if compile if compile is not None else os.environ.get(COMPILE_ENV) == "1":
        models.unet.compile(dynamic=True)
        models.classifier.compile(dynamic=True)
    return models
