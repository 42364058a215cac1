"""The engine's compile path (issue 23) on CPU: the same labels as eager, one graph for every timestep and batch.

torch.compile here uses a backend that records the traced graphs and runs them eagerly (no code generation:
compiling the digits UNet with inductor takes minutes on 2 cores), so the labels must be identical and the
graph count is exact. What inductor's generated kernels change is rounding; bench/gpu_check.sh measures it.
"""

import pytest
import torch
from torch._dynamo.testing import CompileCounter

from densepure_viz.engine.purify import PurifyConfig, densepure_labels, densepure_votes
from densepure_viz.engine.runtime import (
    BUCKET_STEP, COMPILE_ENV, MAX_GPU_BATCH, MIN_BUCKET, accelerate, batch_bucket, compile_mode, unet_eps,
)
from densepure_viz.engine.seeding import Stream
from densepure_viz.errors import InputError
from densepure_viz.models.registry import load_models


def test_a_tensor_timestep_gives_the_int_timesteps_output_bit_for_bit(tiny_models):
    x = torch.randn(5, tiny_models.channels, tiny_models.image_size, tiny_models.image_size,
                    generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(unet_eps(tiny_models, x, 37), tiny_models.unet(x, 37).sample)


def test_buckets_hold_the_batch_and_are_few():
    sizes = range(1, MAX_GPU_BATCH + 1)
    buckets = {batch_bucket(n) for n in sizes}
    assert all(batch_bucket(n) >= max(n, MIN_BUCKET) for n in sizes)
    assert all(batch_bucket(n) < 2 * n for n in sizes if n > MIN_BUCKET)  # padding at most doubles the work
    assert len(buckets) == 2 + MAX_GPU_BATCH // BUCKET_STEP  # 64, 128, then every multiple of 256


@pytest.mark.parametrize(("env", "mode"), [(None, None), ("0", None), ("1", "default"), ("max-autotune", "max-autotune")])
def test_compile_mode_reads_the_environment(monkeypatch, env, mode):
    if env is None:
        monkeypatch.delenv(COMPILE_ENV, raising=False)
    else:
        monkeypatch.setenv(COMPILE_ENV, env)
    assert compile_mode(None) == mode
    assert compile_mode(False) is None and compile_mode("reduce-overhead") == "reduce-overhead"


def test_an_unknown_mode_is_an_input_error():
    with pytest.raises(InputError, match="compile mode must be one of"):
        compile_mode("fastest")


@pytest.mark.slow  # tracing the digits UNet: ~10 s
def test_compiled_digits_give_eager_labels_with_one_unet_graph(digits_models, digits_split):
    image, cfg = digits_split.test_images[0], PurifyConfig(sigma=0.5, seeds=4, steps=4)
    draws = torch.arange(24)
    eager = densepure_labels(digits_models, image, cfg, 0, Stream.ESTIMATE, draws)
    eager_votes = densepure_votes(digits_models, image, cfg, 0, Stream.ESTIMATE, draws)
    graphs = CompileCounter()
    compiled = accelerate(load_models("digits", device="cpu"), channels_last=False, compile=True, backend=graphs)
    assert torch.equal(densepure_labels(compiled, image, cfg, 0, Stream.ESTIMATE, draws), eager)
    unet_and_classifier = graphs.frame_count
    # other batch sizes (24 draws at t*, 96 and 72 chains, rounds of votes) and other timesteps: no new graph
    assert torch.equal(densepure_labels(compiled, image, cfg, 0, Stream.ESTIMATE, draws, max_batch=72), eager)
    assert torch.equal(densepure_votes(compiled, image, cfg, 0, Stream.ESTIMATE, draws), eager_votes)
    with torch.inference_mode():
        unet_eps(compiled, torch.zeros(300, 1, 16, 16), 999)
    assert graphs.frame_count == unet_and_classifier == 2


def test_the_gpu_checks_story_section_compares_devices_and_reports_identity_on_the_cpu():
    """bench/gpu_check.py's section 4, run with the CPU as the "device": every shipped Purify story is the same story."""
    from bench.gpu_check import stories_section
    from densepure_viz.serving.api import view_stories

    table = stories_section(torch.device("cpu"), "eager", dtypes=(torch.float32,))
    rows = table.splitlines()[4:]  # after the title, a blank line, the head and the rule
    assert rows and all(line.endswith("| 8/8 | same story |") for line in rows), table
    assert [line.split(" | ")[0].removeprefix("| ") for line in rows] == [s.key for s in view_stories("purify")]
