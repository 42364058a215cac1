"""The fast engine against the straightforward per-seed path: same seeds, same votes, same certificate, less work.

The reference (densepure_viz/experiments/reference.py) runs one pass over the noise draws per seed, recomputing the
UNet at t* and running every seed to the end. The engine shares the t* evaluation, runs seeds in rounds and
stops decided draws; the per-(draw, seed) noise streams make both give identical labels and votes.
The early-stopping rule is checked against brute-force enumeration of every way the remaining seeds
could vote. Precision and memory-format options (bfloat16 autocast, channels_last) run on CPU here:
the same code path as on a GPU.
"""

import dataclasses
from itertools import combinations_with_replacement, product

import pytest
import torch

from densepure_viz.smoothing.certify import CertifyConfig, certify
from densepure_viz.paths import ASSETS
from densepure_viz.models.registry import DensePureModels, custom_spec, load_models
from densepure_viz.engine.purify import PurifyConfig, densepure_labels, densepure_votes
from densepure_viz.smoothing.base import densepure_base
from densepure_viz.engine.runtime import EvalCounter, accelerate
from densepure_viz.engine.seeding import Stream
from densepure_viz.experiments.reference import per_seed_certify, per_seed_labels, replay
from densepure_viz.engine.votes import first_round_seeds, majority_vote, seeds_to_decide

pytestmark = pytest.mark.slow  # engine equivalence on real batches: seconds each

DIGITS_UNET = ASSETS / "digits" / "diffusion" / "unet" / "diffusion_pytorch_model.safetensors"
needs_digits = pytest.mark.skipif(not DIGITS_UNET.is_file(), reason="shipped digits model not built yet "
                                  "(python -m densepure_viz.models.train); CI has it")
CLASSES = 10


