"""Sequential CERTIFY (anytime-valid confidence sequence) against known statistics and the exact 2D world."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from densepure_viz.smoothing.bounds import clopper_pearson, lower_confidence_bound
from densepure_viz.smoothing.certify import CertifyConfig, certify
from densepure_viz.errors import InputError
from densepure_viz.engine.seeding import Stream, make_generator
from densepure_viz.smoothing.sequential import (
    SequentialConfig,
    SequentialProgress,
    SequentialResult,
    look_alpha,
    look_schedule,
    sequence_bounds,
    sequential_certify,
    sequential_certify_radii,
    sequential_certify_stream,
)
from densepure_viz.toy2d.presets import PRESETS
from densepure_viz.toy2d.regions import classify

REPS = 2000  # repetitions of the soundness tests
ALPHA = 0.05  # their failure probability
SLACK = 3 * math.sqrt(ALPHA * (1 - ALPHA) / REPS)  # three binomial standard errors of a share of REPS runs


def bernoulli_base(p: float, top: int, other: int, seed: int = 0):
    """Label `top` with probability p, else `other`; each draw's outcome fixed by (seed, phase, draw index)."""

    def base(phase: Stream, draws: torch.Tensor) -> torch.Tensor:
        u = torch.rand(int(draws.max()) + 1, generator=make_generator(seed, phase))[draws]
        return torch.where(u < p, top, other)

    return base


def cyclic_base(num_classes: int):
    """Draw i votes for class i mod C: every class has probability 1 / C."""
    return lambda phase, draws: draws % num_classes


def ever_crosses(p: float, budget: int, bounds) -> tuple[float, float]:
    """Shares of REPS seeded Bernoulli(p) runs whose lower bound ever exceeds p, and whose upper bound ever falls below.

    Row r of the (REPS, budget) outcome matrix is repetition r, column i its draw i; `bounds(counts (REPS, J), looks (J,))`
    returns the (lower, upper) bounds at the looks."""
    hits = (torch.rand(REPS, budget, generator=make_generator(1, int(p * 1000))) < p).cumsum(1).numpy()
    looks = look_schedule(budget, first=10, growth=1.5)
    lower, upper = bounds(hits[:, looks - 1], looks)
    return float((lower > p).any(1).mean()), float((upper < p).any(1).mean())


# --- the confidence sequence ---------------------------------------------------------------------


def test_look_schedule_is_geometric_and_ends_at_the_budget():
    looks = look_schedule(1000, first=10, growth=1.5)
    assert looks[0] == 10 and looks[-1] == 1000 and (np.diff(looks) > 0).all()
    assert (looks[1:-1] == np.ceil(looks[:-2] * 1.5)).all()
    assert look_schedule(5, first=10, growth=1.5).tolist() == [5]
    assert look_schedule(13, first=10, growth=1.01).tolist() == [10, 11, 12, 13]  # at least one draw per look


