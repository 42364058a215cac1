"""Hugging Face Spaces: ZeroGPU durations and the main process without CUDA, per-model caps, weights fetched at start-up.

ZeroGPU is simulated: a fake `spaces` module whose GPU decorator records the duration it was asked for (calling a
duration callable with the function's own arguments, as ZeroGPU does) and whether a call is in progress, while
torch.cuda says a GPU exists but raises on any initialisation, memory probe or device query in this process.
"""

from __future__ import annotations

import functools
import inspect
import socket
import sys
import types
from pathlib import Path

import gradio as gr
import pytest
import torch
from gradio_client import Client, handle_file

from densepure_viz.models.registry import DensePureModels, ModelLoadError, load_models
from densepure_viz.paths import ASSETS
from densepure_viz.serving.api import CertifyRequest, DensityRequest, PurifyRequest, arguments
from densepure_viz.serving.ui import app as app_module
from densepure_viz.serving.ui import build_app, certify_tab, density_tab, purify_tab
from densepure_viz.serving.ui import session
from densepure_viz.serving.ui.app import launch_options
from densepure_viz.serving.ui.requests import no_progress, request_evaluations
from densepure_viz.serving.ui.session import (GPU_OVERHEAD_SECONDS, MAX_GPU_SECONDS, AppContext, ModelPool, gpu,
                                              gpu_duration)
from densepure_viz.serving.ui.validation import LIMITS, MODEL_LIMITS, limits_for

SAMPLE = sorted((ASSETS / "samples" / "digits").glob("*.png"))[0]
CUDA_CALLS = ("init", "_lazy_init", "current_device", "mem_get_info", "get_device_name", "get_device_properties",
              "synchronize", "memory_allocated", "max_memory_allocated", "reset_peak_memory_stats", "is_bf16_supported",
              "set_device")


class FakeSpaces(types.ModuleType):
    """`spaces` as ZeroGPU's decorator behaves: GPU(fn), GPU(duration=d)(fn); d may be a callable of fn's arguments."""

    def __init__(self) -> None:
        super().__init__("spaces")
        self.durations: list[float] = []  # what each call reserved
        self.inside = False  # a GPU call is running
        self.GPU = self._gpu

    def _gpu(self, task=None, *, duration=60):
        def wrap(fn):
            def reserve(args, kwargs):
                self.durations.append(duration(*args, **kwargs) if callable(duration) else duration)

            if inspect.isgeneratorfunction(fn):
                @functools.wraps(fn)
                def frames(*args, **kwargs):
                    reserve(args, kwargs)
                    self.inside = True
                    try:
                        yield from fn(*args, **kwargs)
                    finally:
                        self.inside = False
                return frames

            @functools.wraps(fn)
            def call(*args, **kwargs):
                reserve(args, kwargs)
                self.inside = True
                try:
                    return fn(*args, **kwargs)
                finally:
                    self.inside = False
            return call

        return wrap(task) if task is not None else wrap


@pytest.fixture
def zero_gpu(monkeypatch) -> FakeSpaces:
    """A ZeroGPU main process: `spaces` importable, torch.cuda.is_available() True, any CUDA initialisation raising."""
    fake = FakeSpaces()  # no spaces.config to read: counted as ZeroGPU (the hardware would also set SPACES_ZERO_GPU)
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    def touched(*args, **kwargs):
        raise RuntimeError("CUDA touched in the main process")

    for name in CUDA_CALLS:
        monkeypatch.setattr(torch.cuda, name, touched)
    return fake


def test_the_duration_rule():
    assert gpu_duration(0, 10_000) == GPU_OVERHEAD_SECONDS
    assert gpu_duration(20_000, 10_000) == pytest.approx(GPU_OVERHEAD_SECONDS + 2)
    assert gpu_duration(20_000, 2_000) == pytest.approx(GPU_OVERHEAD_SECONDS + 10)  # a slower model, longer
    assert gpu_duration(10**12, 1.0) == MAX_GPU_SECONDS


@pytest.mark.parametrize("model", sorted(MODEL_LIMITS))
def test_no_capped_request_asks_for_more_than_the_maximum(model):
    """The largest request each view accepts for a model stays under ZeroGPU's maximum without being clipped."""
    caps = MODEL_LIMITS[model]
    worst = {"purify": caps.purify_evals, "density": caps.purify_evals,  # draws x K x timesteps, capped
             "certify": caps.certify_evals + caps.n0 + caps.n}  # and one-shot's evaluation per draw
    for view, evaluations in worst.items():
        assert GPU_OVERHEAD_SECONDS + evaluations / caps.gpu_rate <= MAX_GPU_SECONDS, (model, view)


