"""Shared fixtures: tiny random-weight models saved in the libraries' hub layouts, and the shipped models."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

from densepure_viz.models.registry import DensePureModels, custom_spec, load_models

TINY_SIZE = 8


def save_tiny_models(root: Path, seed: int = 0, channels: int = 1, variance_type: str = "fixed_small") -> tuple[Path, Path]:
    """A ~20k-parameter DDPM and timm classifier with random weights, saved like hub repos; (diffusion, classifier)."""
    torch.manual_seed(seed)
    unet = UNet2DModel(
        sample_size=TINY_SIZE, in_channels=channels, out_channels=channels, layers_per_block=1,
        block_out_channels=(8, 16), down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4,
    )
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", variance_type=variance_type)
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(root / "diffusion", safe_serialization=True)
    classifier = timm.create_model("resnet18", num_classes=10, in_chans=channels, channels=(4, 8, 8, 8), stem_width=4)
    timm.models.save_for_hf(
        classifier.eval(), root / "classifier", model_args={"in_chans": channels, "channels": [4, 8, 8, 8], "stem_width": 4},
        data_config={"input_size": (channels, TINY_SIZE, TINY_SIZE), "mean": (0.5,) * channels, "std": (0.5,) * channels},
        safe_serialization=True,
    )
    return root / "diffusion", root / "classifier"


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return save_tiny_models(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_models(tiny_dirs: tuple[Path, Path]) -> DensePureModels:
    diffusion, classifier = tiny_dirs
    return load_models(custom_spec(str(diffusion), str(classifier)), device="cpu")


@pytest.fixture(scope="session")
def digits_models() -> DensePureModels:
    return load_models("digits", device="cpu")


@pytest.fixture(scope="session")
def digits_split():
    from densepure_viz.models.data import split_digits

    return split_digits()


@pytest.fixture(scope="session")
def replicas(tmp_path_factory: pytest.TempPathFactory):
    """The cifar10 preset's exact-architecture random-weight replicas (tests/rgb_replicas.py), written once per session."""
    from rgb_replicas import save_replicas

    return save_replicas(tmp_path_factory.mktemp("cifar10-replicas"))


@pytest.fixture(scope="session")
def rgb_models(replicas) -> DensePureModels:
    """The cifar10 preset loaded from its replicas, on the CPU (32x32 RGB, CIFAR-10's class names)."""
    from densepure_viz.models.registry import model_spec

    return load_models(model_spec("cifar10", str(replicas.diffusion), str(replicas.classifier)), device="cpu")
