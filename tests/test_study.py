"""The vote study against independent truths: engine runs, closed-form posteriors, hand-computed p-values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from densepure_viz import toy2d
from densepure_viz.experiments.projections import TrainingSet, point_mass_posterior
from densepure_viz.engine.purify import PurifyConfig, densepure_labels, smoothed_draws
from densepure_viz.experiments.study import (
    PHASE,
    RECORDS,
    Chain,
    StudyConfig,
    Toy2dStudyConfig,
    accuracy,
    block_uniforms,
    chain_records,
    draw_ids,
    ideal_posteriors,
    load_study,
    markdown_table,
    paired_test,
    read_records,
    run_study,
    sample_posterior,
    save_study,
    study_toy2d,
    summarize,
    toy2d_draws,
    toy2d_labels,
)
from densepure_viz.engine.votes import majority_vote

CFG = StudyConfig(sigmas=(0.5,), draws=2, ks=(1, 2, 4), chains=(Chain("fast", 3),), seed=7)


@pytest.fixture(scope="module")
def tiny_data(tiny_models):
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(3, 1, 8, 8, generator=gen)
    return images, torch.tensor([0, 1, 2]), TrainingSet("tiny", torch.rand(5, 1, 8, 8, generator=gen),
                                                        torch.tensor([0, 1, 2, 3, 4]))


def test_first_k_seeds_are_a_k_seed_run(tiny_models, tiny_data):
    images, labels, _ = tiny_data
    idx = torch.arange(3)
    records = chain_records(tiny_models, CFG.chains[0], images, labels, idx, 1, 0.5, CFG)
    seeds = torch.tensor([r.seeds for r in records])  # (3, K_max)
    for k in CFG.ks:
        cfg = PurifyConfig(sigma=0.5, seeds=k, sampler="fast", steps=3)
        own = densepure_labels(tiny_models, images, cfg, CFG.seed, PHASE, draw_ids(idx, 1))  # a K-seed run
        assert torch.equal(own, seeds[:, :k])
        assert torch.equal(majority_vote(own, 10), majority_vote(seeds[:, :k], 10))


def test_ideal_references_two_separated_points():
    # two training images, all 0 (class 0) and all 1 (class 1); the input is the first exactly
    train = TrainingSet("two", torch.stack([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)]), torch.tensor([0, 1]))
    sigma = 2.0
    # model space: |y0 - y1|^2 = 16 pixels * 2^2 = 64, std s = 2 sigma = 4, so w1 / w0 = exp(-64 / 32)
    w0 = 1.0 / (1.0 + math.exp(-2.0))
    post = ideal_posteriors(train, torch.zeros(2, 1, 4, 4), sigma, 3, torch.tensor([0.5, w0 + 1e-6]))
    assert torch.allclose(post.label_mass, torch.tensor([[w0, 1 - w0, 0.0]] * 2), atol=1e-6)
    assert torch.allclose(post.mean, torch.full((2, 1, 4, 4), 1 - w0), atol=1e-6)
    assert post.sample_label.tolist() == [0, 1]  # inverse CDF: u <= w0 picks image 0


def test_ideal_posteriors_match_point_mass_posterior(tiny_models, tiny_data):
    images, _, train = tiny_data
    ids = draw_ids(torch.arange(3), 0)
    noisy, _ = smoothed_draws(tiny_models, images, 0.5, 0, PHASE, ids)
    post = ideal_posteriors(train, noisy, 0.5, 10, block_uniforms(0, ids))
    for j in range(3):
        ref = point_mass_posterior(train, noisy[j], 0.5, 10)
        assert torch.allclose(post.label_mass[j], ref.label_mass, atol=1e-6)
        assert torch.allclose(post.mean[j], ref.mean, atol=1e-6)


def test_block_uniforms_do_not_depend_on_batching():
    ids = torch.tensor([3, 40, 4099, 31])
    together = block_uniforms(5, ids)
    alone = torch.cat([block_uniforms(5, ids[i : i + 1]) for i in range(4)])
    assert torch.equal(together, alone)
    assert len(set(together.tolist())) == 4


def test_paired_test_is_the_exact_sign_test():
    # 8 draws only a gets right, 1 only b, 11 both: p = 2 * P(Bin(9, 1/2) >= 8) = 2 * (9 + 1) / 2^9
    a = np.array([True] * 8 + [False] + [True] * 11)
    b = np.array([False] * 8 + [True] + [True] * 11)
    t = paired_test(a, b, "a", "b", 1.0)
    assert (t.a_only, t.b_only, t.total) == (8, 1, 20)
    assert t.p_value == pytest.approx(20 / 512)
    assert paired_test(a, a, "a", "a", 1.0).p_value == 1.0


def test_wilson_interval_closed_form():
    acc = accuracy(np.array([True] * 60 + [False] * 40), "x", 1.0)
    z, n, p = 1.959963984540054, 100, 0.6
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    assert (acc.low, acc.high) == (pytest.approx(centre - half), pytest.approx(centre + half))


def test_resume_skips_finished_and_tolerates_half_written_line(tiny_models, tiny_data, tmp_path):
    images, labels, train = tiny_data
    first = run_study(tiny_models, train, images, labels, CFG, tmp_path, batch=2, progress=False)
    path = tmp_path / RECORDS
    assert len(first) == 2 * 3 * 2  # (reference + one chain) x 3 images x 2 draws
    text = path.read_text()
    run_study(tiny_models, train, images, labels, CFG, tmp_path, batch=2, progress=False)
    assert path.read_text() == text  # nothing recomputed
    lines = text.splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])  # killed mid-write
    assert len(read_records(path, CFG, tiny_models.name)) == len(first) - 1
    again = run_study(tiny_models, train, images, labels, CFG, tmp_path, batch=2, progress=False)
    assert again == first  # the missing record is recomputed, identically
    assert len(read_records(path, CFG, tiny_models.name)) == len(first)
    other = StudyConfig(sigmas=CFG.sigmas, draws=CFG.draws, ks=(1, 2), chains=CFG.chains, seed=CFG.seed)
    assert all(u[0] == "reference" for u in read_records(path, other, tiny_models.name))  # other K_max: chains redone


def test_summary_and_outputs(tiny_models, tiny_data, tmp_path):
    images, labels, train = tiny_data
    records = run_study(tiny_models, train, images, labels, CFG, tmp_path, batch=4, progress=False)
    result = summarize(records, CFG, tiny_models.name, 3, 10)
    one = result.get(0.5, "fast b=3", 1)
    k1 = np.array([records[("fast b=3", 0.5, i, d)].seeds[0] == i for d in range(2) for i in range(3)])
    assert (one.correct, one.total) == (int(k1.sum()), 6)
    assert result.unet_images["fast b=3@0.5"] == pytest.approx(1 + 2 * 4)  # t* once, then 2 steps x 4 seeds
    md, js = save_study(result, tmp_path)
    assert load_study(js) == result
    assert "| 0.5 | 6 | fast b=3 |" in md.read_text()
    json.loads(js.read_text())


def test_toy2d_bayes_vote_is_the_class_mass_argmax():
    mix = toy2d.PRESETS["clusters"].mixture  # well separated: sample labels ~ component labels
    rng = np.random.default_rng(0)
    y, x_tilde = toy2d_draws(mix, 300, 0.75, rng)
    labels = toy2d_labels(mix, x_tilde, 0.75, (1, 64), rng)
    assert np.array_equal(labels[("ideal vote", None)], toy2d.label_probabilities(mix, x_tilde, 0.75).argmax(1))
    # the vote of many exact posterior samples, each labelled by the clean Bayes classifier, converges to it
    # up to near-ties (the class mass counts components, the samples' labels count Bayes regions)
    assert np.mean(labels[("exact posterior samples", 64)] == labels[("ideal vote", None)]) > 0.95


def test_toy2d_posterior_samples_match_the_closed_form():
    mix = toy2d.PRESETS["clusters"].mixture
    x_tilde = np.array([[0.0, 0.5], [-1.0, -1.0]])
    samples = sample_posterior(toy2d.posterior(mix, x_tilde, 1.0), 40000, np.random.default_rng(1))
    assert np.allclose(samples.mean(1), toy2d.posterior_mean(mix, x_tilde, 1.0), atol=0.03)


def test_toy2d_study_bayes_vote_is_best():
    result = study_toy2d(Toy2dStudyConfig(sigmas=(1.0,), points=3000, ks=(1, 8)))
    best = result.get(1.0, "ideal vote").accuracy
    assert best >= result.get(1.0, "one-shot").accuracy
    assert best >= result.get(1.0, "exact posterior samples", 1).accuracy
    assert "ideal vote" in markdown_table(result)


def test_vote_wins_finds_the_constructed_draw():
    from densepure_viz.experiments.study import ChainRecord, ReferenceRecord, vote_wins

    ref = {i: ReferenceRecord(1.0, i, 0, 3, 0, 5 if i == 1 else 3, 3, 3, 3, 0.5) for i in range(3)}
    seeds = {0: [3, 3, 5, 5], 1: [3, 5, 3, 3], 2: [5, 5, 5, 3]}
    records = {("reference", 1.0, i, 0): r for i, r in ref.items()}
    records |= {("fast b=10", 1.0, i, 0): ChainRecord("fast b=10", 1.0, i, 0, 3, s, 37.0) for i, s in seeds.items()}
    wins = vote_wins(records, "fast b=10", 1.0, 4, 10)
    assert [(w.index, w.per_seed, w.margin, w.image_wins) for w in wins] == [(1, [3, 5, 3, 3], 2, 1.0)]


def test_study_imports_no_plotting_or_ui():
    import subprocess
    import sys

    code = "import sys, densepure_viz.experiments.study; print('plotly' in sys.modules or 'gradio' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_single_sample_means(tiny_models, tiny_data, tmp_path):
    images, labels, train = tiny_data
    records = run_study(tiny_models, train, images, labels, CFG, tmp_path, batch=4, progress=False)
    result = summarize(records, CFG, tiny_models.name, 3, 10)
    hits = [s == r.label for (kind, *_), r in records.items() if kind != "reference" for s in r.seeds]
    masses = [r.ideal_mass for (kind, *_), r in records.items() if kind == "reference"]
    assert result.single_sample["fast b=3@0.5"] == pytest.approx(np.mean(hits))
    assert result.single_sample["ideal@0.5"] == pytest.approx(np.mean(masses))


def test_summary_leaves_out_sigmas_without_draws(tiny_models, tiny_data, tmp_path):
    images, labels, train = tiny_data
    records = run_study(tiny_models, train, images, labels, CFG, tmp_path, batch=4, progress=False)
    wider = StudyConfig(sigmas=(0.5, 1.0), draws=CFG.draws, ks=CFG.ks, chains=CFG.chains, seed=CFG.seed)
    result = summarize(records, wider, tiny_models.name, 3, 10)
    assert result.sigmas == [0.5] and {a.sigma for a in result.accuracies} == {0.5}
