"""A user's input as a model sees it: an image file as the model's tensor, and a sample's true label.

The CLI and the app load images through `load_input`, so the same file gives the same tensor (and so
the same trajectories, votes and radius) in both. Shipped samples carry their true label in their
file name (`test_0017_label3.png`, see scripts/export_samples.py and scripts/export_cifar10.py);
`true_label` reads it back, and `load_labelled` reads such files as a test set (`evaluate --folder`;
`certify FOLDER` lists a folder the same way, with `folder_images`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from densepure_viz.errors import InputError
from densepure_viz.models.images import ConvertedImage, convert_image, list_images

LABEL_IN_NAME = re.compile(r"label[_-]?(\d+)")  # true label of a sample file, e.g. test_0017_label3.png


class InputFormat(Protocol):
    """What the loader needs to know of a model (DensePureModels has these)."""

    channels: int
    image_size: int
    dark_background: bool


def read_input(path: str | Path, models: InputFormat) -> ConvertedImage:
    """An image file as the model's (C, H, W) input in [0, 1], with notes on what the conversion changed."""
    return convert_image(path, models.channels, models.image_size, models.dark_background)


def load_input(path: str | Path, models: InputFormat) -> torch.Tensor:
    """An image file as the model's (C, H, W) input in [0, 1] (ImageError when it cannot be read)."""
    return read_input(path, models).tensor


def true_label(path: str | Path) -> int:
    """The label written in a file name (`..._label3.png`), or -1 when there is none."""
    match = LABEL_IN_NAME.search(Path(path).stem)
    return int(match.group(1)) if match else -1


def folder_images(folder: str | Path) -> list[Path]:
    """The image files directly inside `folder`, sorted by name (InputError when it is not a folder or has none)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"no such folder: {folder}")
    paths = list_images(folder)
    if not paths:
        raise InputError(f"no image files in folder {folder}")
    return paths


@dataclass
class LabelledImages:
    """Labelled image files as a test set."""

    images: torch.Tensor  # (N, C, H, W) in [0, 1], as the model sees them
    labels: torch.Tensor  # (N,) true labels, from the file names


def load_labelled(paths: list[Path], models: InputFormat, num_classes: int) -> LabelledImages:
    """Image files named `<name>_label<k>.<ext>` with 0 <= k < num_classes (else InputError) as a test set."""
    labels = [true_label(p) for p in paths]
    for path, label in zip(paths, labels):
        if not 0 <= label < num_classes:
            raise InputError(f"{path.name}: a labelled image is named <name>_label<k> with k in 0..{num_classes - 1}")
    images = torch.stack([load_input(p, models) for p in paths])
    return LabelledImages(images, torch.tensor(labels, dtype=torch.long))
