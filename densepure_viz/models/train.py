"""Train the embedded "digits" models: a pixel-space DDPM (diffusers) and a classifier (timm).

`python -m densepure_viz.models.train --out assets/digits --seed 0` reproduces the shipped weights on a
CPU in about 20 minutes. Both are saved in their libraries' own formats, so the same loader that
reads a hub id reads them:
  <out>/diffusion/   DDPMPipeline.save_pretrained (UNet2DModel + DDPMScheduler, safetensors)
  <out>/classifier/  timm save_for_hf (config.json + model.safetensors), loadable as
                     timm.create_model("local-dir:<out>/classifier", pretrained=True)
Every random draw (init, batches, noise, timesteps) comes from generators seeded by `--seed`.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from densepure_viz.models.data import IMAGE_SIZE, DigitsSplit, split_digits

DIGIT_LABELS = [str(d) for d in range(10)]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of both trainings (defaults reproduce the shipped models)."""

    seed: int = 0  # seeds initialisation, batch order, noise and timesteps
    unet_steps: int = 3000  # optimiser steps of the DDPM
    unet_batch: int = 128  # images per DDPM step
    unet_lr: float = 1e-3  # peak learning rate (linear warm-up, cosine decay)
    ema_decay: float = 0.999  # EMA of the DDPM weights; the EMA weights are shipped
    classifier_epochs: int = 30  # epochs of the classifier
    classifier_batch: int = 128  # images per classifier step
    classifier_lr: float = 3e-3  # one-cycle peak learning rate


def build_unet(image_size: int = IMAGE_SIZE) -> UNet2DModel:
    """A ~1.1M-parameter UNet for 1x16x16 images: 16 -> 8 -> 4, attention at 4x4."""
    return UNet2DModel(
        sample_size=image_size,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    )


def build_scheduler() -> DDPMScheduler:
    """The original DDPM schedule: 1000 steps, linear betas from 1e-4 to 0.02, epsilon target."""
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type="epsilon")


CLASSIFIER_ARCH = "resnet18"  # timm architecture, narrowed for 16x16 grayscale input
CLASSIFIER_ARGS = {"channels": (16, 32, 64, 128), "stem_width": 16, "in_chans": 1}


def build_classifier() -> torch.nn.Module:
    """A narrow timm ResNet-18 (~0.7M parameters) taking 1x16x16 images normalised to [-1, 1]."""
    return timm.create_model(CLASSIFIER_ARCH, num_classes=10, **CLASSIFIER_ARGS)


def _shift(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Translate a batch by up to one pixel in each direction (zero fill): cheap augmentation."""
    padded = F.pad(images, (1, 1, 1, 1))
    dy, dx = torch.randint(0, 3, (2,), generator=generator).tolist()
    return padded[..., dy : dy + images.shape[-2], dx : dx + images.shape[-1]]


def _warmup_cosine(step: int, total: int, warmup: int = 100) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def train_unet(split: DigitsSplit, cfg: TrainConfig) -> UNet2DModel:
    """Epsilon-prediction DDPM training (Ho et al. 2020, Alg. 1); returns the EMA weights."""
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # diffusers initialises parameters from the global generator
    unet, scheduler = build_unet(), build_scheduler()
    ema = EMAModel(unet.parameters(), decay=cfg.ema_decay)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.unet_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _warmup_cosine(s, cfg.unet_steps))
    x_all = split.train_images * 2 - 1  # model range [-1, 1]
    bar = tqdm(range(cfg.unet_steps), desc="DDPM")
    for _ in bar:
        idx = torch.randint(0, len(x_all), (cfg.unet_batch,), generator=gen)
        x0 = x_all[idx]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(x0),), generator=gen)
        loss = F.mse_loss(unet(scheduler.add_noise(x0, noise, t), t).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        sched.step()
        ema.step(unet.parameters())
        bar.set_postfix(loss=f"{loss.item():.4f}")
    ema.copy_to(unet.parameters())
    return unet.eval()


def train_classifier(split: DigitsSplit, cfg: TrainConfig) -> torch.nn.Module:
    """Cross-entropy training on clean images with one-pixel shifts; returns the eval-mode model."""
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # timm initialises parameters from the global generator
    model = build_classifier()
    n = len(split.train_labels)
    steps_per_epoch = math.ceil(n / cfg.classifier_batch)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.classifier_lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, cfg.classifier_lr, total_steps=cfg.classifier_epochs * steps_per_epoch
    )
    for _ in tqdm(range(cfg.classifier_epochs), desc="classifier"):
        model.train()
        for idx in torch.randperm(n, generator=gen).split(cfg.classifier_batch):
            x = _shift(split.train_images[idx], gen) * 2 - 1
            loss = F.cross_entropy(model(x), split.train_labels[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def save_diffusion(unet: UNet2DModel, out: Path) -> None:
    """Write the DDPM as a diffusers pipeline folder (model_index.json, unet/, scheduler/)."""
    DDPMPipeline(unet=unet, scheduler=build_scheduler()).save_pretrained(out, safe_serialization=True)


def save_classifier(model: torch.nn.Module, out: Path) -> None:
    """Write the classifier in timm's hub layout, with [-1, 1] normalisation and digit labels."""
    timm.models.save_for_hf(
        model,
        out,
        model_config={
            "label_names": DIGIT_LABELS,
            "pretrained_cfg": {"tag": "densepure_viz_digits16", "paper_ids": "arXiv:2211.00322",
                               "origin_url": "assets/digits (python -m densepure_viz.models.train)"},
        },
        model_args={**CLASSIFIER_ARGS, "channels": list(CLASSIFIER_ARGS["channels"])},
        data_config={"input_size": (1, IMAGE_SIZE, IMAGE_SIZE), "mean": (0.5,), "std": (0.5,),
                     "interpolation": "bilinear", "crop_pct": 1.0},
        safe_serialization=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("assets/digits"), help="output folder")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--unet-steps", type=int, default=TrainConfig.unet_steps)
    parser.add_argument("--classifier-epochs", type=int, default=TrainConfig.classifier_epochs)
    parser.add_argument("--only", choices=["diffusion", "classifier"], help="train just one model")
    args = parser.parse_args(argv)
    cfg = TrainConfig(seed=args.seed, unet_steps=args.unet_steps, classifier_epochs=args.classifier_epochs)
    split = split_digits()
    if args.only != "diffusion":
        save_classifier(train_classifier(split, cfg), args.out / "classifier")
    if args.only != "classifier":
        save_diffusion(train_unet(split, cfg), args.out / "diffusion")


if __name__ == "__main__":
    main()