def _linear_classifier(pixels: int, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A fixed random linear map from pixels to 10 logits: small image changes flip its label, so seeds disagree."""
    linear = torch.nn.Linear(pixels, CLASSES)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(CLASSES, pixels, generator=torch.Generator().manual_seed(0)))
        linear.bias.zero_()
    return torch.nn.Sequential(torch.nn.Flatten(), linear).eval().to(dtype)


def _disagreeing(models: DensePureModels) -> DensePureModels:
    """The tiny DDPM with a classifier whose K seeds often disagree (votes need several rounds)."""
    pixels = models.channels * models.image_size**2
    return dataclasses.replace(models, classifier=_linear_classifier(pixels, models.dtype))


@pytest.fixture(scope="module")
def split_models(tiny_models):
    return _disagreeing(tiny_models)


@pytest.fixture(scope="module")
def image():
    return torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(1))


# --- the decision rule, against brute force ------------------------------------------------------


def _winner(counts: list[int]) -> int:
    """The documented tie rule, written out: most votes, smallest class index among equals."""
    return min(c for c, n in enumerate(counts) if n == max(counts))


def _decided(counts: list[int], remaining: int) -> bool:
    """Whether every way the remaining seeds could vote gives the same winner (enumerated)."""
    winners = set()
    for extra in product(range(len(counts)), repeat=remaining):
        final = list(counts)
        for label in extra:
            final[label] += 1
        winners.add(_winner(final))
    return len(winners) == 1


def _add(counts: list[int], label: int, n: int) -> list[int]:
    return [c + n * (i == label) for i, c in enumerate(counts)]


@pytest.mark.parametrize("k", range(1, 7))
def test_seeds_to_decide_is_the_fewest_seeds_that_can_fix_the_vote(k):
    classes = 3
    for done in range(k + 1):
        for labels in combinations_with_replacement(range(classes), done):
            counts = [labels.count(c) for c in range(classes)]
            remaining = k - done
            s = int(seeds_to_decide(torch.tensor([counts]), torch.tensor([remaining]))[0])
            assert (s == 0) == _decided(counts, remaining), (counts, remaining)
            if s == 0:
                continue
            leader = _winner(counts)
            assert _decided(_add(counts, leader, s), remaining - s)  # s seeds voting for the leader decide it
            for extra in product(range(classes), repeat=s - 1):  # and no outcome of s - 1 seeds does
                fewer = counts
                for label in extra:
                    fewer = _add(fewer, label, 1)
                assert not _decided(fewer, remaining - s + 1), (counts, remaining, extra)


@pytest.mark.parametrize("k", range(1, 10))
def test_first_round_is_the_fewest_seeds_that_can_decide(k):
    r, last_class = first_round_seeds(k), 2  # the largest index gets no help from the tie rule
    assert _decided(_add([0, 0, 0], last_class, r), k - r)
    assert not _decided(_add([0, 0, 0], last_class, r - 1), k - r + 1)


# --- same votes, same certificate as the per-seed reference --------------------------------------


@pytest.mark.parametrize("k", [1, 2, 5, 8])
@pytest.mark.parametrize("sampler", ["fast", "one-shot"])
@pytest.mark.parametrize("max_batch", [None, 7])
def test_votes_equal_the_per_seed_majority(split_models, image, k, sampler, max_batch):
    cfg = PurifyConfig(sigma=0.5, seeds=k, sampler=sampler, steps=3)
    draws = torch.arange(20, 60)  # two generator blocks
    reference = per_seed_labels(split_models, image, cfg, 0, Stream.ESTIMATE, draws)
    votes = densepure_votes(split_models, image, cfg, 0, Stream.ESTIMATE, draws, max_batch=max_batch)
    assert torch.equal(votes, majority_vote(reference, CLASSES))
    assert torch.equal(densepure_labels(split_models, image, cfg, 0, Stream.ESTIMATE, draws), reference)


def test_votes_on_a_batch_of_images_equal_one_call_per_image(split_models):
    """The model card's route: one image per draw, chunked, with draws decided in different rounds."""
    images = torch.rand(9, 1, 8, 8, generator=torch.Generator().manual_seed(7))
    cfg, draws = PurifyConfig(sigma=0.5, seeds=5, steps=3), torch.arange(9)
    batched = densepure_votes(split_models, images, cfg, 0, Stream.ESTIMATE, draws, max_batch=12)
    alone = [densepure_votes(split_models, images[i], cfg, 0, Stream.ESTIMATE, draws[i : i + 1]) for i in range(9)]
    assert batched.tolist() == torch.cat(alone).tolist()


def test_undecided_draws_continue_in_rounds(split_models, image):
    """On disagreeing seeds some draws need more than the first round, and still get the full-K vote."""
    cfg = PurifyConfig(sigma=0.5, seeds=8, steps=3)
    _, timesteps = cfg.plan(split_models)
    draws = torch.arange(64)
    counter = EvalCounter()
    votes = densepure_votes(split_models, image, cfg, 0, Stream.ESTIMATE, draws, counter=counter)
    rounds = [n for t, n in counter.unet_calls if t == timesteps[1]]
    assert len(rounds) >= 2 and rounds[0] == 64 * first_round_seeds(8) and sum(rounds) < 64 * 8
    assert torch.equal(votes, majority_vote(per_seed_labels(split_models, image, cfg, 0, Stream.ESTIMATE, draws), 10))


@pytest.mark.parametrize(("sigma", "seed", "certified"), [(0.1, 2, True), (0.5, 1, False)])
def test_certificate_equals_the_per_seed_reference(split_models, sigma, seed, certified):
    x = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(seed))
    cfg, ccfg = PurifyConfig(sigma=sigma, seeds=5, steps=3), CertifyConfig(n0=10, n=50)
    fast = certify(densepure_base(split_models, x, cfg, 0), CLASSES, sigma, ccfg, chunk=16)
    slow = per_seed_certify(split_models, x, cfg, ccfg, 0)
    assert fast == slow
    assert (fast.radius > 0) == certified  # one certified input with a radius, one abstention


# --- fewer evaluations ----------------------------------------------------------------------------