def test_request_evaluations_count_as_check_budget_does(tiny_models):
    purify = PurifyRequest(image=str(SAMPLE), seeds=4, sampler="fast", steps=5)
    assert request_evaluations(purify, tiny_models) == 4 * 5
    assert request_evaluations(DensityRequest(image=str(SAMPLE), seeds=4, steps=5, draws=3), tiny_models) == 3 * 4 * 5
    certify = CertifyRequest(image=str(SAMPLE), seeds=2, steps=3, n0=10, n=20, compare=False)
    assert request_evaluations(certify, tiny_models) == 30 * 2 * 3
    with_one_shot = CertifyRequest(image=str(SAMPLE), seeds=2, steps=3, n0=10, n=20, compare=True)
    assert request_evaluations(with_one_shot, tiny_models) == 30 * 2 * 3 + 30


def test_without_spaces_the_decorator_changes_nothing(monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", None)  # `import spaces` raises ImportError

    def body(request, progress):
        return request

    assert gpu(body) is body and gpu(body, duration=lambda *a: 1.0) is body


def test_a_gpu_call_gets_its_requests_duration_and_a_gpu_copy(zero_gpu, tiny_models, monkeypatch):
    moved = []
    monkeypatch.setattr(DensePureModels, "to_device",
                        lambda self, device, dtype=None: moved.append((str(device), zero_gpu.inside)) or self)
    loads = []
    ctx = AppContext(pool=ModelPool(lambda name, device: loads.append((str(device), zero_gpu.inside)) or tiny_models,
                                    ("digits",), zero_gpu=True))
    assert ctx.pool.device.type == "cuda" and ctx.pool.zero_gpu
    handler = purify_tab.make_handler(ctx)
    small = PurifyRequest(image=str(SAMPLE), seeds=1, steps=1)
    big = PurifyRequest(image=str(SAMPLE), seeds=8, steps=10)
    for request in (small, big):
        *_, last = handler(**arguments(request), progress=no_progress)
        assert last[6]["seeds"] == request.seeds
    assert loads == [("cpu", False)], "loaded once, on the CPU, in the main process (the duration asked for it)"
    assert moved == [("cuda", True), ("cuda", True)], "each call moves its own copy to the GPU, inside the call"
    short, long = zero_gpu.durations
    assert short == pytest.approx(gpu_duration(1, LIMITS.gpu_rate)) and long == pytest.approx(gpu_duration(80, LIMITS.gpu_rate))
    assert GPU_OVERHEAD_SECONDS <= short < long <= MAX_GPU_SECONDS
    # a bad request reserves only the overhead, then says why in one line
    with pytest.raises(gr.Error, match="K \\(seeds\\)"):
        list(handler(**arguments(PurifyRequest(image=str(SAMPLE), seeds="many")), progress=no_progress))
    assert zero_gpu.durations[-1] == GPU_OVERHEAD_SECONDS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # a live server
def test_the_app_builds_and_serves_without_cuda_in_the_main_process(zero_gpu, monkeypatch):
    moved = []
    monkeypatch.setattr(DensePureModels, "to_device",
                        lambda self, device, dtype=None: moved.append((str(device), zero_gpu.inside)) or self)
    loads = []

    def loader(name, device):
        loads.append((name, str(device), zero_gpu.inside))
        return load_models(name, device=device)  # the registry's loader: no memory probe on the CPU

    demo = build_app(loader=loader, names=("digits",))  # no device given: CUDA "is available"
    assert not loads, "building loads nothing"
    assert app_module._device_line(ModelPool(names=("digits",), zero_gpu=True)).startswith("ZeroGPU")
    check_model = next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "check_model")
    _, status = check_model("digits")
    assert status.startswith("ZeroGPU") and "**digits** loaded" in status
    assert loads == [("digits", "cpu", False)]
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        for seeds, steps in ((1, 1), (4, 5)):
            request = PurifyRequest(handle_file(str(SAMPLE)), "digits", 0.5, seeds, "fast", steps, 0)
            out = client.predict(**arguments(request), api_name="/purify")[6]
            assert sum(out["votes"].values()) == seeds
    finally:
        demo.close()
    assert loads == [("digits", "cpu", False)], "never loaded again, never inside a GPU call"
    assert moved and all(m == ("cuda", True) for m in moved)
    short, long = zero_gpu.durations[-2:]
    assert 0 < short < long <= MAX_GPU_SECONDS
    assert long == pytest.approx(gpu_duration(4 * 5, LIMITS.gpu_rate))


