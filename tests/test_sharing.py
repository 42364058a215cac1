"""Identical requests computed once (densepure_viz.serving.sharing) and served bit for bit as the uncached path."""

from __future__ import annotations

import os
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from bench.load import classroom_plan, run_users, table
from densepure_viz.models.inputs import load_input
from densepure_viz.paths import ASSETS
from densepure_viz.models.registry import custom_spec, load_models
from densepure_viz.engine.purify import PurifyConfig, PurifyResult, purify_stream
from densepure_viz.serving.api import PurifyRequest, arguments
from densepure_viz.serving.sharing import SharedResults, file_digest
from densepure_viz.serving.ui.purify_tab import PurifyOutputs, make_handler, shown_after
from densepure_viz.serving.ui.requests import no_progress
from densepure_viz.serving.ui.session import AppContext, ModelPool

SAMPLES = sorted((ASSETS / "samples" / "digits").glob("*.png"))
REQUEST = PurifyRequest(model="digits", sigma=0.5, seeds=3, sampler="fast", steps=4, seed=7, attack="none")


def test_a_published_result_is_handed_to_later_claims():
    store = SharedResults[int]()
    first = store.claim("k")
    assert first.owner and first.value is None
    first.publish(42)
    first.release()  # no-op after publish
    again = store.claim("k")
    assert (again.value, again.owner, store.computed, store.shared) == (42, False, 1, 1)
    assert store.claim("other").owner


def test_simultaneous_identical_claims_compute_once():
    store, calls, started = SharedResults[int](), [], threading.Event()
    answers: list[int] = []

    def request():
        claim = store.claim("same")
        if claim.value is not None:
            answers.append(claim.value)
            return
        try:
            calls.append(1)
            started.set()
            threading.Event().wait(0.2)  # still computing while the others arrive
            claim.publish(7)
            answers.append(7)
        finally:
            claim.release()

    threads = [threading.Thread(target=request) for _ in range(8)]
    threads[0].start()
    started.wait(5)
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(10)
    assert (len(calls), answers, store.shared) == (1, [7] * 8, 7)


def test_a_failed_computation_leaves_the_key_to_a_waiting_request():
    store = SharedResults[int]()
    owner = store.claim("k")
    result: list = []
    waiter = threading.Thread(target=lambda: result.append(store.claim("k")))
    waiter.start()
    owner.release()  # failed or cancelled: nothing published
    waiter.join(5)
    assert result and result[0].owner and result[0].value is None and store.computed == 0


def test_the_store_keeps_the_most_recently_used_results():
    store = SharedResults[str](capacity=2)
    for key in "abc":
        store.claim(key).publish(key)
        if key == "b":
            assert store.claim("a").value == "a"  # a is now more recent than b
    assert store.claim("a").value == "a" and store.claim("c").value == "c" and store.claim("b").owner


def test_file_digest_names_the_bytes(tmp_path):
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    a.write_bytes(b"x" * 10)
    b.write_bytes(b"x" * 10)
    c.write_bytes(b"y" * 10)
    assert file_digest(a) == file_digest(b) != file_digest(c)


# --- the purify view ------------------------------------------------------------------------------------------


@pytest.fixture
def counted(tiny_dirs):
    """Own copies of the tiny models with a UNet call counter, and an app context over them."""
    models = load_models(custom_spec(str(tiny_dirs[0]), str(tiny_dirs[1])), device="cpu")
    calls = [0]
    models.unet.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return models, calls, AppContext(pool=ModelPool(lambda name, device: models, ("digits",), "cpu"))


def _pixels(value) -> np.ndarray:
    image = value if isinstance(value, Image.Image) else Image.open(value)
    return np.asarray(image.convert("RGB"))


def _run(ctx, image, **changes):
    return list(make_handler(ctx)(**arguments(replace(REQUEST, image=image, **changes)), progress=no_progress))


