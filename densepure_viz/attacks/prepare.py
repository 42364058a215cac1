"""The purifier's input: an image file read as the model's tensor (as the CLI reads it), attacked when asked.

The Purify and High-density views and the stories' search start here: the clean image and its bare label, the
true label its file name gives, and, under an attack (`pgd`), the adversarial image the purifier receives.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from densepure_viz.attacks.pgd import AttackConfig, AttackProgress, AttackResult, attack_stream
from densepure_viz.models.inputs import read_input, true_label
from densepure_viz.models.registry import DensePureModels


@dataclass
class PreparedInput:
    """The clean image, what the purifier receives, and how it was made."""

    clean: torch.Tensor  # (C, H, W) in [0, 1], as the CLI loads it
    purifier_input: torch.Tensor  # (C, H, W): clean, or the adversarial image
    clean_label: int  # bare classifier on the clean image
    true_label: int  # label written in the file name, -1 when unknown
    attack: AttackResult | None  # None without an attack
    attack_label: int | None  # the label the attack tried to leave (true label, else the classifier's)
    notes: list[str]  # what converting the file to the model's input changed (size, colour, polarity)


def prepare_input(models: DensePureModels, path: str, attack: AttackConfig | None) -> Iterator[AttackProgress | PreparedInput]:
    """Load the image like the CLI; attack it when asked (yield AttackProgress per step); then the PreparedInput."""
    converted = read_input(path, models)
    x = converted.tensor
    with torch.inference_mode():
        clean_label = int(models.predict(x[None])[0])
    known = true_label(path)
    known = known if 0 <= known < models.num_classes else -1
    if attack is None:
        yield PreparedInput(x, x, clean_label, known, None, None, converted.notes)
        return
    label = known if known >= 0 else clean_label
    result = None
    for item in attack_stream(models, x, label, attack):
        if isinstance(item, AttackResult):
            result = item
        else:
            yield item
    assert result is not None
    yield PreparedInput(x, result.adversarial, clean_label, known, result, label, converted.notes)


def run_prepare(models: DensePureModels, path: str, attack: AttackConfig | None) -> PreparedInput:
    """prepare_input to the end."""
    *_, prepared = prepare_input(models, path, attack)
    return prepared