@pytest.fixture
def two_models(tiny_models) -> AppContext:
    """digits and cifar10 both served by the tiny models (the caps are the names', whatever the networks)."""
    return AppContext(pool=ModelPool(lambda name, device: tiny_models, ("digits", "cifar10"), "cpu"))


def test_a_request_accepted_for_digits_is_refused_for_cifar10_naming_the_cap(two_models):
    purify = purify_tab.make_handler(two_models)
    request = PurifyRequest(image=str(SAMPLE), seeds=16, sampler="fast", steps=20)  # 320 evaluations
    *_, last = purify(**arguments(request), progress=no_progress)
    assert last[6]["seeds"] == 16
    with pytest.raises(gr.Error, match="needs 320 image evaluations; the limit per request is 200 for the model cifar10"):
        list(purify(**arguments(PurifyRequest(**{**arguments(request), "model": "cifar10"})), progress=no_progress))
    with pytest.raises(gr.Error, match="K \\(seeds\\) = 32 is above the cap for the model cifar10: at most 16"):
        list(purify(**arguments(PurifyRequest(image=str(SAMPLE), model="cifar10", seeds=32)), progress=no_progress))
    certify = certify_tab.make_handler(two_models)
    wide = CertifyRequest(image=str(SAMPLE), model="cifar10", seeds=1, steps=1, n0=10, n=5_000, compare=False)
    with pytest.raises(gr.Error, match="n = 5000 is above the cap for the model cifar10: at most 1000"):
        list(certify(**arguments(wide), progress=no_progress))
    *_, (_, _, _, out) = certify(**arguments(CertifyRequest(**{**arguments(wide), "model": "digits", "n": 50})),
                                 progress=no_progress)
    assert out["densepure"]["n"] == 50
    density = density_tab.make_handler(two_models)
    with pytest.raises(gr.Error, match="n \\(noise draws\\) = 64 is above the cap for the model cifar10: at most 8"):
        density(**arguments(DensityRequest(image=str(SAMPLE), model="cifar10", draws=64)), progress=no_progress)


def test_caps_per_model():
    assert limits_for("digits") is LIMITS
    cifar = limits_for("cifar10")
    assert cifar.purify_evals < LIMITS.purify_evals and cifar.certify_evals < LIMITS.certify_evals
    assert cifar.gpu_rate < LIMITS.gpu_rate
    assert limits_for("some/diffusion + some/classifier") is cifar  # a pair of unknown cost: the largest preset's caps
    # the views open within the caps (the classroom certification at K = 2, b = 2: 440 evaluations)
    assert (10 + 100) * 2 * 2 <= cifar.certify_evals and cifar.defaults["certify"] == {"seeds": 2, "steps": 2}


def test_the_sliders_follow_the_chosen_model(tiny_models):
    demo = build_app(loader=lambda name, device: tiny_models, names=("digits", "cifar10"), device="cpu")
    follow = [f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "update" and f.api_visibility == "private"]
    certify = next(f.fn for f in follow if [b.label for b in f.outputs][:1] == ["K (seeds per draw)"])
    seeds, steps, n0, n = certify("cifar10")
    assert (seeds["maximum"], seeds["value"], steps["maximum"], steps["value"]) == (8, 2, 20, 2)
    assert (n0["maximum"], n["maximum"], n["value"]) == (100, 1000, 100)
    seeds, steps, n0, n = certify("digits")
    assert (seeds["maximum"], seeds["value"], steps["value"], n["maximum"]) == (16, 4, 10, 10_000)
    assert len(follow) == 3  # Purify, Certify and High-density
    # a page opening on cifar10 (a command-line model) opens its Certify view at cifar10's K and b
    opened = build_app(loader=lambda name, device: tiny_models, names=("cifar10", "digits"), device="cpu")
    values = {b.label: b.value for b in opened.blocks.values() if isinstance(b, gr.Slider)}
    assert (values["K (seeds per draw)"], values["b (fast sampler steps)"]) == (2, 2)
    values = {b.label: b.value for b in demo.blocks.values() if isinstance(b, gr.Slider)}
    assert (values["K (seeds per draw)"], values["b (fast sampler steps)"]) == (4, 10)


