"""The embedded digits models reach their model card's accuracy (assets/digits/README.md) on fixed subsets."""

import pytest
import torch

from densepure_viz.engine.purify import PurifyConfig
from densepure_viz.smoothing.base import bare_base, densepure_base
from densepure_viz.engine.seeding import Stream

pytestmark = pytest.mark.slow  # the whole held-out split through the shipped models

SUBSET = 64  # first held-out images used for the DensePure check (the card measures all 360)


def test_classifier_clean_accuracy_on_the_whole_test_split(digits_models, digits_split):
    with torch.inference_mode():
        predicted = digits_models.predict(digits_split.test_images)
    assert (predicted == digits_split.test_labels).float().mean().item() >= 0.97


def test_noise_breaks_the_bare_classifier_and_densepure_recovers(digits_models, digits_split):
    x, y = digits_split.test_images[:SUBSET], digits_split.test_labels[:SUBSET]
    draws = torch.arange(SUBSET)
    bare = bare_base(digits_models, x, sigma=0.5, seed=0)(Stream.ESTIMATE, draws)
    dense = densepure_base(digits_models, x, PurifyConfig(sigma=0.5, seeds=8, sampler="fast", steps=10), seed=0)(
        Stream.ESTIMATE, draws
    )
    assert (bare == y).float().mean().item() < 0.6
    assert (dense == y).float().mean().item() >= 0.85