def test_early_stopping_evaluates_fewer_unet_images(tiny_models, image):
    """tiny_models' classifier labels every purified image alike: every vote is decided after the first round."""
    cfg = PurifyConfig(sigma=0.5, seeds=8, steps=4)
    m, b, k, r = 20, 4, 8, first_round_seeds(8)
    counts = {name: EvalCounter() for name in ("votes", "labels", "reference")}
    draws = torch.arange(m)
    densepure_votes(tiny_models, image, cfg, 0, Stream.ESTIMATE, draws, counter=counts["votes"])
    densepure_labels(tiny_models, image, cfg, 0, Stream.ESTIMATE, draws, counter=counts["labels"])
    per_seed_labels(tiny_models, image, cfg, 0, Stream.ESTIMATE, draws, counter=counts["reference"])
    assert counts["reference"].unet_images == m * k * b  # the naive count: every seed recomputes t*
    assert counts["labels"].unet_images == m + m * k * (b - 1)  # t* shared by the K seeds of a draw
    assert counts["votes"].unet_images == m + m * r * (b - 1)  # and only the first round runs
    assert counts["votes"].classifier_images == m * r


def test_replay_repeats_the_recorded_network_calls(split_models, image):
    counter = EvalCounter()
    densepure_votes(split_models, image, PurifyConfig(seeds=5, steps=3), 0, Stream.ESTIMATE, torch.arange(30),
                    counter=counter)
    floor = replay(split_models, counter)
    assert floor.unet_calls == counter.unet_calls and floor.classifier_calls == counter.classifier_calls
    assert floor.unet_seconds > 0


# --- the GPU code path (autocast in half precision, channels_last) on CPU --------------------------


def test_bfloat16_autocast_runs_and_mostly_agrees(tiny_dirs, split_models, image):
    diffusion, classifier = tiny_dirs
    half = _disagreeing(load_models(custom_spec(str(diffusion), str(classifier)), device="cpu", dtype=torch.bfloat16))
    assert next(half.unet.parameters()).dtype == torch.bfloat16
    cfg, draws = PurifyConfig(sigma=0.5, seeds=5, steps=3), torch.arange(64)
    counter = EvalCounter()
    low = densepure_votes(half, image, cfg, 0, Stream.ESTIMATE, draws, counter=counter)
    full = densepure_votes(split_models, image, cfg, 0, Stream.ESTIMATE, draws)
    assert counter.unet_images > 0 and low.dtype == torch.long
    assert (low == full).float().mean().item() >= 0.7  # a label-flipping classifier: rounding moves some votes


def test_channels_last_gives_the_same_votes(tiny_dirs, split_models, image):
    diffusion, classifier = tiny_dirs
    fast = accelerate(_disagreeing(load_models(custom_spec(str(diffusion), str(classifier)), device="cpu")),
                      channels_last=True, compile=False)
    assert fast.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    cfg, draws = PurifyConfig(sigma=0.5, seeds=4, steps=3), torch.arange(40)
    assert torch.equal(densepure_votes(fast, image, cfg, 0, Stream.ESTIMATE, draws),
                       densepure_votes(split_models, image, cfg, 0, Stream.ESTIMATE, draws))


# --- the shipped digits model ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def digit(digits_split):
    return digits_split.test_images[0]


@needs_digits
def test_digits_certificate_and_votes_equal_the_per_seed_reference(digits_models, digit):
    cfg, ccfg = PurifyConfig(sigma=0.5, seeds=4, steps=4), CertifyConfig(n0=16, n=64)
    fast_count, slow_count = EvalCounter(), EvalCounter()
    fast = certify(densepure_base(digits_models, digit, cfg, 0, counter=fast_count), CLASSES, 0.5, ccfg, chunk=32)
    slow = per_seed_certify(digits_models, digit, cfg, ccfg, 0, counter=slow_count)
    assert fast == slow
    assert fast_count.unet_images < slow_count.unet_images


@needs_digits
def test_digits_bfloat16_votes_mostly_agree(digits_models, digit):
    half = load_models("digits", device="cpu", dtype=torch.bfloat16)
    cfg, draws = PurifyConfig(sigma=0.5, seeds=4, steps=4), torch.arange(48)
    low = densepure_votes(half, digit, cfg, 0, Stream.ESTIMATE, draws)
    full = densepure_votes(digits_models, digit, cfg, 0, Stream.ESTIMATE, draws)
    assert (low == full).float().mean().item() >= 0.85