def test_weights_are_fetched_before_launch_on_a_space(monkeypatch, capsys):
    events = []

    def resolve(source):
        events.append(("fetch", source))
        if source.startswith("grodino"):
            raise ModelLoadError("cannot reach the Hugging Face hub")
        return Path("/cache") / source

    class Demo:
        def launch(self, **kwargs):
            events.append(("launch", None))

    monkeypatch.setattr(app_module, "resolve_source", resolve)
    monkeypatch.setattr(app_module, "build_app", lambda **kwargs: Demo())
    monkeypatch.setenv("SPACE_ID", "someone/densepure-viz")
    assert app_module.main([]) == 0
    assert events == [("fetch", "google/ddpm-cifar10-32"), ("fetch", "grodino/resnet18_cifar10"), ("launch", None)]
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "fetching google/ddpm-cifar10-32 ..." and "ready in" in printed[1]
    assert "could not fetch grodino/resnet18_cifar10: cannot reach the Hugging Face hub" in printed[3]
    events.clear()
    monkeypatch.delenv("SPACE_ID")
    assert app_module.main([]) == 0 and events == [("launch", None)]  # elsewhere: loaded when first chosen


def test_a_gpu_copy_leaves_the_models_where_they_are(tiny_models):
    copy = tiny_models.to_device("cpu", torch.float32)
    assert copy is not tiny_models and copy.unet is not tiny_models.unet
    x = torch.rand(2, tiny_models.channels, tiny_models.image_size, tiny_models.image_size)
    assert torch.equal(copy.logits(x), tiny_models.logits(x))
    with torch.no_grad():
        next(copy.unet.parameters()).add_(1.0)
    assert not torch.equal(next(copy.unet.parameters()), next(tiny_models.unet.parameters()))
    assert not any(p.requires_grad for p in copy.unet.parameters())


def test_zero_gpu_is_the_spaces_setting_not_the_package(monkeypatch):
    cpu_space = FakeSpaces()  # CPU and dedicated-GPU Spaces have `spaces` installed too, its setting off
    cpu_space.config = types.SimpleNamespace(Config=types.SimpleNamespace(zero_gpu=False))
    monkeypatch.setitem(sys.modules, "spaces", cpu_space)
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert not session.zero_gpu_space()
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert session.zero_gpu_space()
    monkeypatch.delenv("SPACES_ZERO_GPU")
    monkeypatch.setitem(sys.modules, "spaces", FakeSpaces())  # no setting to read: the safe side
    assert session.zero_gpu_space()
    monkeypatch.setitem(sys.modules, "spaces", None)
    assert not session.zero_gpu_space()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # ZeroGPU's main process may see no GPU yet
    pool = ModelPool(names=("digits",), zero_gpu=True)
    assert pool.device.type == "cuda" and pool.home.type == "cpu" and pool.zero_gpu
    assert not ModelPool(names=("digits",), device="cpu", zero_gpu=True).zero_gpu  # told to compute on the CPU


def test_the_readme_configures_the_space():
    """README.md's front matter is the Space's configuration: gradio as pinned, app.py, the cifar10 preset preloaded."""
    from densepure_viz.models.registry import REGISTRY
    from densepure_viz.paths import ROOT

    text = (ROOT / "README.md").read_text()
    assert text.startswith("---\n")
    front = text.split("---\n")[1]
    fields = dict(line.split(": ", 1) for line in front.splitlines() if ": " in line and not line.startswith(" "))
    pinned = next(line.split("==")[1] for line in (ROOT / "requirements.txt").read_text().splitlines()
                  if line.startswith("gradio=="))
    assert (fields["sdk"], fields["sdk_version"], fields["app_file"]) == ("gradio", pinned, "app.py")
    preloaded = [line.strip()[2:] for line in front.splitlines() if line.startswith("  - ")]
    assert preloaded == [REGISTRY["cifar10"].diffusion, REGISTRY["cifar10"].classifier]
