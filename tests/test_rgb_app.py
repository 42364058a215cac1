"""The app's endpoints at 32x32 RGB: the cifar10 preset on its exact-architecture random-weight replicas, served.

/purify and /certify answer with CIFAR-10's class names and match the engine on the same seeds; the views that only
the digits model can fill say why in one line (High-density points need a training set; the samples, the drawing
pad and the stories are digits, which the colour model still reads, converted). Sizes are tiny (K <= 2, b <= 2,
n <= 10): one CIFAR-size UNet call takes about a second on 2 CPU cores.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from densepure_viz.engine.purify import PurifyConfig, purify
from densepure_viz.models.inputs import load_input
from densepure_viz.models.registry import CIFAR10_LABELS
from densepure_viz.paths import ASSETS
from densepure_viz.serving.api import CertifyRequest, DensityRequest, PurifyRequest, arguments
from densepure_viz.serving.ui import build_app
from densepure_viz.serving.ui.app import launch_options

pytestmark = pytest.mark.slow  # the 35.7M UNet and a live server
DIGIT = sorted((ASSETS / "samples" / "digits").glob("*.png"))[0]


def write_rgb(path: Path, seed: int) -> Path:
    """A seeded 32x32 colour picture (every channel differs)."""
    coarse = np.random.default_rng(seed).integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    Image.fromarray(coarse).resize((32, 32), Image.Resampling.BILINEAR).save(path)
    return path


@pytest.fixture(scope="module")
def served(rgb_models, tiny_models):
    """(demo, client) of the app offering digits (tiny models) and cifar10 (the replicas), on the CPU."""
    models = {"digits": tiny_models, "cifar10": rgb_models}
    demo = build_app(loader=lambda name, device: models[name], names=("digits", "cifar10"), device="cpu")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
    yield demo, Client(f"http://127.0.0.1:{port}/", verbose=False)
    demo.close()


def test_purify_at_32x32_rgb_names_the_class_and_matches_the_engine(served, rgb_models, tmp_path):
    _, client = served
    image = write_rgb(tmp_path / "blob.png", 0)
    request = PurifyRequest(handle_file(str(image)), "cifar10", 0.25, 2, "fast", 2, 3)
    outputs = client.predict(**arguments(request), api_name="/purify")
    out, verdict = outputs[6], outputs[5]
    x = load_input(image, rgb_models)
    result = purify(rgb_models, x, PurifyConfig(sigma=0.25, seeds=2, steps=2, sampler="fast"), seed=3)
    assert (out["label"], out["per_seed"], out["t_star"]) == (result.label, result.per_seed, result.t_star)
    assert out["label_name"] == CIFAR10_LABELS[out["label"]] and out["model"] == "cifar10"
    assert sum(out["votes"].values()) == 2
    assert "32x32, colour" in verdict and CIFAR10_LABELS[out["label"]] in verdict


def test_certify_at_32x32_rgb_names_the_class(served, tmp_path):
    _, client = served
    image = write_rgb(tmp_path / "blob.png", 1)
    request = CertifyRequest(handle_file(str(image)), "cifar10", 0.25, 1, "fast", 1, 0, n0=2, n=10, alpha=0.1,
                             compare=True)
    out = client.predict(**arguments(request), api_name="/certify")[3]
    densepure = out["densepure"]
    assert sum(densepure["counts"]) == densepure["draws_used"] <= 10 and len(densepure["counts"]) == 10
    assert densepure["label_name"] == (None if densepure["label"] is None else CIFAR10_LABELS[densepure["label"]])
    for method in ("one_shot", "bare"):  # fixed n on the same draws
        assert sum(out[method]["counts"]) == 10 and out[method]["n"] == 10


def test_a_digit_sample_is_read_in_colour_by_the_rgb_model(served):
    """The gallery's digits are 16x16 grey: the colour model gets them converted, and says so."""
    _, client = served
    request = PurifyRequest(handle_file(str(DIGIT)), "cifar10", 0.5, 1, "fast", 1, 0)
    outputs = client.predict(**arguments(request), api_name="/purify")
    assert outputs[6]["label_name"] in CIFAR10_LABELS
    assert "32x32, colour" in outputs[5] and "resized" in outputs[5].lower()


def test_digits_only_views_say_why_in_one_line(served):
    demo, client = served
    with pytest.raises(Exception) as refused:
        client.predict(**arguments(DensityRequest(handle_file(str(DIGIT)), "cifar10", 0.5, 1, "fast", 1, 0, draws=1)),
                       api_name="/density")
    message = str(refused.value)
    assert "no local training set for model 'cifar10'; projections are available for 'digits'" in message
    assert "Traceback" not in message and "\n" not in message.strip()
    check_model = next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "check_model")
    _, status = check_model("cifar10")
    assert "**cifar10** loaded (32x32, 3 channel(s), 10 classes)" in status
    assert "The samples, the drawing pad and the stories are handwritten digits" in status
    assert "High-density points need the model's training set" in status
    _, status = check_model("digits")
    assert "handwritten digits" not in status  # the embedded model fills every view
