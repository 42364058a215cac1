"""CERTIFY / PREDICT against closed forms and known statistics (Cohen et al. 2019)."""

import pytest
import torch
from scipy.stats import beta, binom, binomtest, norm

from densepure_viz.smoothing.certify import (
    CertifyConfig,
    CertifyProgress,
    CertifyResult,
    certified_radius,
    certify,
    certify_stream,
    max_certified_radius,
    predict,
)
from densepure_viz.engine.seeding import Stream
from densepure_viz.smoothing.bounds import lower_confidence_bound


def constant_base(label: int):
    return lambda phase, draws: torch.full((len(draws),), label)


def bernoulli_base(p: float, top: int, other: int, seed: int = 0):
    """Label `top` with probability p, else `other`; each draw's outcome fixed by (phase, draw index)."""

    def base(phase: Stream, draws: torch.Tensor) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed * 1000 + int(phase))
        u = torch.rand(int(draws.max()) + 1, generator=g)[draws]
        return torch.where(u < p, top, other)

    return base


@pytest.mark.parametrize("count, n, alpha", [(1, 10, 0.05), (990, 1000, 0.001), (500, 1000, 0.01), (37, 40, 0.001)])
def test_clopper_pearson_lower_bound_leaves_alpha_in_the_tail(count, n, alpha):
    """The defining property: at p = p_lower, P(Binomial(n, p) >= count) = alpha; and scipy's root-finding
    exact interval (binomtest, an independent computation) agrees to its solver's tolerance."""
    p_lower = lower_confidence_bound(count, n, alpha)
    assert binom.sf(count - 1, n, p_lower) == pytest.approx(alpha, rel=1e-8)
    exact = binomtest(count, n).proportion_ci(confidence_level=1 - 2 * alpha, method="exact").low
    assert p_lower == pytest.approx(exact, abs=1e-11)


def test_lower_bound_of_zero_count_is_zero():
    assert lower_confidence_bound(0, 100, 0.001) == 0.0


def test_radius_closed_form():
    assert certified_radius(0.99, 0.5) == pytest.approx(0.5 * norm.ppf(0.99))
    assert certified_radius(0.5, 0.5) == 0.0
    assert certified_radius(0.3, 0.5) == 0.0


def test_certify_constant_base_gives_the_all_correct_bound():
    """nA = n: the lower bound is alpha^(1/n) exactly, radius sigma * Phi^-1(alpha^(1/n))."""
    cfg = CertifyConfig(n0=10, n=200, alpha=0.001)
    r = certify(constant_base(7), 10, 0.25, cfg, chunk=64)
    assert (r.label, r.count, r.n, r.guess) == (7, 200, 200, 7)
    assert r.p_lower == pytest.approx(0.001 ** (1 / 200), rel=1e-9)
    assert r.radius == pytest.approx(0.25 * norm.ppf(0.001 ** (1 / 200)), rel=1e-9)
    assert r.counts[7] == 200 and sum(r.selection_counts) == 10


def test_certify_abstains_below_one_half():
    r = certify(bernoulli_base(0.45, top=2, other=5), 10, 0.5, CertifyConfig(n0=100, n=1000, alpha=0.001))
    assert r.label is None and r.radius == 0.0 and r.p_lower < 0.5


def test_certify_bound_is_below_the_true_probability():
    """With p = 0.9, the (1 - alpha) lower bound is below p and within a few standard errors of it."""
    p, n = 0.9, 2000
    r = certify(bernoulli_base(p, top=1, other=0), 2, 0.5, CertifyConfig(n0=50, n=n, alpha=0.001))
    assert r.label == 1
    se = (p * (1 - p) / n) ** 0.5
    assert p - 6 * se < r.p_lower < p
    assert r.radius == pytest.approx(0.5 * norm.ppf(r.p_lower))


def test_certify_stream_reports_progress_then_result():
    items = list(certify_stream(constant_base(3), 10, 0.5, CertifyConfig(n0=20, n=100), chunk=30))
    progress = [i for i in items if isinstance(i, CertifyProgress)]
    assert isinstance(items[-1], CertifyResult)
    assert [p.done for p in progress if p.phase == Stream.SELECT] == [20]
    assert [p.done for p in progress if p.phase == Stream.ESTIMATE] == [30, 60, 90, 100]
    assert progress[-1].counts == items[-1].counts and progress[-1].counts[3] == 100


def test_predict():
    assert predict(constant_base(4), 10, n=100, alpha=0.001) == 4
    assert predict(bernoulli_base(0.5, top=1, other=2), 10, n=200, alpha=0.001) is None


@pytest.mark.parametrize("kwargs", [dict(n0=0), dict(n=0), dict(n=10**9), dict(alpha=0.0), dict(alpha=1.0), dict(n=2.5)])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        CertifyConfig(**kwargs)


def test_alpha_range_is_checked_in_the_config():
    from densepure_viz.errors import InputError

    assert CertifyConfig(alpha=0.5).alpha == 0.5  # the largest alpha with a one-sided bound (confidence 1/2)
    for bad in (0.0, 0.7, 1.0, -0.1):
        with pytest.raises(InputError, match=r"alpha must be in \(0, 0.5\]"):
            CertifyConfig(alpha=bad)
    # at alpha = 1/2 the one-sided Clopper-Pearson bound is the median of Beta(k, n - k + 1)
    assert lower_confidence_bound(7, 10, 0.5) == pytest.approx(beta.median(7, 4), rel=1e-9)


def test_max_certified_radius_is_what_unanimous_draws_give():
    # all n draws agree: the one-sided Clopper-Pearson bound is alpha^(1/n) (closed form), radius sigma * Phi^-1 of it
    for n, alpha, sigma in [(100, 0.001, 0.5), (1000, 0.001, 0.25), (10, 0.05, 1.0)]:
        assert max_certified_radius(n, alpha, sigma) == pytest.approx(sigma * norm.ppf(alpha ** (1 / n)), rel=1e-9)
    assert max_certified_radius(1, 0.001, 0.5) == 0  # one draw can never certify
