"""The batched DensePure engine: reproducibility, batch invariance, votes, on tiny random-weight models."""

import pytest
import torch

from densepure_viz.engine.diffusion import noised_start
from densepure_viz.engine.purify import (
    PurifyConfig,
    PurifyFrame,
    PurifyResult,
    densepure_labels,
    purify,
    purify_stream,
    reverse,
    start_draws,
)
from densepure_viz.engine.seeding import Stream
from densepure_viz.smoothing.base import bare_base
from densepure_viz.engine.votes import majority_vote, vote_counts


@pytest.fixture()
def image(tiny_models):
    return torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(1))


def test_majority_vote_and_tie_rule():
    labels = torch.tensor([[1, 2, 2, 1], [3, 3, 0, 9], [5, 5, 5, 5]])
    assert vote_counts(labels, 10)[1].tolist() == [1, 0, 0, 2, 0, 0, 0, 0, 0, 1]
    assert majority_vote(labels, 10).tolist() == [1, 3, 5]  # 1-1 tie between 1 and 2 goes to 1


@pytest.mark.slow
def test_purify_reproduces_with_the_same_seed(tiny_models, image):
    cfg = PurifyConfig(sigma=0.25, seeds=4, sampler="fast", steps=5)
    a, b = purify(tiny_models, image, cfg, seed=3), purify(tiny_models, image, cfg, seed=3)
    torch.testing.assert_close(a.purified, b.purified, rtol=0, atol=0)
    assert a.per_seed == b.per_seed
    c = purify(tiny_models, image, cfg, seed=4)
    assert not torch.equal(a.purified, c.purified)


def _final(models, image, cfg, seed_ids, draws):
    t_star, steps = cfg.plan(models)
    traj = start_draws(models, image, cfg.sigma, t_star, 0, Stream.ESTIMATE, draws)
    *_, last = reverse(models, traj, steps, seed_ids)
    return last.prev_sample.view(len(draws), len(seed_ids), *image.shape)