@pytest.mark.parametrize("count, n, alpha", [(1, 10, 0.05), (990, 1000, 0.001), (500, 1000, 1e-6), (0, 40, 0.01), (40, 40, 0.01)])
def test_clopper_pearson_is_certifys_bound_and_its_mirror(count, n, alpha):
    lower, upper = clopper_pearson(count, n, alpha)
    assert lower == pytest.approx(lower_confidence_bound(count, n, alpha), rel=1e-9, abs=1e-15)
    assert upper == pytest.approx(1 - lower_confidence_bound(n - count, n, alpha), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("p", [0.7, 0.95])
def test_sequence_never_crosses_p_more_often_than_alpha(p):
    """Soundness over all looks at once; peeking at fixed-n Clopper-Pearson at the same looks fails it."""
    lower_share, upper_share = ever_crosses(p, 1000, lambda counts, looks: sequence_bounds(counts, looks, ALPHA))
    assert lower_share <= ALPHA + SLACK and upper_share <= ALPHA + SLACK
    peek_lower, peek_upper = ever_crosses(p, 1000, lambda counts, looks: clopper_pearson(counts, looks, ALPHA))
    assert peek_lower > ALPHA + 2 * SLACK and peek_upper > ALPHA + 2 * SLACK  # e.g. 0.20 at p = 0.7


def test_sequence_bounds_are_monotone_and_cover_per_class():
    """Running max / min per look; with F covered classes each look spends alpha / (J F)."""
    looks = np.array([10, 20, 40])
    lower, upper = sequence_bounds(np.array([10, 12, 39]), looks, 0.01, num_covered=5)
    assert (np.diff(lower) >= 0).all() and (np.diff(upper) <= 0).all()
    raw_lower, raw_upper = clopper_pearson(np.array([10, 12, 39]), looks, 0.01 / 15)
    assert lower.tolist() == np.maximum.accumulate(raw_lower).tolist() and lower[1] == raw_lower[0] > raw_lower[1]
    assert upper.tolist() == np.minimum.accumulate(raw_upper).tolist()


# --- decisions in the exact 2D world -------------------------------------------------------------


@pytest.fixture(scope="module")
def world():
    """A point of the "clusters" preset, the Bayes base classifier, and the smoothed pA of each class by 10^6 draws."""
    preset = PRESETS["clusters"]
    x, sigma = np.array([-0.6, -0.5]), preset.sigma
    noise = torch.randn(10**6, 2, generator=make_generator(2, 0), dtype=torch.float64).numpy()
    labels = classify(preset.mixture, x + sigma * noise, sigma, "bayes")
    return preset.mixture, x, sigma, np.bincount(labels, minlength=preset.mixture.num_classes) / len(labels)


def world_base(mixture, x: np.ndarray, sigma: float, seed: int):
    """classify(x + delta) for the draws' noise delta, each draw's noise fixed by (seed, phase, draw index)."""

    def base(phase: Stream, draws: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(int(draws.max()) + 1, 2, generator=make_generator(seed, phase), dtype=torch.float64)
        return torch.from_numpy(classify(mixture, x + sigma * noise[draws].numpy(), sigma, "bayes"))

    return base


@pytest.mark.slow
@pytest.mark.parametrize("margin", [0.02, -0.02])
def test_decisions_at_a_radius_contradict_the_truth_at_most_alpha_of_the_time(world, margin):
    """R is set where Phi(R / sigma) = pA + margin: above pA nothing may be certified, below it must not be refuted."""
    mixture, x, sigma, p = world
    top = int(p.argmax())
    radius = sigma * norm.ppf(p[top] + margin)
    cfg = SequentialConfig(alpha=ALPHA, n=400, radius=float(radius))
    reps = 300
    results = [sequential_certify(world_base(mixture, x, sigma, seed), mixture.num_classes, sigma, cfg) for seed in range(reps)]
    if margin > 0:  # truth: no class reaches Phi(R / sigma)
        wrong = sum(r.decision == "certified" for r in results)
    else:  # truth: `top` is certified at R
        wrong = sum(r.decision in ("not_certified", "abstain") or (r.label not in (None, top)) for r in results)
    assert wrong / reps <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / reps)
    assert len({r.decision for r in results}) >= 2  # the margin is tight enough that decisions vary


# --- sequential CERTIFY --------------------------------------------------------------------------


@pytest.mark.parametrize("n0, covered", [(0, 10), (20, 1)])
def test_deterministic_base_certifies_after_the_fewest_draws_the_bound_allows(n0, covered):
    """All draws agree: the bound at n draws is a^(1/n), a = alpha / (J F); the first look with a^(1/n) > Phi(R / sigma) stops."""
    sigma, radius, cfg = 0.5, 0.5, SequentialConfig(alpha=0.001, n=1000, radius=0.5, n0=n0)
    looks = look_schedule(1000, cfg.first_look, cfg.growth)
    a = 0.001 / (len(looks) * covered)
    fewest = math.floor(math.log(a) / math.log(norm.cdf(radius / sigma))) + 1  # a^(1/n) > t  <=>  n > ln a / ln t
    r = sequential_certify(lambda phase, draws: torch.full((len(draws),), 4), 10, sigma, cfg)
    assert (r.decision, r.label, r.top_class) == ("certified", 4, 4)
    assert r.draws_used == looks[looks >= fewest][0]
    assert r.p_lower == pytest.approx(a ** (1 / r.draws_used), rel=1e-9)
    assert r.radius == pytest.approx(sigma * norm.ppf(r.p_lower)) and r.radius > radius
    assert r.selection_counts == ([] if n0 == 0 else [0, 0, 0, 0, n0, 0, 0, 0, 0, 0])


def test_budget_spent_undecided():
    """pA right at the threshold: neither bound crosses it within a small budget."""
    cfg = SequentialConfig(alpha=0.001, n=200, radius=0.5 * norm.ppf(0.8))
    r = sequential_certify(bernoulli_base(0.8, top=1, other=0), 2, 0.5, cfg)
    assert (r.decision, r.draws_used) == ("undecided", 200)
    assert r.p_lower < 0.8 < r.p_upper and r.radius < cfg.radius


def test_abstains_early_when_no_class_can_reach_one_half():
    """Without a target radius the run would go to the budget; it stops once every class's upper bound is <= 1/2."""
    r = sequential_certify(cyclic_base(10), 10, 0.5, SequentialConfig(alpha=0.001, n=1000))
    assert r.decision == "abstain" and r.draws_used < 100
    assert (r.label, r.top_class, r.radius) == (None, 0, 0.0) and r.p_upper <= 0.5


def test_not_certified_when_pA_is_clearly_below_the_threshold():
    cfg = SequentialConfig(alpha=0.001, n=1000, radius=0.5)  # threshold Phi(1) = 0.84
    r = sequential_certify(bernoulli_base(0.6, top=3, other=1), 10, 0.5, cfg)
    assert r.decision == "not_certified" and r.draws_used < 1000 and r.p_upper < norm.cdf(1.0)
    assert r.top_class == 3 and r.label in (None, 3)


def test_without_a_radius_runs_to_the_budget_and_every_radius_is_valid_and_grows():
    items = list(sequential_certify_stream(bernoulli_base(0.9, top=2, other=0), 10, 0.5, SequentialConfig(n=500)))
    progress, result = items[:-1], items[-1]
    assert all(isinstance(i, SequentialProgress) for i in progress) and isinstance(result, SequentialResult)
    assert [i.draws for i in progress] == look_schedule(500, 10, 1.5).tolist()
    assert (result.decision, result.draws_used, result.label) == ("certified", 500, 2)
    radii = [i.radius for i in progress]
    assert radii == sorted(radii) and result.radius == radii[-1] == pytest.approx(0.5 * norm.ppf(result.p_lower))
    assert all(i.radius == (0.5 * norm.ppf(i.p_lower) if i.p_lower > 0.5 else 0.0) for i in progress)


@pytest.mark.parametrize("p, n0", [(0.97, 0), (0.8, 0), (0.6, 0), (0.3, 0), (0.8, 30)])
def test_one_pass_at_several_radii_equals_a_run_per_radius(p, n0):
    """sequential_certify_radii decides each radius exactly as its own sequential_certify run, draws_used included,
    and classifies only the draws the last decision needed."""
    radii = [0.0, 0.25, 0.5, 1.0, 2.0]
    cfg = SequentialConfig(alpha=0.001, n=1000, n0=n0)
    seen = []

    def counting(phase, draws):
        seen.append(len(draws))
        return bernoulli_base(p, 3, 7, seed=5)(phase, draws)

    together = sequential_certify_radii(counting, 10, 0.5, cfg, radii)
    alone = [sequential_certify(bernoulli_base(p, 3, 7, seed=5), 10, 0.5,
                                SequentialConfig(alpha=0.001, n=1000, n0=n0, radius=r)) for r in radii]
    assert together == alone
    assert sum(seen) == n0 + max(r.draws_used for r in alone)
    assert len({r.decision for r in together}) > 1 or p == 0.3  # the radii really decide differently


def test_draws_are_fixed_n_certifys_draws_whatever_the_chunking():
    """Run to the budget, the counts are CERTIFY's estimation counts; chunking changes nothing."""
    base = bernoulli_base(0.8, top=5, other=2, seed=3)
    a = sequential_certify(base, 10, 0.5, SequentialConfig(n=300, n0=30), chunk=7)
    b = sequential_certify(base, 10, 0.5, SequentialConfig(n=300, n0=30), chunk=256)
    fixed = certify(base, 10, 0.5, CertifyConfig(n0=30, n=300))
    assert a == b
    assert (a.counts, a.selection_counts, a.top_class) == (fixed.counts, fixed.selection_counts, fixed.guess)


@pytest.mark.parametrize(
    "kwargs",
    [{"n": 0}, {"n0": -1}, {"alpha": 0.6}, {"alpha": 1}, {"radius": -0.1}, {"radius": math.inf}, {"first_look": 0}, {"growth": 1.0}],
)
def test_config_rejects_bad_input(kwargs):
    with pytest.raises(InputError):
        SequentialConfig(**kwargs)


def test_look_alpha_is_the_union_bound():
    assert look_alpha(0.001, 13, 10) == pytest.approx(0.001 / 130)
