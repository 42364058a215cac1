"""Projections and the point-mass posterior: closed forms, conventions, and agreement with the Purify view."""

from __future__ import annotations

import math

import pytest
import torch

from densepure_viz.viz.grids import column_indices, step_view, trajectory_grid
from densepure_viz.experiments.projections import (
    TrainingSet,
    fit_pca,
    point_mass_posterior,
    project_scene,
    reversed_samples,
    training_set,
)
from densepure_viz.engine.purify import PurifyConfig, PurifyResult, purify_stream


def _toy_set() -> TrainingSet:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(30, 1, 4, 4, generator=g)
    return TrainingSet("toy", images, torch.arange(30) % 3)


def test_point_mass_posterior_matches_the_closed_form():
    train = _toy_set()
    noisy = train.images[4] + 0.05
    sigma = 0.3
    post = point_mass_posterior(train, noisy, sigma, 3)
    d2 = ((train.images - noisy) ** 2).flatten(1).sum(1).double()  # distances on [0, 1] pixels
    expected = torch.softmax(-d2 / (2 * sigma**2), 0)  # model space (x2 distances, x2 std) gives the same
    assert torch.allclose(post.weights.double(), expected, atol=1e-6)
    assert post.index == int(expected.argmax()) and post.label == int(train.labels[post.index])
    assert math.isclose(float(post.label_mass.sum()), 1.0, rel_tol=1e-6) and post.model_std == pytest.approx(0.6)
    assert torch.allclose(post.mean, (expected[:, None, None, None] * train.images.double()).sum(0).float(), atol=1e-6)
    assert 1.0 <= post.effective_size <= len(train.images)


def test_point_mass_posterior_limits():
    train = _toy_set()
    sharp = point_mass_posterior(train, train.images[7], 1e-3, 3)  # tiny noise: all mass on the image itself
    assert sharp.index == 7 and float(sharp.weights[7]) > 0.999
    flat = point_mass_posterior(train, train.images[7], 1e3, 3)  # huge noise: the uniform prior
    assert torch.allclose(flat.label_mass, torch.full((3,), 1 / 3), atol=1e-3)
    with pytest.raises(ValueError, match="sigma"):
        point_mass_posterior(train, train.images[0], float("nan"), 3)


def test_pca_axes_are_orthonormal_and_ordered():
    train = _toy_set()
    pca = fit_pca(train.images, 3)
    assert torch.allclose(pca.components @ pca.components.T, torch.eye(3, dtype=torch.float64), atol=1e-10)
    assert (pca.explained[:-1] >= pca.explained[1:]).all() and float(pca.explained.sum()) <= 1
    coords = pca.project(train.images)
    assert coords.shape == (30, 3) and torch.allclose(coords.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-10)
    assert pca.project(train.images[0]).shape == (3,)


def test_digits_training_set_at_the_model_size():
    train = training_set("digits", 8)
    assert train.images.shape[1:] == (1, 8, 8) and len(train.images) == len(train.labels) > 1000
    with pytest.raises(ValueError, match="no local training set"):
        training_set("cifar10")


def test_reversed_samples_draw_zero_is_the_purify_views(tiny_models):
    x = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(1))
    cfg = PurifyConfig(sigma=0.5, seeds=3, sampler="fast", steps=3)
    rs = reversed_samples(tiny_models, x, cfg, seed=5, draws=2)
    *_, result = purify_stream(tiny_models, x, cfg, seed=5)
    assert isinstance(result, PurifyResult)
    assert rs.samples.shape == (2, 3, 1, 8, 8) and rs.labels.shape == (2, 3)
    assert torch.allclose(rs.samples[0], result.purified, atol=1e-5)
    assert rs.labels[0].tolist() == result.per_seed
    assert torch.allclose(rs.noisy[0].clamp(0, 1), result.noisy, atol=1e-6)
    train = TrainingSet("toy", torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(2)), torch.arange(20) % 10)
    post = point_mass_posterior(train, rs.noisy[0], 0.5, 10)
    scene = project_scene(fit_pca(train.images, 2), train, x, None, rs, post)
    assert scene.samples.shape == (6, 2) and scene.noisy.shape == (2, 2) and scene.adversarial is None


def test_trajectory_grid_layout():
    k, cols = 3, 4
    xs = [torch.rand(k, 1, 8, 8) for _ in range(cols)]
    grid = trajectory_grid(xs, xs, [30, 20, 10, 0], [[0, 1, 2]] * cols, torch.rand(k, 1, 8, 8), [0, 1, 2], scale=2)
    assert grid.width > (cols + 1) * 16 and grid.height > k * 32
    assert column_indices(100, 12)[0] == 0 and column_indices(100, 12)[-1] == 99 and len(column_indices(100, 12)) <= 12
    assert column_indices(5, 12) == [0, 1, 2, 3, 4]
    assert step_view(xs[0], xs[1], [0, 1, 2], 10, 2).width > 3 * 16