@pytest.mark.slow
def test_batched_seeds_equal_separate_runs(tiny_models, image):
    cfg = PurifyConfig(sigma=0.5, seeds=4, sampler="fast", steps=4)
    draws = torch.arange(5)
    batched = _final(tiny_models, image, cfg, range(4), draws)
    for k in range(4):
        alone = _final(tiny_models, image, cfg, [k], draws)[:, 0]
        torch.testing.assert_close(batched[:, k], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_draws_do_not_depend_on_batch_company(tiny_models, image):
    """Draw 40's trajectories are the same computed alone or among 70 others (chunking, early stop, resume)."""
    cfg = PurifyConfig(sigma=0.5, seeds=3, sampler="fast", steps=3)
    many = _final(tiny_models, image, cfg, range(3), torch.arange(70))
    alone = _final(tiny_models, image, cfg, range(3), torch.tensor([40]))
    torch.testing.assert_close(many[40], alone[0], atol=1e-5, rtol=1e-5)
    small = densepure_labels(tiny_models, image, cfg, 0, Stream.ESTIMATE, torch.arange(70), max_batch=7)
    large = densepure_labels(tiny_models, image, cfg, 0, Stream.ESTIMATE, torch.arange(70), max_batch=4096)
    assert torch.equal(small, large) and small.shape == (70, 3)


def test_seeds_share_the_smoothing_noise_and_start(tiny_models, image):
    cfg = PurifyConfig(sigma=0.5, seeds=4)
    t_star, _ = cfg.plan(tiny_models)
    traj = start_draws(tiny_models, image, 0.5, t_star, 0, Stream.PURIFY, torch.tensor([0]))
    ab = tiny_models.scheduler.alphas_cumprod[t_star].item()
    torch.testing.assert_close(traj.x_start, noised_start(traj.noisy, ab))
    delta = traj.noisy - image
    assert delta.std().item() == pytest.approx(0.5, rel=0.3)  # 64 values of N(0, 0.25)


def test_one_shot_seeds_agree_and_first_frame_is_one_shot(tiny_models, image):
    one = purify(tiny_models, image, PurifyConfig(sigma=0.5, seeds=3, sampler="one-shot"), seed=0)
    assert len(one.frames) == 1
    torch.testing.assert_close(one.purified[0], one.purified[2])
    fast = purify(tiny_models, image, PurifyConfig(sigma=0.5, seeds=3, sampler="fast", steps=4), seed=0)
    torch.testing.assert_close(fast.frames[0].x0, one.purified)  # same noise draw, same x0 at t*
    assert fast.one_shot_label == one.label


@pytest.mark.slow
def test_stream_yields_each_step_then_the_result(tiny_models, image):
    cfg = PurifyConfig(sigma=0.25, seeds=2, sampler="fast", steps=6)
    items = list(purify_stream(tiny_models, image, cfg, seed=0))
    frames, result = items[:-1], items[-1]
    assert all(isinstance(f, PurifyFrame) for f in frames) and isinstance(result, PurifyResult)
    assert [f.t for f in frames] == result.timesteps and len(frames) == 6
    assert frames[0].x_t.shape == (2, 1, 8, 8)
    torch.testing.assert_close(frames[-1].x0, result.purified)
    assert sum(result.votes.values()) == 2 and result.label == majority_vote(torch.tensor(result.per_seed), 10).item()


def test_frames_carry_the_labels_of_the_steps_asked_for(tiny_models, image):
    """The viewer's trajectory colours come from the engine: the classifier on each asked step's x0, nothing else."""
    cfg = PurifyConfig(sigma=0.25, seeds=3, sampler="fast", steps=6)
    *frames, result = purify_stream(tiny_models, image, cfg, seed=1, label_steps={0, 2, 5})
    for frame in frames:
        expected = tiny_models.predict(frame.x0).tolist() if frame.step in (0, 2, 5) else None
        assert frame.labels == expected
    assert frames[-1].labels == result.per_seed  # the last step's x0 is the purified image
    plain = purify(tiny_models, image, cfg, seed=1)
    assert plain.per_seed == result.per_seed and all(f.labels is None for f in plain.frames)  # labels change nothing


def test_purify_equals_engine_labels(tiny_models, image):
    cfg = PurifyConfig(sigma=0.5, seeds=5, sampler="fast", steps=3)
    result = purify(tiny_models, image, cfg, seed=2)
    labels = densepure_labels(tiny_models, image, cfg, 2, Stream.PURIFY, torch.tensor([0]))
    assert labels[0].tolist() == result.per_seed


def test_bare_base_classifies_the_noisy_input(tiny_models, image):
    base = bare_base(tiny_models, image, sigma=1e-6, seed=0)
    expected = tiny_models.predict(image[None]).item()
    assert base(Stream.ESTIMATE, torch.arange(4)).tolist() == [expected] * 4


@pytest.mark.parametrize("kwargs", [dict(sigma=-1), dict(sigma=float("nan")), dict(seeds=0), dict(seeds=10**6),
                                    dict(sampler="ddim"), dict(steps=0), dict(steps=10**6)])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        PurifyConfig(**kwargs)


@pytest.mark.slow
def test_a_batch_of_images_equals_one_call_per_image(tiny_models):
    images = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(7))
    cfg = PurifyConfig(sigma=0.5, seeds=3, sampler="fast", steps=3)
    draws = torch.arange(5)
    batched = densepure_labels(tiny_models, images, cfg, 0, Stream.ESTIMATE, draws, max_batch=6)
    for i in range(5):
        alone = densepure_labels(tiny_models, images[i], cfg, 0, Stream.ESTIMATE, draws[i : i + 1])
        assert batched[i].tolist() == alone[0].tolist()


def test_every_draw_comes_from_a_cpu_generator_whatever_the_device():
    """The same seed tells the same story on a GPU: noise is drawn on the CPU and moved. A device that cannot hold a
    generator at all (meta, like CUDA initialised nowhere) still receives the draws, with the CPU's shapes."""
    from densepure_viz.engine.seeding import BlockNoise, gaussian_stream, make_generator

    assert make_generator(0, Stream.PURIFY).device.type == "cpu"
    draws = torch.tensor([0, 1, 40])
    cpu = BlockNoise(3, Stream.ESTIMATE, draws, (1, 4, 4), torch.device("cpu"))
    meta = BlockNoise(3, Stream.ESTIMATE, draws, (1, 4, 4), torch.device("meta"))
    assert meta.smoothing().device.type == "meta" and meta.smoothing().shape == cpu.smoothing().shape == (3, 1, 4, 4)
    stream = gaussian_stream((2, 3), make_generator(5, Stream.ATTACK_EOT), torch.device("meta"))
    assert next(stream).device.type == "meta"
    again = gaussian_stream((2, 3), make_generator(5, Stream.ATTACK_EOT), torch.device("cpu"))
    assert torch.equal(next(again), torch.randn((2, 3), generator=make_generator(5, Stream.ATTACK_EOT)))
