"""Tests of densepure_viz.toy2d against independent truths: closed forms, brute-force integration and
search, the power diagram, the posterior law of reverse chains, and Cohen et al.'s radius formula."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import beta, norm

from densepure_viz.smoothing.certify import CertifyConfig, CertifyResult, certify
from densepure_viz.engine.diffusion import ddpm_alphas_cumprod, timestep_for_sigma
from densepure_viz.toy2d import (
    PRESETS,
    GaussianMixture,
    GridSpec,
    bayes_labels,
    classify,
    highest_density_point,
    label_probabilities,
    labeler_base,
    log_density,
    noised_mixture,
    noised_score,
    posterior,
    posterior_mean,
    posterior_modes,
    power_diagram_assignment,
    power_diagram_cells,
    region_maps,
    reverse_trajectories,
    robust_region,
    sigma_for_timestep,
    sigma_sweep,
)

# three components, two labels, unequal stds: the posterior is bimodal for x~ between them
THREE = GaussianMixture(
    means=[[-1.0, 0.0], [1.2, 0.3], [0.1, 1.4]],
    stds=[0.35, 0.6, 0.2],
    weights=[0.45, 0.4, 0.15],
    labels=[0, 1, 0],
)
# two mirror-image classes: every classifier splits the plane at x = 0
MIRROR = GaussianMixture(means=[[-2.0, 0.0], [2.0, 0.0]], stds=[0.5, 0.5], weights=[1, 1], labels=[0, 1])


def brute_log_posterior(
    mixture: GaussianMixture, x0: np.ndarray, x_tilde: np.ndarray, sigma: float
) -> np.ndarray:
    """Unnormalised log p(x0) + log N(x~; x0, sigma^2 I), written out directly, for x0 (N, 2)."""
    d2 = ((x0[:, None, :] - mixture.means[None]) ** 2).sum(-1)
    var = mixture.stds**2
    prior = np.log((mixture.weights / (2 * np.pi * var) * np.exp(-d2 / (2 * var))).sum(1))
    return prior - ((x0 - x_tilde) ** 2).sum(1) / (2 * sigma**2)


def certify_vote(
    mixture: GaussianMixture, point: list[float], sigma: float, rng: np.random.Generator, cfg: CertifyConfig
) -> CertifyResult:
    """CERTIFY of the smoothed exact vote (map (d)) at one point."""
    return certify(labeler_base(mixture, point, sigma, rng), mixture.num_classes, sigma, cfg)


def fine_grid(lo: float, hi: float, n: int) -> tuple[np.ndarray, float]:
    axis = np.linspace(lo, hi, n)
    gx, gy = np.meshgrid(axis, axis)
    return np.stack([gx.ravel(), gy.ravel()], 1), axis[1] - axis[0]


def test_mixture_validates_and_normalises():
    m = GaussianMixture([[0, 0], [1, 1]], [1, 2], [1, 3], [0, 2])
    np.testing.assert_allclose(m.weights, [0.25, 0.75])
    assert m.num_classes == 3 and not m.means.flags.writeable
    with pytest.raises(ValueError, match="shape|need"):
        GaussianMixture([[0, 0, 0]], [1], [1], [0])
    with pytest.raises(ValueError, match="positive"):
        GaussianMixture([[0, 0]], [0.0], [1], [0])


def test_single_gaussian_posterior_closed_form_and_numerics():
    mu, s, sigma, xt = np.array([0.5, -1.0]), 0.7, 0.4, np.array([1.5, 0.2])
    m = GaussianMixture([mu], [s], [1], [0])
    post = posterior(m, xt[None], sigma)
    np.testing.assert_allclose(post.means[0, 0], (s**2 * xt + sigma**2 * mu) / (s**2 + sigma**2))
    np.testing.assert_allclose(post.variances[0], s**2 * sigma**2 / (s**2 + sigma**2))
    # independent truth: moments of prior x likelihood on a fine grid
    pts, h = fine_grid(-4.0, 4.0, 601)
    w = np.exp(brute_log_posterior(m, pts, xt, sigma))
    w /= w.sum()
    mean = w @ pts
    np.testing.assert_allclose(posterior_mean(m, xt[None], sigma)[0], mean, atol=1e-8)
    np.testing.assert_allclose(post.variances[0], w @ ((pts - mean) ** 2)[:, 0], rtol=1e-6)
    np.testing.assert_allclose(highest_density_point(m, xt[None], sigma)[0], mean, atol=1e-8)


def test_label_probabilities_match_numerical_integration():
    xts = np.array([[0.0, 0.5], [-0.6, 1.0], [1.0, -0.5], [0.2, 0.2]])
    sigma = 0.6
    pts, h = fine_grid(-5.0, 5.0, 801)
    probs = label_probabilities(THREE, xts, sigma)
    for xt, p in zip(xts, probs):
        lik = np.exp(-((pts - xt) ** 2).sum(1) / (2 * sigma**2))
        comp = THREE.weights / (2 * np.pi * THREE.stds**2) * np.exp(
            -((pts[:, None] - THREE.means[None]) ** 2).sum(-1) / (2 * THREE.stds**2)
        )  # (N, K)
        mass = (comp * lik[:, None]).sum(0)
        expected = np.array([mass[[0, 2]].sum(), mass[1]]) / mass.sum()
        np.testing.assert_allclose(p, expected, atol=1e-7)
    assert np.ptp(probs[:, 0]) > 0.3  # the points really differ


def test_highest_density_point_is_stationary_and_global():
    sigma = 0.7
    xts = np.array([[0.1, 0.2], [0.0, 0.9], [0.6, 1.2], [-0.3, -0.4], [2.0, 1.0]])
    modes = highest_density_point(THREE, xts, sigma)
    pts, h = fine_grid(-3.0, 3.0, 601)
    multimodal = 0
    for xt, mode in zip(xts, modes):
        f = lambda x: brute_log_posterior(THREE, np.atleast_2d(x), xt, sigma)  # noqa: E731
        eps = 1e-5
        grad = [(f(mode + e) - f(mode - e))[0] / (2 * eps) for e in np.eye(2) * eps]
        np.testing.assert_allclose(grad, 0.0, atol=1e-5)
        grid_logp = f(pts)
        assert f(mode)[0] >= grid_logp.max() - 1e-12
        assert np.abs(pts[grid_logp.argmax()] - mode).max() <= h
        multimodal += len(posterior_modes(THREE, xt, sigma)[0]) > 1
    assert multimodal >= 2  # the global mode had rivals


def test_highest_density_point_prefers_tall_narrow_component():
    # a light but narrow component beats a heavy broad one: found by its peak pi_k / v_k, not pi_k
    m = GaussianMixture([[-1.0, 0.0], [1.0, 0.0]], [0.05, 1.0], [0.2, 0.8], [0, 1])
    xt = np.array([[0.0, 0.0]])
    sigma = 0.5
    mode = highest_density_point(m, xt, sigma)[0]
    pts, _ = fine_grid(-3.0, 3.0, 1201)
    best = pts[brute_log_posterior(m, pts, xt[0], sigma).argmax()]
    assert np.abs(mode - best).max() < 0.01 and mode[0] < 0
    np.testing.assert_array_equal(highest_density_point(m, xt, 0.0), xt)


def test_point_mass_mode_regions_are_power_diagram():
    p = PRESETS["finite dataset"]
    grid = GridSpec(p.grid.x_range, p.grid.y_range, resolution=120)
    pts = grid.points()
    comp = power_diagram_assignment(p.mixture, pts, p.sigma)
    modes = highest_density_point(p.mixture, pts, p.sigma)
    np.testing.assert_allclose(modes, p.mixture.means[comp], atol=1e-5)
    np.testing.assert_array_equal(classify(p.mixture, pts, p.sigma, "mode"), p.mixture.labels[comp])
    assert len(np.unique(comp)) >= 8  # many cells on screen


def test_power_diagram_cells_tile_the_box_and_match_assignment():
    p = PRESETS["finite dataset"]
    cells = power_diagram_cells(p.mixture, p.sigma, p.grid)
    def shoelace(v: np.ndarray) -> float:  # polygon area from its vertices (n, 2), in order
        x, y = v.T
        return 0.5 * abs(float((x * np.roll(y, -1) - np.roll(x, -1) * y).sum()))

    areas = [shoelace(c.vertices) for c in cells]
    (x0, x1), (y0, y1) = p.grid.x_range, p.grid.y_range
    np.testing.assert_allclose(sum(areas), (x1 - x0) * (y1 - y0), rtol=1e-9)
    pts = p.grid.points()
    comp = power_diagram_assignment(p.mixture, pts, p.sigma)
    for cell in cells:
        v, w = cell.vertices, np.roll(cell.vertices, -1, 0)
        edge, rel = (w - v)[None], pts[:, None, :] - v[None]  # (1, V, 2), (N, V, 2)
        cross = edge[..., 0] * rel[..., 1] - edge[..., 1] * rel[..., 0]  # > 0: left of every edge
        strictly_inside = (cross > 1e-9).all(1)
        assert strictly_inside.any()
        assert (comp[strictly_inside] == cell.component).all()
        assert cell.label == p.mixture.labels[cell.component]


def test_sigma_for_timestep_inverts_the_timestep_of_a_model_space_sigma():
    ab = ddpm_alphas_cumprod()
    for sigma in (0.1, 0.5, 1.0, 3.0):
        t = timestep_for_sigma(sigma, ab, data_scale=1.0)
        assert sigma_for_timestep(t, ab) == pytest.approx(sigma, rel=0.02)


def test_noised_score_is_gradient_and_gives_tweedie():
    ab = 0.6
    x = np.array([[0.3, -0.2], [1.0, 1.0], [-0.8, 0.5]])
    eps = 1e-6
    p_t = noised_mixture(THREE, ab)
    numeric = np.stack([(log_density(p_t, x + e) - log_density(p_t, x - e)) / (2 * eps) for e in np.eye(2) * eps], 1)
    np.testing.assert_allclose(noised_score(THREE, x, ab), numeric, atol=1e-6)
    # Tweedie: (x_t + (1 - ab) score) / sqrt(ab) = E[x0 | x~ = x_t / sqrt(ab)] at sigma^2 = (1 - ab) / ab
    tweedie = (x + (1 - ab) * noised_score(THREE, x, ab)) / np.sqrt(ab)
    expected = posterior_mean(THREE, x / np.sqrt(ab), np.sqrt((1 - ab) / ab))
    np.testing.assert_allclose(tweedie, expected, atol=1e-12)


SEPARATED = GaussianMixture(
    means=[[-1.5, 0.0], [1.5, 0.0], [0.0, 1.8]],
    stds=[0.3, 0.4, 0.25],
    weights=[0.3, 0.5, 0.2],
    labels=[0, 1, 2],
)


def test_trajectory_endpoints_follow_the_exact_posterior():
    xt, k = np.array([-0.1, 0.6]), 4000
    tr = reverse_trajectories(SEPARATED, xt, 0.9, np.random.default_rng(0), num_trajectories=k)
    assert tr.path.shape == (len(tr.timesteps) + 1, k, 2) and len(tr.timesteps) > 200
    np.testing.assert_allclose(tr.path[0], np.broadcast_to(xt, (k, 2)))
    p = label_probabilities(SEPARATED, xt[None], tr.sigma)[0]
    np.testing.assert_allclose(tr.exact_probabilities, p)
    assert p.min() > 0.15  # every label is in play
    np.testing.assert_array_less(np.abs(tr.votes / k - p), 4 * np.sqrt(p * (1 - p) / k) + 0.01)
    # first and second moments against brute-force integration of prior x likelihood
    pts, _ = fine_grid(-4.0, 4.0, 601)
    w = np.exp(brute_log_posterior(SEPARATED, pts, xt, tr.sigma))
    w /= w.sum()
    mean = w @ pts
    var = w @ (pts - mean) ** 2
    ends = tr.endpoints
    np.testing.assert_array_less(np.abs(ends.mean(0) - mean), 4 * ends.std(0) / np.sqrt(k) + 0.01)
    sq = (ends - ends.mean(0)) ** 2
    np.testing.assert_array_less(np.abs(sq.mean(0) - var), 4 * sq.std(0) / np.sqrt(k) + 0.01)


def test_one_shot_chain_is_tweedie_and_ddim_is_deterministic():
    xt = np.array([0.4, 0.4])
    one = reverse_trajectories(SEPARATED, xt, 0.5, [1, 2, 3], steps=1)
    assert one.path.shape == (2, 3, 2)
    tweedie = posterior_mean(SEPARATED, xt[None], one.sigma)
    np.testing.assert_allclose(one.endpoints, np.broadcast_to(tweedie, (3, 2)), atol=1e-12)
    ode = reverse_trajectories(SEPARATED, xt, 0.5, [1, 2, 3], steps=20, method="ddim")
    assert np.ptp(ode.endpoints, axis=0).max() == 0.0
    sde = reverse_trajectories(SEPARATED, xt, 0.5, [1, 2, 3], steps=20)
    assert np.ptp(sde.endpoints, axis=0).max() > 0.01


def test_seeds_reproduce():
    xt = np.array([0.0, 0.5])
    a = reverse_trajectories(SEPARATED, xt, 0.6, [7, 8, 9], steps=30)
    b = reverse_trajectories(SEPARATED, xt, 0.6, [7, 8, 9], steps=30)
    c = reverse_trajectories(SEPARATED, xt, 0.6, [7, 8], steps=30)
    np.testing.assert_array_equal(a.path, b.path)
    np.testing.assert_array_equal(a.path[:, :2], c.path)  # trajectory k depends on its own seed only
    assert not np.allclose(a.path[:, 0], a.path[:, 1])
    g1 = reverse_trajectories(SEPARATED, xt, 0.6, np.random.default_rng(3), num_trajectories=5, steps=10)
    g2 = reverse_trajectories(SEPARATED, xt, 0.6, np.random.default_rng(3), num_trajectories=5, steps=10)
    np.testing.assert_array_equal(g1.path, g2.path)
    c1 = certify_vote(THREE, [0.1, 0.1], 0.5, np.random.default_rng(4), CertifyConfig(n=500))
    c2 = certify_vote(THREE, [0.1, 0.1], 0.5, np.random.default_rng(4), CertifyConfig(n=500))
    np.testing.assert_array_equal(c1.counts, c2.counts)
    with pytest.raises(ValueError, match="num_trajectories"):
        reverse_trajectories(SEPARATED, xt, 0.6, np.random.default_rng(3))


def test_certified_radius_matches_closed_form():
    # map (d) of MIRROR is the half-plane x < 0, so at (-a, 0) pA = Phi(a / sigma) and the ideal radius is a
    sigma, a, n, alpha = 0.5, 0.6, 100_000, 0.001
    cert = certify_vote(MIRROR, [-a, 0.0], sigma, np.random.default_rng(0), CertifyConfig(n=n, alpha=alpha))
    n_a = cert.counts[0]
    assert cert.label == 0 and abs(n_a / n - norm.cdf(a / sigma)) < 4 * np.sqrt(0.12 / n)
    p_lower = beta.ppf(alpha, n_a, n - n_a + 1)
    assert cert.p_lower == pytest.approx(p_lower, rel=1e-9)
    assert cert.radius == pytest.approx(sigma * norm.ppf(p_lower), rel=1e-9)
    assert a - 0.03 < cert.radius < a
    on_boundary = certify_vote(MIRROR, [0.0, 0.0], sigma, np.random.default_rng(0), CertifyConfig(n=2000))
    assert on_boundary.label is None and on_boundary.radius == 0.0 and on_boundary.p_lower < 0.5


def test_robust_region_of_mirror_is_the_half_plane():
    grid = GridSpec((-4.0, 4.0), (-3.0, 3.0), resolution=80)  # no grid point on the tie line x = 0
    maps = region_maps(MIRROR, grid, 0.5)
    rr = robust_region(MIRROR, maps, [-2.0, 0.0], [-0.3, 2.5], np.random.default_rng(1), CertifyConfig(n=2000))
    assert rr.label == 0 and rr.mask[maps.cell_of([-2.0, 0.0])]
    np.testing.assert_array_equal(rr.mask, np.broadcast_to(maps.xs < 0, (80, 80)))
    assert rr.area == pytest.approx(40 * 80 * maps.cell_area)
    assert rr.ball_area == pytest.approx(np.pi * rr.certificate.radius**2)
    assert rr.x_a_in_region and not rr.x_a_in_ball and rr.area > rr.ball_area
    far = robust_region(MIRROR, maps, [-2.0, 0.0], [0.5, 0.0], np.random.default_rng(1), CertifyConfig(n=2000))
    assert not far.x_a_in_region


def test_region_maps_of_presets_are_consistent():
    p = PRESETS["clusters"]
    maps = region_maps(p.mixture, GridSpec(p.grid.x_range, p.grid.y_range, 60), p.sigma)
    for name in ("bayes", "one_shot", "mode", "vote"):
        lab = maps.labels(name)
        assert lab.shape == (60, 60) and set(np.unique(lab)) <= {0, 1, 2}
    pts = GridSpec(p.grid.x_range, p.grid.y_range, 60).points()
    np.testing.assert_array_equal(maps.bayes.ravel(), bayes_labels(p.mixture, pts))
    np.testing.assert_allclose(maps.density.ravel(), np.exp(log_density(p.mixture, pts)))
    assert (maps.mode != maps.bayes).any()  # smoothing changes the picture


def test_sigma_sweep_grows_robust_region_of_heavy_class():
    # the mode map's boundary sits where log w_k - |x - mu_k|^2 / (2 (s^2 + sigma^2)) tie: it moves
    # away from the heavy class as sigma grows
    m = GaussianMixture([[-1.0, 0.0], [1.0, 0.0]], [0.3, 0.3], [0.8, 0.2], [0, 1])
    grid = GridSpec((-3.0, 3.0), (-2.0, 2.0), 60)
    sweep = sigma_sweep(m, grid, [0.2, 0.6, 1.0], [-1.0, 0.0])
    assert sweep.mode_labels.shape == (3, 60, 60) and sweep.robust_masks.dtype == bool
    cell = (int(np.abs(sweep.ys).argmin()), int(np.abs(sweep.xs + 1.0).argmin()))
    assert sweep.robust_masks[:, cell[0], cell[1]].all()
    assert np.all(np.diff(sweep.robust_areas) > 0)
    for sigma, labels in zip(sweep.sigmas, sweep.mode_labels):
        np.testing.assert_array_equal(labels.ravel(), classify(m, grid.points(), sigma, "mode"))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_tell_their_story(name):
    # x_a is an attack on x0 that the robust region covers but the certified ball does not
    p = PRESETS[name]
    assert p.name == name and p.point_masses == bool(p.mixture.stds.max() < 0.01)
    maps = region_maps(p.mixture, GridSpec(p.grid.x_range, p.grid.y_range, 100), p.sigma)
    rr = robust_region(p.mixture, maps, p.x0, p.x_a, np.random.default_rng(0), CertifyConfig(n=1000))
    assert rr.certificate.label == rr.label == bayes_labels(p.mixture, np.array([p.x0]))[0]
    assert rr.x_a_in_region and not rr.x_a_in_ball and rr.area > rr.ball_area


@pytest.mark.slow
def test_compute_core_imports_no_plotting_or_ui():
    code = "import sys, densepure_viz.toy2d; sys.exit(any(m in sys.modules for m in ('plotly', 'gradio')))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_the_vote_of_trajectories_names_a_tie_and_breaks_it_towards_the_smallest_label():
    from densepure_viz.toy2d.reverse import ReverseTrajectories

    def endpoints(labels):
        k = len(labels)
        return ReverseTrajectories(np.zeros(2), 0.5, "ddpm", np.arange(1), np.ones(2), np.zeros((2, k, 2)),
                                   np.array(labels), np.full(3, 1 / 3))

    tie = endpoints([2, 1, 1, 2])
    assert tie.votes.tolist() == [0, 2, 2] and tie.tied == [1, 2] and tie.vote == 1
    win = endpoints([2, 2, 0])
    assert win.tied == [2] and win.vote == 2
