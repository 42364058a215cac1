"""Exact-architecture random-weight replicas of the cifar10 preset, saved in the hub repositories' own layouts.

google/ddpm-cifar10-32 is a flat diffusers folder (config.json, diffusion_pytorch_model.safetensors and
scheduler_config.json side by side); its architecture and schedule are bench/cifar10_ddpm.json (35.7M
parameters). grodino/resnet18_cifar10 is timm's save format (config.json + model.safetensors): a full
ResNet-18 with 10 classes whose pretrained_cfg takes 3x224x224 inputs, bicubic, with CIFAR-10's mean and std
(it was trained on CIFAR-10 upsampled to 224), and no label_names (the preset names the classes).

The weights are seeded draws from a local generator (N(0, 1/fan_in) kernels, zero biases; the global RNG is
never touched), so every session writes the same files. Nothing is downloaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import timm
from diffusers import DDPMScheduler, UNet2DModel

from bench.speed import seeded_weights
from densepure_viz.paths import ROOT

CIFAR_DDPM = ROOT / "bench" / "cifar10_ddpm.json"  # google/ddpm-cifar10-32's unet and scheduler configs
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)  # grodino/resnet18_cifar10's pretrained_cfg
CIFAR_STD = (0.247, 0.243, 0.261)
CLASSIFIER_INPUT = {"input_size": (3, 224, 224), "interpolation": "bicubic", "crop_pct": 0.95,
                    "mean": CIFAR_MEAN, "std": CIFAR_STD}


@dataclass(frozen=True)
class Replicas:
    """Folders of the replicas, to pass as --diffusion and --classifier."""

    diffusion: Path  # flat diffusers DDPM folder, like google/ddpm-cifar10-32
    classifier: Path  # timm folder, like grodino/resnet18_cifar10


def save_ddpm_replica(folder: Path, seed: int = 0) -> Path:
    """google/ddpm-cifar10-32's UNet (random weights) and DDPMScheduler, in the hub's flat layout."""
    config = json.loads(CIFAR_DDPM.read_text())
    seeded_weights(UNet2DModel(**config["unet"]), seed).save_pretrained(folder, safe_serialization=True)
    DDPMScheduler(**config["scheduler"]).save_pretrained(folder)
    return folder


def save_classifier_replica(folder: Path, seed: int = 1, num_classes: int = 10) -> Path:
    """A timm ResNet-18 (random weights) with grodino/resnet18_cifar10's pretrained_cfg, in timm's save format."""
    model = seeded_weights(timm.create_model("resnet18", num_classes=num_classes), seed)
    timm.models.save_for_hf(model, folder, data_config=CLASSIFIER_INPUT, safe_serialization=True)
    return folder


def save_replicas(root: Path, seed: int = 0) -> Replicas:
    """Both replicas under `root` (about 190 MB, as the hub's files)."""
    return Replicas(save_ddpm_replica(root / "ddpm-cifar10-32", seed),
                    save_classifier_replica(root / "resnet18_cifar10", seed + 1))
