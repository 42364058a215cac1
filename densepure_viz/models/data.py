"""The embedded "digits" data set: scikit-learn's bundled 8x8 handwritten digits, upsampled.

scikit-learn ships the 1,797 UCI digits inside the package, so the project trains and evaluates
offline. Images are upsampled bilinearly to 16x16 (a UNet needs two clean halvings, and 16x16 is
still cheap enough for thousands of reverse steps per second on a laptop CPU) and kept in [0, 1].
The train/test split is fixed by a seed and stratified by class; the test split is never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

IMAGE_SIZE = 16  # side of the upsampled square images
SPLIT_SEED = 0  # seed of the fixed train/test split
TEST_FRACTION = 0.2  # share of each class held out (360 of 1,797 images)


@dataclass(frozen=True)
class DigitsSplit:
    """A fixed split of the digits data; images are (N, 1, S, S) float32 in [0, 1]."""

    train_images: torch.Tensor  # (N_train, 1, S, S)
    train_labels: torch.Tensor  # (N_train,) int64 in 0..9
    test_images: torch.Tensor  # (N_test, 1, S, S)
    test_labels: torch.Tensor  # (N_test,) int64 in 0..9


def load_digits(size: int = IMAGE_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as ((N, 1, size, size) float32 in [0, 1], (N,) int64 labels)."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)  # (N, 1, 8, 8)
    if size != images.shape[-1]:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return images.clamp(0.0, 1.0), torch.from_numpy(bunch.target.astype(np.int64))


def split_digits(seed: int = SPLIT_SEED, test_fraction: float = TEST_FRACTION, size: int = IMAGE_SIZE) -> DigitsSplit:
    """The fixed, class-stratified train/test split used for training and every reported number."""
    from sklearn.model_selection import train_test_split

    images, labels = load_digits(size)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, random_state=seed, stratify=labels.numpy()
    )
    train_idx, test_idx = torch.from_numpy(np.sort(train_idx)), torch.from_numpy(np.sort(test_idx))
    return DigitsSplit(images[train_idx], labels[train_idx], images[test_idx], labels[test_idx])
