"""Tests of densepure_viz.viz.plots.toy2d: the figures build from toy2d results and hold what they claim."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import plotly.graph_objects as go
import pytest

from densepure_viz.smoothing.certify import CertifyConfig
from densepure_viz.viz.plots.colors import CLASS_COLORS, discrete_colorscale
from densepure_viz.viz.plots.toy2d import (
    region_maps_figure,
    scene_figure,
    sigma_slider_figure,
    vote_histogram_figure,
)
from densepure_viz.toy2d import (
    PRESETS,
    GridSpec,
    power_diagram_cells,
    region_maps,
    reverse_trajectories,
    robust_region,
    sigma_sweep,
)

PRESET = PRESETS["finite dataset"]
GRID = GridSpec(PRESET.grid.x_range, PRESET.grid.y_range, 50)


@pytest.fixture(scope="module")
def results():
    maps = region_maps(PRESET.mixture, GRID, PRESET.sigma)
    robust = robust_region(PRESET.mixture, maps, PRESET.x0, PRESET.x_a, np.random.default_rng(0), CertifyConfig(n=500))
    x_tilde = np.array([-0.2, 0.3])
    traj = reverse_trajectories(PRESET.mixture, x_tilde, PRESET.sigma, list(range(12)), steps=20)
    return maps, robust, traj


def test_scene_has_one_line_per_trajectory_and_the_certified_circle(results):
    maps, robust, traj = results
    cells = power_diagram_cells(PRESET.mixture, PRESET.sigma, PRESET.grid)
    fig = scene_figure(maps, "mode", robust=robust, trajectories=traj, cells=cells)
    lines = [t for t in fig.data if t.name == "reverse trajectory"]
    assert len(lines) == 12
    np.testing.assert_allclose(lines[3].x, traj.path[:, 3, 0])
    ends = next(t for t in fig.data if t.name == "endpoints (votes)")
    assert list(ends.marker.color) == [CLASS_COLORS[c] for c in traj.labels]
    heat = fig.data[0]
    assert isinstance(heat, go.Heatmap) and np.array_equal(np.asarray(heat.z), maps.mode)
    outline = next(t for t in fig.data if t.name == "power diagram")
    assert np.isnan(np.asarray(outline.x, dtype=float)).sum() == len(cells)
    circle = next(s for s in fig.layout.shapes if s.name == "certified ball at x0")
    r = robust.certificate.radius
    assert r > 0 and circle.type == "circle"
    assert (circle.x1 - circle.x0) / 2 == pytest.approx(r) and (circle.y1 - circle.y0) / 2 == pytest.approx(r)
    assert (circle.x0 + circle.x1) / 2 == pytest.approx(robust.x0[0])
    assert {"x0", "x_a", "x~ (smoothed input)", "robust region of x0"} <= {t.name for t in fig.data}


def test_scene_caps_lines_and_draws_nothing_optional(results):
    maps, _, traj = results
    capped = scene_figure(maps, "vote", trajectories=traj, max_lines=5)
    assert sum(t.name == "reverse trajectory" for t in capped.data) == 5
    bare = scene_figure(maps, "bayes")
    assert len(bare.data) == 2 and not bare.layout.shapes


def test_vote_histogram_matches_votes(results):
    _, _, traj = results
    fig = vote_histogram_figure(traj)
    bars, exact = fig.data
    np.testing.assert_allclose(bars.y, traj.votes / 12)
    np.testing.assert_allclose(exact.y, traj.exact_probabilities)
    assert len(bars.x) == PRESET.mixture.num_classes


def test_region_maps_figure_shows_all_four(results):
    maps, _, _ = results
    fig = region_maps_figure(maps)
    heats = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert len(heats) == 4
    for heat, name in zip(heats, ("bayes", "one_shot", "mode", "vote")):
        assert np.array_equal(np.asarray(heat.z), maps.labels(name))
    assert len(fig.layout.annotations) == 4


def test_sigma_slider_has_a_frame_per_sigma():
    sweep = sigma_sweep(PRESET.mixture, GRID, [0.2, 0.5, 1.0], PRESET.x0)
    fig = sigma_slider_figure(sweep)
    assert len(fig.frames) == 3 and len(fig.layout.sliders[0].steps) == 3
    for frame, labels, mask in zip(fig.frames, sweep.mode_labels, sweep.robust_masks):
        assert np.array_equal(np.asarray(frame.data[0].z), labels)
        assert np.array_equal(np.asarray(frame.data[1].z), mask.astype(float))


def test_discrete_colorscale_is_piecewise_constant():
    scale = discrete_colorscale(3)
    assert scale[0] == (0.0, CLASS_COLORS[0]) and scale[-1] == (1.0, CLASS_COLORS[2])
    assert [c for _, c in scale] == [CLASS_COLORS[i // 2] for i in range(6)]


@pytest.mark.slow
def test_plots_import_no_gradio():
    code = "import sys, densepure_viz.viz.plots.toy2d; sys.exit('gradio' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
