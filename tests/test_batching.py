"""Concurrent requests computed together (densepure_viz.engine.batching): every request's numbers bit for bit as alone.

On a CPU a row's network output depends on the batch it is computed in (oneDNN and MKL choose their algorithm by
batch size and thread count), so the batcher concatenates only shapes it has verified. These tests hold it to the
contract with networks that are batch-independent (they are batched), batch-dependent (they are not) and failing
(only the failing call sees its error), then run real purifications at once, engine and Purify handler, against
their solo runs. No test measures time: rounds are made deterministic by opening every session first, and the
gathering wait is long, so a round always waits for every open session.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
import torch

from densepure_viz.engine.batching import NetworkBatcher, batched
from densepure_viz.engine.purify import PurifyConfig, PurifyFrame, PurifyResult, purify_stream
from densepure_viz.models.inputs import load_input
from densepure_viz.paths import ASSETS
from densepure_viz.serving.api import PurifyRequest, arguments
from densepure_viz.serving.ui.purify_tab import PurifyOutputs, make_handler, stream_interval
from densepure_viz.serving.ui.requests import no_progress
from densepure_viz.serving.ui.session import BATCH_SESSIONS, AppContext, ModelPool

SAMPLES = sorted(str(p) for p in (ASSETS / "samples" / "digits").glob("*.png"))
LONG_WAIT = 60.0  # the gathering wait in these tests: a round waits for every open session (never reached)


@dataclass
class Out:
    sample: torch.Tensor


class RowWise(torch.nn.Module):
    """A UNet stand-in whose rows never depend on the batch: each is x * 0.5 + t / 1000."""

    config = SimpleNamespace(in_channels=1, sample_size=4)

    def forward(self, x, t):
        return Out(x * 0.5 + t.view(-1, 1, 1, 1).float() / 1000)


class BatchDependent(RowWise):
    """A stand-in whose rows change with the batch size, as a CPU convolution's bits can."""

    def forward(self, x, t):
        return Out(x * 0.5 + t.view(-1, 1, 1, 1).float() / 1000 + len(x) * 1e-3)


class Picky(RowWise):
    """A stand-in that fails on any batch holding a NaN (one request's bad rows)."""

    def forward(self, x, t):
        if torch.isnan(x).any():
            raise ValueError("NaN input")
        return super().forward(x, t)


def stand_in(unet: torch.nn.Module) -> SimpleNamespace:
    """What a batcher session reads of DensePureModels: the networks, the device, the image shape."""
    return SimpleNamespace(unet=unet, classifier=torch.nn.Identity(), device=torch.device("cpu"), channels=1, image_size=4)


