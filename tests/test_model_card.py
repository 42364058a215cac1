"""The model card's rows: per-draw accuracies, their mean and spread, and the image subset."""

from __future__ import annotations

import pytest
import torch

from densepure_viz.experiments.model_card import card_row, card_table, correct_table
from densepure_viz.experiments.study import DRAW_STRIDE


def test_correct_table_passes_study_draw_ids():
    seen = []

    def predict(images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        seen.append(ids.clone())
        return (ids >= DRAW_STRIDE).long()  # right on label 1 for draws >= 1, on label 0 for draw 0

    correct, _ = correct_table(predict, torch.zeros(5, 1, 2, 2), torch.tensor([0, 0, 1, 1, 1]), 2, "x", batch=3)
    assert correct.tolist() == [[True, True, False, False, False], [False, False, True, True, True]]
    assert torch.equal(torch.cat(seen), torch.tensor([0, 1, 2, 3, 4, 4096, 4097, 4098, 4099, 4100]))


def test_card_row_mean_spread_and_subset():
    correct = torch.tensor([[True, True, False, True], [True, False, False, False], [True, True, True, True]])
    row = card_row("m", correct, seconds=8.0)
    assert row.per_draw == (0.75, 0.25, 1.0)
    assert row.accuracy == pytest.approx(2 / 3)
    assert row.spread == pytest.approx(torch.tensor([0.75, 0.25, 1.0]).std().item())
    sub = card_row("m", correct, seconds=8.0, images=2)
    assert (sub.per_draw, sub.images, sub.seconds) == ((1.0, 0.5, 1.0), 2, 4.0)
    assert "| m | 4 | 3 | 66.7% ± 38.2 | 25.0-100.0 | 8 |" in card_table([row])
