"""Plotly figures of the image views: they are figures, carry the numbers they are given, and stay layout-only."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest
import torch

from densepure_viz.viz.plots.images import (
    certificates_figure,
    confidence_sequence_figure,
    label_mass_figure,
    projection_figure,
    vote_histogram_figure,
)
from densepure_viz.experiments.projections import ProjectedScene

LABELS = tuple(str(i) for i in range(10))


def test_vote_histogram_counts_and_winner():
    fig = vote_histogram_figure({3: 5, 7: 3}, LABELS, winner=3, reference=7)
    assert isinstance(fig, go.Figure)
    assert list(fig.data[0].y) == [0, 0, 0, 5, 0, 0, 0, 3, 0, 0]
    assert fig.data[0].marker.line.color[3] == "black" and fig.data[1].x == (7,)


def test_confidence_sequence_carries_the_bounds_and_the_threshold():
    fig = confidence_sequence_figure([10, 15], [0.6, 0.7], [1.0, 0.98], [0.75, 0.8], threshold=0.69)
    upper, lower, fixed = fig.data
    assert list(lower.y) == [0.6, 0.7] and list(upper.y) == [1.0, 0.98] and list(fixed.x) == [10, 15]
    assert "not valid when peeking" in fixed.name and "anytime-valid" in lower.name
    assert sorted(shape.y0 for shape in fig.layout.shapes) == [0.5, 0.69]  # 1/2 and Phi(R / sigma)


def test_label_mass_and_certificates_plot_the_numbers_they_are_given():
    mass, shares = [0.05, 0.6, 0.0, 0.35, 0, 0, 0, 0, 0, 0], [0.0, 0.5, 0.125, 0.375, 0, 0, 0, 0, 0, 0]
    bars, marks = label_mass_figure(mass, LABELS, shares).data
    assert list(bars.y) == mass and list(marks.y) == shares and list(bars.x) == list(marks.x) == list(range(10))
    p_lower, radius = certificates_figure([("DensePure", 0.9, 0.5), ("bare", 0.6, 0.1)]).data
    assert list(p_lower.x) == list(radius.x) == ["DensePure", "bare"]
    assert list(p_lower.y) == [0.9, 0.6] and list(radius.y) == [0.5, 0.1]


@pytest.mark.parametrize("dims", [2, 3])
def test_projection_figure(dims):
    scene = ProjectedScene(
        train=torch.randn(50, 3), train_labels=torch.arange(50) % 10, clean=torch.zeros(3), adversarial=torch.ones(3),
        noisy=torch.randn(4, 3), samples=torch.randn(8, 3), sample_labels=torch.arange(8) % 10,
        highest_density=torch.zeros(3), highest_density_label=2, explained=torch.tensor([0.3, 0.2, 0.1]),
    )
    fig = projection_figure(scene, LABELS, dims)
    names = [t.name for t in fig.data]
    assert "x_a (adversarial)" in names and any(n.startswith("highest-density") for n in names)
    assert all(isinstance(t, go.Scatter3d if dims == 3 else go.Scatter) for t in fig.data)
    axes = ("x", "y", "z")[:dims]

    def plotted(trace) -> torch.Tensor:
        return torch.tensor([list(getattr(trace, a)) for a in axes]).T

    traces = {t.name: t for t in fig.data}
    torch.testing.assert_close(plotted(traces["reversed samples (by label)"]), scene.samples[:, :dims])
    torch.testing.assert_close(plotted(traces["x + delta (noised input)"]), scene.noisy[:, :dims])
    torch.testing.assert_close(plotted(traces["x_a (adversarial)"]), scene.adversarial[None, :dims])
    train = torch.cat([plotted(t) for t in fig.data if t.legendgroup == "train"])  # one trace per class, in class order
    order = torch.cat([torch.nonzero(scene.train_labels == c).flatten() for c in range(10)])
    torch.testing.assert_close(train, scene.train[order, :dims])
    with pytest.raises(ValueError):
        projection_figure(scene, LABELS, 4)
