"""A user's input as a model sees it: an image file as the model's tensor, and a sample's true label.

The CLI and the app load images through `load_input`, so the same file gives the same tensor (and so
the same trajectories, votes and radius) in both. Shipped samples carry their true label in their
file name (`test_0017_label3.png`, see scripts/export_samples.py); `true_label` reads it back.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

import torch

from densepure_viz.models.images import ConvertedImage, convert_image

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