@pytest.mark.skipif(not SAMPLES, reason="no shipped samples")
def test_the_same_purification_again_is_shared_and_equal_bit_for_bit(counted, tiny_dirs):
    models, calls, ctx = counted
    image = str(SAMPLES[0])
    first = _run(ctx, image)
    per_request = calls[0]
    again = _run(ctx, image)
    assert calls[0] == per_request > 0, "the second request ran the networks"
    assert len(again) == len(first) and ctx.shared.shared == 1  # the same frames (streams compared over the API below)
    shared, computed = PurifyOutputs(*again[-1]), PurifyOutputs(*first[-1])

    # the engine's own result on a fresh context (nothing shared), the reference
    *frames, expected = purify_stream(models, load_input(image, models), PurifyConfig(0.5, 3, "fast", 4), 7)
    assert isinstance(expected, PurifyResult)
    for out in (shared, computed):
        assert out.result == computed.result and out.result["per_seed"] == expected.per_seed
        for i, frame in enumerate(frames):
            assert torch.equal(out.scrub_state["x_t"][i], frame.x_t) and torch.equal(out.scrub_state["x0"][i], frame.x0)
    uncached = PurifyOutputs(*_run(AppContext(pool=ctx.pool), image)[-1])
    for name in ("grid", "scrub_image"):
        assert np.array_equal(_pixels(getattr(shared, name)), _pixels(getattr(uncached, name))), name
    shown, shown_uncached = PurifyOutputs(*shown_after(again)), PurifyOutputs(*shown_after(_run(AppContext(pool=ctx.pool), image)))
    for name in ("clean", "adversarial", "noisy"):  # the inputs come with the first frame, the noisy one with the last
        assert np.array_equal(_pixels(getattr(shown, name)["value"]), _pixels(getattr(shown_uncached, name)["value"])), name
    assert shared.verdict == uncached.verdict and shared.scrub == uncached.scrub


@pytest.mark.skipif(not SAMPLES, reason="no shipped samples")
def test_a_different_seed_or_file_is_computed_anew(counted, tmp_path):
    models, calls, ctx = counted
    _run(ctx, str(SAMPLES[0]))
    before = calls[0]
    _run(ctx, str(SAMPLES[0]), seed=8)
    assert calls[0] == 2 * before
    renamed = tmp_path / "upload.png"  # the same picture without its label in the name: another verdict
    renamed.write_bytes(SAMPLES[0].read_bytes())
    last = PurifyOutputs(*_run(ctx, str(renamed))[-1])
    assert calls[0] == 3 * before and last.result["true_label"] == -1


@pytest.mark.slow
@pytest.mark.skipif(not SAMPLES, reason="no shipped samples")
def test_six_simultaneous_identical_users_are_computed_once(counted):
    """A class sending the Purify view's defaults at once: no error, the networks run for one request only."""
    from test_app_client import free_port

    from densepure_viz.serving.ui import build_app
    from densepure_viz.serving.ui.app import launch_options

    models, calls, _ = counted
    demo = build_app(loader=lambda name, device: models, names=("digits",), device="cpu")
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
    try:
        run = run_users(f"http://127.0.0.1:{port}/", users=6, requests=1, pid=os.getpid(), deadline_s=120,
                        image=SAMPLES[0], plan=classroom_plan)
        assert run.errors == 0 and len(run.requests) == 6, table([run])
        engine = calls[0]
        ctx = AppContext(pool=ModelPool(lambda name, device: models, ("digits",), "cpu"))
        request = classroom_plan(0, 0, str(SAMPLES[0]), "digits")[1]
        list(make_handler(ctx)(**arguments(request), progress=no_progress))
        assert engine == calls[0] - engine > 0, "six identical requests ran the networks more than once"
    finally:
        demo.close()


def _comparable(value):
    """An output as a client received it, with image files read as pixels (a shared answer's PNGs live elsewhere)."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k not in ("url", "path", "orig_name")}
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    if isinstance(value, str) and os.path.isfile(value) and value.endswith((".png", ".webp")):
        return _pixels(value).tobytes()
    return value


@pytest.mark.slow
@pytest.mark.skipif(not SAMPLES, reason="no shipped samples")
def test_a_shared_answer_streams_exactly_what_the_computed_one_did(counted, monkeypatch):
    """Over the API: the repeat of a request gets every frame of the first, the input images included.

    The first frame sends the clean and attacked images once; a repeat that sent only the last frame left the
    previous request's digit on screen under "attacked x_a". Streaming every step (interval 0) makes many frames.
    """
    from gradio_client import handle_file
    from test_app_client import serve

    import densepure_viz.serving.ui.purify_tab as purify_tab

    monkeypatch.setattr(purify_tab, "STREAM_INTERVAL", 0.0)
    models, calls, _ = counted
    demo, client = serve(lambda name, device: models)
    try:
        streams, engine = [], []
        for image in (SAMPLES[1], SAMPLES[0], SAMPLES[1]):  # another digit in between, as in a class
            job = client.submit(**arguments(replace(REQUEST, image=handle_file(str(image)))), api_name="/purify")
            job.result()
            streams.append([_comparable(list(frame)) for frame in job.outputs()])
            engine.append(calls[0])
        computed, _, shared = streams
        assert engine[2] == engine[1] > engine[0] > 0  # the repeat ran no network: it was shared
        assert len(computed) > 2 and len(shared) == len(computed)  # the input frame, a frame per step, the result
        for i, (a, b) in enumerate(zip(computed, shared)):
            assert a == b, f"frame {i} differs"
        clean = PurifyOutputs(*shared[0]).clean
        assert isinstance(clean, dict) and clean["value"] is not None  # the repeat sends its own input image
    finally:
        demo.close()