def calls_of(i: int, steps: int = 3, rows: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Session i's UNet calls: its own inputs and timestep per step."""
    gen = torch.Generator().manual_seed(i)
    return [(torch.randn(rows, 1, 4, 4, generator=gen), torch.full((rows,), 100 * i + s)) for s in range(steps)]


def run_sessions(batcher: NetworkBatcher, models, inputs: list[list],
                 caught: type[Exception] = ValueError) -> dict[int, list]:
    """Each session's calls in its own thread, all sessions opened first (so every round waits for all of them).

    Returns each session's outputs (or the `caught` exception a call raised), in order.
    """
    results: dict[int, list] = {i: [] for i in range(len(inputs))}

    def work(i: int, view) -> None:
        for x, t in inputs[i]:
            with torch.inference_mode():
                try:
                    results[i].append(view.unet(x, t).sample)
                except caught as exc:
                    results[i].append(exc)

    in_threads(batcher, models, [lambda view, i=i: work(i, view) for i in range(len(inputs))])
    return results


def in_threads(batcher: NetworkBatcher, models, bodies: list) -> None:
    """body(view) of each session in its own thread; every session is opened first, each closes as its body ends."""
    sessions = [batcher.session(models) for _ in bodies]
    views = [s.__enter__() for s in sessions]

    def run(i: int) -> None:
        try:
            bodies[i](views[i])
        finally:
            sessions[i].__exit__(None, None, None)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(LONG_WAIT)
    assert not any(t.is_alive() for t in threads), "a session was left waiting"


def sessions_as_alone(unet, sessions: int = 4):
    """Run `sessions` sessions' calls at once through a batcher; every output must be what its call gives alone.
    Returns the batcher's stats."""
    batcher = NetworkBatcher(gather_s=LONG_WAIT)
    inputs = [calls_of(i) for i in range(sessions)]
    results = run_sessions(batcher, stand_in(unet), inputs)
    for i, outputs in results.items():
        for (x, t), out in zip(inputs[i], outputs):
            assert torch.equal(out, unet(x, t).sample)  # what the call gives alone
    return batcher.stats


def test_batch_independent_calls_run_as_one_batch_per_round():
    s = sessions_as_alone(RowWise())
    assert (s.rounds, s.calls, s.runs, s.batched, s.largest_round, s.probes) == (3, 12, 3, 12, 4, 1)


def test_calls_whose_bits_would_change_in_a_batch_run_alone():
    s = sessions_as_alone(BatchDependent())
    # 4 and 2 calls probed once each and found to differ; then every call alone, rounds still gathered
    assert (s.rounds, s.runs, s.batched, s.largest_round, s.probes) == (3, 12, 0, 4, 2)


def test_a_failing_call_fails_alone():
    batcher, unet = NetworkBatcher(gather_s=LONG_WAIT), Picky()
    inputs = [calls_of(i) for i in range(4)]
    inputs[2][1] = (torch.full((2, 1, 4, 4), float("nan")), inputs[2][1][1])  # session 2's second call
    results = run_sessions(batcher, stand_in(unet), inputs)
    for i, outputs in results.items():
        for s, ((x, t), out) in enumerate(zip(inputs[i], outputs)):
            if (i, s) == (2, 1):
                assert isinstance(out, ValueError)
            else:
                assert torch.equal(out, unet(x, t).sample)


def test_a_closed_session_is_not_waited_for():
    """A request cancelled mid-run closes its session: the others' rounds go on without it at once."""
    batcher, unet = NetworkBatcher(gather_s=LONG_WAIT), RowWise()
    inputs = [calls_of(i) for i in range(3)]
    results: dict[int, list] = {i: [] for i in range(3)}
    cancelled = batcher.session(stand_in(unet))
    view = cancelled.__enter__()
    with batcher.session(stand_in(unet)) as a, batcher.session(stand_in(unet)) as b:
        def work(i, v):
            for x, t in inputs[i]:
                with torch.inference_mode():
                    results[i].append(v.unet(x, t).sample)

        threads = [threading.Thread(target=work, args=(i, v)) for i, v in ((0, a), (1, b))]
        for t in threads:
            t.start()
        with torch.inference_mode():
            results[2].append(view.unet(*inputs[2][0]).sample)  # one call, then the request is cancelled
        cancelled.__exit__(None, None, None)
        for t in threads:
            t.join(LONG_WAIT)
        assert not any(t.is_alive() for t in threads), "the open sessions waited for the closed one"
        worker = batcher._worker
    for i in range(3):
        for (x, t), out in zip(inputs[i], results[i]):
            assert torch.equal(out, unet(x, t).sample)
    assert batcher.stats.largest_round == 3
    worker.join(LONG_WAIT)
    assert not worker.is_alive()  # the worker ends with the last session


def test_a_fault_of_the_batcher_fails_its_round_only(monkeypatch):
    """Nobody waits forever: the round's callers get the error, and the next round is served."""
    batcher, unet = NetworkBatcher(gather_s=LONG_WAIT), RowWise()
    real, faults = batcher._run_round, []

    def first_round_fails(calls):
        if not faults:
            faults.append(len(calls))
            raise RuntimeError("a bug in the batcher")
        real(calls)

    monkeypatch.setattr(batcher, "_run_round", first_round_fails)
    inputs = [calls_of(i) for i in range(3)]
    results = run_sessions(batcher, stand_in(unet), inputs, caught=RuntimeError)
    assert faults == [3]
    for i in range(3):
        assert isinstance(results[i][0], RuntimeError) and "bug" in str(results[i][0])
        for (x, t), out in zip(inputs[i][1:], results[i][1:]):
            assert torch.equal(out, unet(x, t).sample)


def test_gradient_calls_and_no_batcher_run_the_networks_as_they_are():
    unet = RowWise()
    batcher = NetworkBatcher()
    x, t = calls_of(0)[0]
    with batcher.session(stand_in(unet)) as view:
        assert torch.equal(view.unet(x, t).sample, unet(x, t).sample)  # outside inference mode: in this thread
    assert batcher.stats.calls == 0
    with batched(None, "models") as same:
        assert same == "models"


def purifications(models, jobs: list[tuple[int, PurifyConfig, int]], batcher: NetworkBatcher | None) -> list[list]:
    """Every frame and the result of purify_stream for each (sample, config, seed), at once through `batcher`
    (sessions opened first) or one after the other (None)."""
    images = [load_input(SAMPLES[i], models) for i, _, _ in jobs]
    if batcher is None:
        return [list(purify_stream(models, x, cfg, seed, label_steps={0, 2})) for x, (_, cfg, seed) in zip(images, jobs)]
    out: list[list] = [[] for _ in jobs]
    in_threads(batcher, models, [lambda view, j=j: out[j].extend(purify_stream(
        view, images[j], jobs[j][1], jobs[j][2], label_steps={0, 2})) for j in range(len(jobs))])
    return out


def assert_same_run(alone: list, together: list) -> None:
    assert len(alone) == len(together)
    for a, b in zip(alone, together):
        assert type(a) is type(b)
        if isinstance(a, PurifyFrame):
            assert torch.equal(a.x_t, b.x_t) and torch.equal(a.x0, b.x0) and a.labels == b.labels and a.t == b.t
        else:
            assert isinstance(a, PurifyResult)
            assert (a.label, a.votes, a.per_seed, a.input_label, a.noisy_label, a.one_shot_label) == \
                   (b.label, b.votes, b.per_seed, b.input_label, b.noisy_label, b.one_shot_label)
            assert torch.equal(a.noisy, b.noisy) and torch.equal(a.purified, b.purified)


# K = 4 and K = 8 requests (two shapes), other samplers and step counts: each keeps its own bits
JOBS = [(0, PurifyConfig(0.5, 4, "fast", 4), 1), (1, PurifyConfig(0.5, 4, "fast", 4), 2),
        (2, PurifyConfig(0.25, 8, "fast", 3), 3), (3, PurifyConfig(0.5, 4, "fast", 6), 4),
        (4, PurifyConfig(0.5, 8, "one-shot", 1), 5), (5, PurifyConfig(1.0, 4, "fast", 4), 6)]


@pytest.mark.skipif(len(SAMPLES) < 6, reason="needs the shipped samples")
def test_concurrent_purifications_are_bit_identical_to_solo_runs(tiny_models):
    batcher = NetworkBatcher(gather_s=LONG_WAIT)
    alone = purifications(tiny_models, JOBS, None)
    together = purifications(tiny_models, JOBS, batcher)
    for a, b in zip(alone, together):
        assert_same_run(a, b)
    assert batcher.stats.largest_round == len(JOBS)  # the first round held every request's call at t*


@pytest.mark.skipif(len(SAMPLES) < 6, reason="needs the shipped samples")
def test_concurrent_digits_purifications_are_bit_identical_to_solo_runs(digits_models):
    """The shipped model, where concatenating rows changes bits at some batch sizes (module docstring of batching)."""
    jobs = [(i, PurifyConfig(0.5, 8, "fast", 4), 10 + i) for i in range(4)] + [(4, PurifyConfig(0.5, 2, "fast", 4), 20)]
    batcher = NetworkBatcher(gather_s=LONG_WAIT)
    for a, b in zip(purifications(digits_models, jobs, None), purifications(digits_models, jobs, batcher)):
        assert_same_run(a, b)


# the Purify handler, as the app runs it

REQUEST = PurifyRequest(model="digits", sigma=0.5, seeds=3, sampler="fast", steps=4, seed=7)


def _final(frames: list) -> PurifyOutputs:
    return PurifyOutputs(*frames[-1])


def _same_final(a: PurifyOutputs, b: PurifyOutputs) -> None:
    assert a.result == b.result and a.verdict == b.verdict
    for name in ("x_t", "x0"):
        assert all(torch.equal(p, q) for p, q in zip(a.scrub_state[name], b.scrub_state[name]))
    assert np.array_equal(_pixels(a.grid), _pixels(b.grid))


def _pixels(image) -> np.ndarray:
    """An output image's pixels, whether a PIL image (computed) or a PNG file's path (a shared answer)."""
    from PIL import Image

    return np.asarray(Image.open(image).convert("RGB") if isinstance(image, str) else image.convert("RGB"))


@pytest.mark.skipif(len(SAMPLES) < 4, reason="needs the shipped samples")
def test_a_class_of_different_requests_at_once_each_as_alone(tiny_models, tmp_path, monkeypatch):
    """Different requests at once, a bad file, a value out of range, a cancelled one and a repeated one among them:
    every good request's final output is its solo run's, bit for bit; the repeat is a shared answer."""
    from densepure_viz.serving.ui import purify_tab

    monkeypatch.setattr(purify_tab, "STREAM_INTERVAL", 0.0)  # a frame per step: the cancelled one stops mid-run
    pool = ModelPool(lambda name, device: tiny_models, ("digits",), "cpu")
    ctx = AppContext(pool=pool, batcher=NetworkBatcher(gather_s=LONG_WAIT))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    good = [replace(REQUEST, image=SAMPLES[0]), replace(REQUEST, image=SAMPLES[1], seed=8),
            replace(REQUEST, image=SAMPLES[2], seeds=5, steps=3), replace(REQUEST, image=SAMPLES[0], seed=9, sigma=0.25)]
    repeat = good[0]
    cancelled = replace(REQUEST, image=SAMPLES[3], seed=11)
    refused = {"bad file": replace(REQUEST, image=str(bad)), "out of range": replace(REQUEST, image=SAMPLES[1], seeds=10**9)}

    gate = threading.Barrier(len(good) + 1)  # every computing request opens its session before any computes
    real_session = ctx.batcher.session

    @contextmanager
    def gated(models):
        with real_session(models) as view:
            gate.wait(LONG_WAIT)
            yield view

    monkeypatch.setattr(ctx.batcher, "session", gated)
    handler = make_handler(ctx)
    finals: dict[str, object] = {}
    streamed: dict[str, int] = {}  # frames each request received

    def run(name: str, request: PurifyRequest) -> None:
        try:
            frames = handler(**arguments(request), progress=no_progress)
            if name == "cancelled":
                for frame in frames:
                    if PurifyOutputs(*frame).grid is not None and not isinstance(PurifyOutputs(*frame).grid, dict):
                        break  # a reverse step was streamed: the visitor presses Stop
                frames.close()  # what Gradio does to a cancelled generator
                finals[name] = "closed"
                return
            frames = list(frames)
            streamed[name] = len(frames)
            finals[name] = _final(frames)
        except gr.Error as exc:
            finals[name] = exc

    jobs = {f"good {i}": r for i, r in enumerate(good)} | {"cancelled": cancelled, **refused}
    threads = [threading.Thread(target=run, args=item) for item in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(LONG_WAIT)
    later = threading.Thread(target=run, args=("repeat", repeat))  # the same request again: shared, not computed
    later.start()
    later.join(LONG_WAIT)

    assert isinstance(finals["bad file"], gr.Error) and "not an image" in finals["bad file"].message
    assert isinstance(finals["out of range"], gr.Error) and "K" in finals["out of range"].message
    assert finals["cancelled"] == "closed"
    solo = AppContext(pool=pool, batcher=None)
    for i, request in enumerate(good):
        alone = _final(list(make_handler(solo)(**arguments(request), progress=no_progress)))
        _same_final(finals[f"good {i}"], alone)
    _same_final(finals["repeat"], finals["good 0"])
    assert all(streamed[f"good {i}"] >= 3 for i in range(len(good)))  # the input, reverse steps, the result
    assert ctx.shared.shared == 1
    assert ctx.batcher.stats.largest_round == len(good) + 1  # the first round held every computing request


def test_stream_interval_grows_with_the_requests_computed_together(tiny_models):
    from densepure_viz.serving.ui.purify_tab import STREAM_INTERVAL

    ctx = AppContext(pool=ModelPool(lambda name, device: tiny_models, ("digits",), "cpu"))
    assert stream_interval(ctx) == STREAM_INTERVAL
    with ctx.batcher.session(tiny_models), ctx.batcher.session(tiny_models), ctx.batcher.session(tiny_models):
        assert stream_interval(ctx) == 3 * STREAM_INTERVAL
    assert stream_interval(AppContext(pool=ctx.pool, batcher=None)) == STREAM_INTERVAL


def test_the_interactive_lane_admits_a_batch_of_requests(tiny_models):
    from densepure_viz.serving.ui import build_app

    demo = build_app(loader=lambda name, device: tiny_models, names=("digits",), device="cpu")
    public = {fn.api_name: fn for fn in demo.fns.values() if fn.api_visibility == "public"}
    assert public["purify"].concurrency_limit == public["density"].concurrency_limit == BATCH_SESSIONS
    assert public["certify"].concurrency_limit == 1  # long work: still one at a time, in its own lane
