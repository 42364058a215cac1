"""The running app under bad input, faults, cancellation and a little load (issue 6), on loopback only.

Through gradio_client and raw HTTP, as an API caller who bypasses the sliders: every bad value and
every nasty file gets one clear line (never a traceback) and the server answers a good request
afterwards. Models that fail to load leave the app on the embedded model with a message. Cancelling
a certification (the client's cancel, as the Stop button does, or a dropped connection) closes its
certification stream before it ends, and a later request is then served with no UNet call left over. The validators hold for any input (hypothesis).
"""

from __future__ import annotations

import itertools
import json
import os
import time
import re
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import gradio as gr
import httpx
import huggingface_hub
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from hypothesis import given, settings
from hypothesis import strategies as st
from nasty_files import BAD, CONVERTIBLE
from test_app_client import SAMPLES, free_port

from bench.load import run_users, table
from densepure_viz.models import images
from densepure_viz.models import registry as models_module
from densepure_viz.models.registry import ModelLoadError, custom_spec, load_models
from densepure_viz.paths import ASSETS
from densepure_viz.serving.api import CertifyRequest, DensityRequest, PurifyRequest, RegionsRequest, arguments
from densepure_viz.serving.ui import build_app
from densepure_viz.serving.ui import app as app_module
from densepure_viz.serving.ui import certify_tab
from densepure_viz.serving.ui import validation as v
from densepure_viz.serving.ui.app import launch_options
from densepure_viz.serving.ui.components import guard_numbers
from densepure_viz.serving.ui.requests import parse_certify, parse_purify
from densepure_viz.serving.ui.session import ModelPool

pytestmark = [
    pytest.mark.skipif(not SAMPLES, reason="no shipped samples: run scripts/export_samples.py"),
    pytest.mark.filterwarnings("ignore::UserWarning:gradio.helpers"),  # gr.Warning of the model check outside a request
]

HUB_SPEC = custom_spec("google/ddpm-cifar10-32", "grodino/resnet18_cifar10")  # the registry's hub entry
NO_MODEL = custom_spec(str(ASSETS / "no-such"), str(ASSETS / "no-such"))  # fails at once, never downloads


class Server:
    """The app with tiny models on a free loopback port; 'cifar10' loads whatever `fault` names."""

    def __init__(self, models):
        self.models = models
        self.fault = NO_MODEL  # set by the fault tests (through monkeypatch, so it is restored)
        self.unet_calls = 0
        models.unet.register_forward_hook(self._count)
        self.demo = build_app(loader=self._load, names=("digits", "cifar10"), device="cpu")
        port = free_port()
        self.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
        self.url = f"http://127.0.0.1:{port}/"
        self.client = Client(self.url, verbose=False)

    def _count(self, *_):
        self.unet_calls += 1

    def _load(self, name, device):
        return self.models if name == "digits" else load_models(self.fault, device=device)

    def check_model(self, name):
        """The model dropdown's handler (a private event): (dropdown update, status markdown)."""
        return next(fn for fn in self.demo.fns.values() if fn.name == "check_model").fn(name)


@pytest.fixture(scope="module")
def server(tiny_dirs):
    models = load_models(custom_spec(str(tiny_dirs[0]), str(tiny_dirs[1])), device="cpu")  # own copy: hooked
    s = Server(models)
    yield s
    s.client.close()
    s.demo.close()


@pytest.fixture(scope="module")
def image():
    return handle_file(str(SAMPLES[0]))


PURIFY = PurifyRequest(model="digits", sigma=0.5, seeds=2, sampler="fast", steps=2, seed=0, attack="none", eps=0.1,
                       attack_steps=2)
CERTIFY = CertifyRequest(model="digits", sigma=0.5, seeds=2, sampler="fast", steps=2, seed=0, n0=10, n=20, alpha=0.001,
                         compare=False, target=0.0, stop_early=True)
REGIONS = RegionsRequest("clusters", 0.75, -1.8, -0.3, -0.4, 0.2, seeds=4, steps=10, method="ddpm", labeler="mode",
                         seed=0, n=100)
DENSITY = DensityRequest(**arguments(PURIFY), draws=2, dims=2)
BASE = {"purify": PURIFY, "certify": CERTIFY, "regions": REGIONS, "density": DENSITY}


def values(request, **changes) -> list:
    """The request's values in its endpoint's order, as a raw JSON body's "data" carries them."""
    return list(arguments(replace(request, **changes)).values())


GOOD_SEEDS = itertools.count(1000)  # a new seed per good request: computed, never a shared answer


def good_request(server: Server, image) -> int:
    """The cheapest real request: it must still be answered; the UNet calls seen meanwhile."""
    before = server.unet_calls
    request = replace(PURIFY, image=image, seeds=1, steps=1, seed=next(GOOD_SEEDS))
    out = server.client.predict(**arguments(request), api_name="/purify")
    assert out[6]["seeds"] == 1
    return server.unet_calls - before


def one_line(message: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message and len(message) < 600, message


BAD_PARAMETERS = [  # (endpoint, overrides, the one line must match)
    ("purify", {"sigma": -1.0}, r"sigma.*less than minimum"),
    ("purify", {"sigma": 1e9}, r"sigma.*greater than maximum"),
    ("purify", {"sigma": "abc"}, r"sigma.* must be a number, got 'abc'"),
    ("purify", {"sigma": "nan"}, r"sigma.* must be a finite number"),
    ("purify", {"sigma": "-inf"}, r"sigma.* must be a finite number"),
    ("purify", {"sigma": [0.5]}, r"sigma.* must be a number, got list"),
    ("purify", {"sigma": True}, r"sigma.* must be a number, got bool"),
    ("purify", {"seeds": 0}, r"K .*less than minimum"),
    ("purify", {"seeds": 10**9}, r"K .*greater than maximum"),
    ("purify", {"seeds": 10**400}, r"K .*out of range"),
    ("purify", {"seeds": 2.5}, r"K \(seeds\) must be a whole number"),
    ("purify", {"seeds": "many"}, r"K .* must be a number, got 'many'"),
    ("purify", {"seeds": None}, r"K .* must be a number, got NoneType"),
    ("purify", {"steps": 100_000}, r"b \(steps.*greater than maximum"),
    ("purify", {"steps": {"a": 1}}, r"b \(steps.* must be a number, got dict"),
    ("purify", {"seed": -5}, r"base seed.*less than minimum"),
    ("purify", {"seed": 1e30}, r"base seed.*greater than maximum"),
    ("purify", {"seed": None}, r"seed must be a number"),
    ("purify", {"model": "../digits"}, r"not in the list of choices"),
    ("purify", {"model": "digits/../../etc"}, r"not in the list of choices"),
    ("purify", {"model": "/etc/passwd"}, r"not in the list of choices"),
    ("purify", {"model": "C:\\Windows"}, r"not in the list of choices"),
    ("purify", {"model": "imagenet"}, r"not in the list of choices"),
    ("purify", {"model": None}, r"model must be a name"),
    ("purify", {"sampler": "ddim"}, r"not in the list of choices"),
    ("purify", {"attack": "CW"}, r"not in the list of choices"),
    ("purify", {"attack": "FGSM", "eps": "x"}, r"epsilon must be a number"),
    ("purify", {"attack": "PGD", "eps": 1.5}, r"linf eps must be <= 1"),
    ("purify", {"image": None}, r"no input image"),
    ("certify", {"n0": 0}, r"n0 .*less than minimum"),
    ("certify", {"n": 10**9}, r"n \(estimation.*greater than maximum"),
    ("certify", {"n": "lots"}, r"n \(estimation draws\) must be a number"),
    ("certify", {"seeds": 0}, r"K .*less than minimum"),
    ("certify", {"alpha": 0.7}, r"alpha.*greater than maximum"),
    ("certify", {"alpha": "x"}, r"alpha.* must be a number"),
    ("certify", {"seeds": 16, "sampler": "full", "n0": 1000, "n": 10_000}, r"image evaluations.*limit per request"),
    ("regions", {"preset": "../moons"}, r"not in the list of choices"),
    ("regions", {"x0_x": 99.0}, r"x0 x must be in"),
    ("regions", {"x0_x": "abc"}, r"x0 x must be a number"),
    ("regions", {"seeds": 0}, r"K .*less than minimum"),
    ("regions", {"n": 10**7}, r"n \(certification.*greater than maximum"),
    ("density", {"draws": 0}, r"n \(noise draws.*less than minimum"),
    ("density", {"dims": 5}, r"not in the list of choices"),
]


def answers(client: Client, calls: list[tuple[str, dict]], timeout: float = 60) -> list:
    """Submit every call at once (the round trips overlap); each call's outputs or exception, in order."""
    jobs = [client.submit(**arguments(call), api_name=f"/{endpoint}") for endpoint, call in calls]
    out = []
    for job in jobs:
        try:
            out.append(job.result(timeout=timeout))
        except Exception as exc:  # noqa: BLE001 - the exception is the answer under test
            out.append(exc)
    return out


@pytest.fixture(scope="module")
def bad_answers(server, image) -> list:
    calls = [(e, replace(BASE[e], **{**({"image": image} if e != "regions" else {}), **o})) for e, o, _ in BAD_PARAMETERS]
    got = answers(server.client, calls)
    good_request(server, image)  # the server still answers after all of them
    return got


@pytest.mark.slow
@pytest.mark.parametrize("case", range(len(BAD_PARAMETERS)),
                         ids=[f"{e}-{'-'.join(map(str, o))}" for e, o, _ in BAD_PARAMETERS])
def test_bad_parameters_get_one_clear_line(bad_answers, case):
    answer, message = bad_answers[case], BAD_PARAMETERS[case][2]
    assert isinstance(answer, AppError), answer
    one_line(str(answer))
    assert re.search(message, str(answer)), str(answer)


@pytest.mark.slow
def test_numeric_strings_and_steps_beyond_t_star_are_served(server, image):
    out = server.client.predict(**arguments(replace(PURIFY, image=image, sigma="0.05", steps=100)), api_name="/purify")[6]
    assert out["sigma"] == 0.05 and len(out["timesteps"]) == out["t_star"] + 1  # 100 steps clamp to t* + 1


def _upload(server: Server, path: Path) -> dict:
    r = httpx.post(server.url + "gradio_api/upload", files={"files": (path.name, path.read_bytes())})
    r.raise_for_status()
    return {"path": r.json()[0], "meta": {"_type": "gradio.FileData"}}


def raw_call(server: Server, endpoint: str, body: str) -> tuple[str, dict | None]:
    """A REST call with a hand-written JSON body (NaN, Infinity...): (last SSE event, its data)."""
    return raw_call_url(server.url, endpoint, body)


def raw_call_url(url: str, endpoint: str, body: str) -> tuple[str, dict | None]:
    r = httpx.post(f"{url}gradio_api/call/{endpoint}", content=body, headers={"content-type": "application/json"})
    r.raise_for_status()
    text = httpx.get(f"{url}gradio_api/call/{endpoint}/{r.json()['event_id']}", timeout=60).text
    events = re.findall(r"event: (\w+)\ndata: (.*)", text)
    event, data = events[-1]
    return event, json.loads(data)


@pytest.mark.slow
@pytest.mark.parametrize("endpoint, parameter, literal, message", [
    ("purify", "sigma", "NaN", r"sigma.* must be a finite number, got nan"),
    ("purify", "sigma", "Infinity", r"sigma.*finite"),
    ("purify", "sigma", "-Infinity", r"sigma.*finite"),
    ("purify", "sigma", "1e400", r"sigma.*finite"),
    ("purify", "seeds", "NaN", r"K .*finite"),
    ("purify", "eps", "NaN", r"epsilon.*finite"),
    ("certify", "alpha", "NaN", r"alpha.*finite"),
    ("certify", "n", "Infinity", r"n \(estimation draws\).*finite"),
    ("regions", "x0_x", "NaN", r"x0 x.*finite"),
])
def test_non_finite_json_numbers_are_refused(server, endpoint, parameter, literal, message):
    """JSON has no NaN, so gradio_client cannot send one; Python's JSON parser on the server accepts it."""
    request = replace(BASE[endpoint], **({"image": _upload(server, SAMPLES[0])} if endpoint != "regions" else {}))
    parts = [literal if name == parameter else json.dumps(x) for name, x in arguments(request).items()]
    event, data = raw_call(server, endpoint, '{"data": [' + ", ".join(parts) + "]}")
    assert event == "error" and re.search(message, data["error"]), data
    one_line(data["error"])


@pytest.mark.slow
def test_files_not_uploaded_are_never_opened(server, image, monkeypatch):
    """A FileData path outside Gradio's upload folder is refused before the handler runs."""
    opened = []
    read = images._read_file
    monkeypatch.setattr(images, "_read_file", lambda path: opened.append(str(path)) or read(path))
    root = Path(__file__).resolve().parent.parent
    attempts = ["/etc/passwd", str(root / "app.py"), str(ASSETS / "digits" / "classifier" / "model.safetensors"),
                str(SAMPLES[0]), "../../../../etc/passwd", "/proc/self/environ", f"{server.url}gradio_api/info"]
    for path in attempts:
        body = json.dumps({"data": values(PURIFY, image={"path": path, "meta": {"_type": "gradio.FileData"}})})
        event, _ = raw_call(server, "purify", body)
        assert event == "error", path
    assert not opened, opened
    good_request(server, image)


@pytest.fixture(scope="module")
def nasty_answers(server, image, tmp_path_factory) -> dict:
    """Every file of the corpus sent at once: name -> outputs or exception."""
    folder = tmp_path_factory.mktemp("nasty")
    names = sorted(BAD) + sorted(CONVERTIBLE)
    for name in names:
        (folder / name).write_bytes(BAD[name][0]() if name in BAD else CONVERTIBLE[name]())
    calls = [("certify", replace(CERTIFY, image=handle_file(str(folder / name)), seeds=1, sampler="one-shot", n0=1, n=10))
             for name in names]  # the lightest request that loads the image
    got = dict(zip(names, answers(server.client, calls), strict=True))
    good_request(server, image)
    return got


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BAD))
def test_nasty_files_are_refused_in_one_line(nasty_answers, name):
    answer, message = nasty_answers[name], BAD[name][1]
    if name == "oversize.png":  # above launch(max_file_size=...): the client refuses it (and the server, test_security)
        assert isinstance(answer, ValueError) and "exceeds the maximum file size" in str(answer), answer
        return
    assert isinstance(answer, AppError), answer
    one_line(str(answer))
    assert re.search(message, str(answer)), str(answer)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONVERTIBLE))
def test_nasty_files_that_convert_are_served(nasty_answers, name):
    answer = nasty_answers[name]
    assert not isinstance(answer, Exception), answer
    assert 0 <= answer[3]["densepure"]["top_class"] < 10


# --- faults: models that cannot be loaded ---------------------------------------------------------------------


def _copy_with(tiny_dirs, tmp_path, edit) -> tuple[str, str]:
    root = tmp_path / "model"
    shutil.copytree(tiny_dirs[0], root / "diffusion")
    shutil.copytree(tiny_dirs[1], root / "classifier")
    edit(root)
    return str(root / "diffusion"), str(root / "classifier")


UNET = Path("diffusion/unet/diffusion_pytorch_model.safetensors")
CLASSIFIER = Path("classifier/model.safetensors")
FAULTS = {  # name -> (edit of a copy of the tiny model folders, the message must match)
    "missing weights": (lambda r: (r / UNET).unlink(), r"not a diffusers DDPM"),
    "missing classifier": (lambda r: (r / CLASSIFIER).unlink(), r"has no model\.safetensors"),
    "garbage safetensors": (lambda r: (r / UNET).write_bytes(b"garbage" * 1000), r"not a diffusers DDPM"),
    "truncated safetensors": (lambda r: (r / UNET).write_bytes((r / UNET).read_bytes()[:5000]), r"not a diffusers DDPM"),
    "garbage classifier": (lambda r: (r / CLASSIFIER).write_bytes(b"\xff" * 100), r"not a loadable timm classifier"),
    "wrong tensors": (lambda r: shutil.copy(r / CLASSIFIER, r / UNET), r"lacks \d+ of the UNet's tensors"),
    "garbage config": (lambda r: (r / "diffusion/unet/config.json").write_text("{not json"), r"not a diffusers DDPM"),
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_model_that_fails_to_load_leaves_the_embedded_one(server, image, tiny_dirs, tmp_path, monkeypatch, fault):
    edit, message = FAULTS[fault]
    monkeypatch.setattr(server, "fault", custom_spec(*_copy_with(tiny_dirs, tmp_path, edit)))
    _check_fault(server, image, message, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("source, message", [
    ("offline hub id", r"cannot reach the Hugging Face hub"),
    ("missing embedded folder", r"embedded model files are missing"),
])
def test_offline_hub_and_missing_embedded_files(server, image, tmp_path, monkeypatch, source, message):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(models_module, "_hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(server, "fault", HUB_SPEC if source == "offline hub id" else NO_MODEL)
    _check_fault(server, image, message, monkeypatch)


def _check_fault(server: Server, image, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    downloads = []  # every hub download attempted: the request fails at once, without one
    real_snapshot = huggingface_hub.snapshot_download
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: downloads.append(k) or real_snapshot(*a, **k))
    with pytest.raises(ModelLoadError, match=message):  # the loader says what is wrong
        load_models(server.fault, device="cpu")
    with pytest.raises(AppError) as info:  # the API: one line
        server.client.predict(**arguments(replace(PURIFY, image=image, model="cifar10")), api_name="/purify")
    one_line(str(info.value))
    assert re.search(message, str(info.value)), str(info.value)
    assert not [k for k in downloads if not k.get("local_files_only")], f"a download was attempted: {downloads}"
    update, status = server.check_model("cifar10")  # the UI: back to the embedded model, with the reason
    assert update["value"] == "digits" and re.search(message, status) and "Using the embedded model" in status
    good_request(server, image)


def test_an_unexpected_load_error_also_falls_back(tiny_models):
    def loader(name, device):
        if name == "cifar10":
            raise RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported")
        return tiny_models

    demo = build_app(loader=loader, names=("digits", "cifar10"), device="cpu")
    check = next(fn for fn in demo.fns.values() if fn.name == "check_model").fn
    update, status = check("cifar10")
    assert update["value"] == "digits" and "(RuntimeError)" in status and "Using the embedded model" in status


def test_a_slow_model_load_does_not_hold_up_loaded_models(tiny_models):
    release, loading = threading.Event(), threading.Event()

    def loader(name, device):
        if name == "cifar10":  # a hub download in progress
            loading.set()
            release.wait(30)
        return tiny_models

    pool = ModelPool(loader, ("digits", "cifar10"), "cpu")
    slow = threading.Thread(target=pool.get, args=("cifar10",))
    slow.start()
    try:
        assert loading.wait(30)
        assert pool.get("digits") is tiny_models  # loaded while the other load is still running
        assert pool.get("digits") is tiny_models  # and then from the cache
        assert slow.is_alive() and not release.is_set(), "digits waited for the cifar10 load to finish"
    finally:
        release.set()
        slow.join(10)
    assert pool.get("cifar10") is tiny_models


# --- cancellation -------------------------------------------------------------------------------------------

LONG_CERTIFY = replace(CERTIFY, steps=50, n0=100, n=9_000)  # about a minute of UNet calls on the tiny models


class CertifyRuns:
    """The certification streams the Certify view runs (DensePure's sequential_certify_stream, traced)."""

    def __init__(self):
        self.count = 0  # streams started
        self.started = threading.Event()  # a stream reported draws done (the UNet is at work)
        self.ended = threading.Event()  # a stream stopped: ran out, raised, or was closed with its handler
        self.completed = False  # a stream ran to its end (the certificate)

    def trace(self, stream):
        def traced(*args, **kwargs):
            self.count += 1
            try:
                for item in stream(*args, **kwargs):
                    self.started.set()
                    yield item
                self.completed = True
            finally:  # also when the handler's generator is closed (GeneratorExit)
                self.ended.set()

        return traced


@pytest.fixture
def certify_runs(monkeypatch) -> CertifyRuns:
    runs = CertifyRuns()
    monkeypatch.setattr(certify_tab, "sequential_certify_stream", runs.trace(certify_tab.sequential_certify_stream))
    return runs


def _unet_goes_quiet(server: Server, quiet_s: float = 2.0, limit_s: float = 60.0) -> bool:
    """True once the UNet count stays unchanged for quiet_s (polled; False if it never does within limit_s)."""
    deadline, last, since = time.monotonic() + limit_s, server.unet_calls, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if server.unet_calls != last:
            last, since = server.unet_calls, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return True
    return False


def _stopped_and_freed(server: Server, image, runs: CertifyRuns, before: int, per_request: int) -> None:
    """The certification stopped drawing before its end; then a request is served and is the UNet's only user.

    "Stopped" is read from the UNet going quiet, not from the stream's `finally`: Gradio 6.31 stops pulling a
    generator cancelled through /cancel mid-draw but does not always close it (it stays suspended), while a
    dropped connection closes it (the next test checks that `finally` too)."""
    assert _unet_goes_quiet(server), "the certification kept running"
    assert runs.count == 1 and not runs.completed, "the certification ran to the end instead of stopping"
    stopped = server.unet_calls
    assert good_request(server, image) == per_request, "UNet calls beyond the request's own: the certification resumed"
    assert stopped - before < 3000


@pytest.mark.slow
def test_cancelling_a_certification_frees_the_worker(server, image, certify_runs):
    """gradio_client's Job.cancel posts /cancel, as the Stop button does (cancels=[the certify event])."""
    certify_fn = next(i for i, fn in server.demo.fns.items() if fn.api_name == "certify")
    assert any(certify_fn in fn.cancels for fn in server.demo.fns.values()), "no Stop button cancels /certify"
    per_request = good_request(server, image)
    before = server.unet_calls
    job = server.client.submit(**arguments(replace(LONG_CERTIFY, image=image)), api_name="/certify")
    assert certify_runs.started.wait(60), "the certification did not start"
    job.cancel()
    _stopped_and_freed(server, image, certify_runs, before, per_request)


@pytest.mark.slow
def test_a_closed_connection_frees_the_worker(server, image, certify_runs):
    """A closed tab: the event stream drops; the queue marks the job dead and closes its generator."""
    certify_fn = next(i for i, fn in server.demo.fns.items() if fn.api_name == "certify")
    body = {"data": values(LONG_CERTIFY, image=_upload(server, SAMPLES[0])), "fn_index": certify_fn,
            "session_hash": "closedtab01", "event_data": None, "trigger_id": None}
    per_request = good_request(server, image)
    before = server.unet_calls
    httpx.post(server.url + "gradio_api/queue/join", json=body).raise_for_status()
    with httpx.stream("GET", server.url + "gradio_api/queue/data", params={"session_hash": "closedtab01"}, timeout=30) as s:
        for _ in s.iter_lines():
            if certify_runs.started.is_set():
                break  # leaving the block closes the connection mid-run
    assert certify_runs.ended.wait(60), "the dropped run's generator was not closed"
    _stopped_and_freed(server, image, certify_runs, before, per_request)


# --- load -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_six_concurrent_users_get_answers_without_errors(server):
    run = run_users(server.url, users=6, requests=1, pid=os.getpid(), deadline_s=45, image=SAMPLES[0])
    assert run.errors == 0 and len(run.requests) == 6, table([run])
    assert {r.endpoint for r in run.requests} == {"purify", "certify"}
    waited = [r for r in run.requests if r.position is not None]
    assert waited, "with one engine worker, somebody queued and was shown a position"


@pytest.mark.slow
def test_sessions_kept_in_memory_are_capped(tiny_models, monkeypatch):
    """Gradio keeps each visitor's session state; launch_options caps how many (least recently used go first)."""
    monkeypatch.setattr(app_module, "SESSION_CAPACITY", 3)
    demo = build_app(loader=lambda name, device: tiny_models, names=("digits",), device="cpu")
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
    try:
        for _ in range(6):  # each REST call is a new session
            event, _ = raw_call_url(f"http://127.0.0.1:{port}/", "regions", json.dumps({"data": values(REGIONS)}))
            assert event == "complete"
        assert 1 <= len(demo.state_holder.session_data) <= 3
    finally:
        demo.close()


@pytest.mark.slow
def test_the_waiting_line_is_bounded(tiny_models, certify_runs, monkeypatch):
    """Beyond QUEUE_SIZE waiting requests the server refuses at once, in one line, and serves the line it keeps."""
    from gradio_client.utils import Status

    monkeypatch.setattr(app_module, "QUEUE_SIZE", 1)
    demo = build_app(loader=lambda name, device: tiny_models, names=("digits",), device="cpu")
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    request = replace(LONG_CERTIFY, image=handle_file(str(SAMPLES[0])))
    try:
        running = client.submit(**arguments(request), api_name="/certify")
        assert certify_runs.started.wait(60), "the certification did not start"
        waiting = client.submit(**arguments(request), api_name="/certify")  # the certify lane runs one at a time
        deadline = time.monotonic() + 30
        while waiting.status().code != Status.IN_QUEUE and time.monotonic() < deadline:
            time.sleep(0.1)
        assert waiting.status().code == Status.IN_QUEUE
        with pytest.raises(Exception, match="[Qq]ueue is full") as refused:
            client.predict(**arguments(request), api_name="/certify")
        one_line(str(refused.value))
        running.cancel(), waiting.cancel()
    finally:
        client.close()
        demo.close()


@pytest.mark.slow
def test_identical_outputs_for_simultaneous_users_download_whole(server):
    """Cached images are named by content; the page's image components rewrite one (every request producing the same
    picture does) while another user downloads it, and the download must not be cut (components.written_whole)."""
    import gradio as gr
    from PIL import Image

    image = next(b for b in server.demo.blocks.values() if isinstance(b, gr.Image) and b.elem_id == "purify-grid")
    img = Image.fromarray(np.arange(128 * 128, dtype=np.uint8).reshape(128, 128))  # a ~16 kB PNG
    path = image.postprocess(img).path
    size = Path(path).stat().st_size
    stop, rewrites = threading.Event(), [0]

    def rewrite():  # what every request producing the same picture does
        while not stop.is_set():
            image.postprocess(img)
            rewrites[0] += 1

    writer = threading.Thread(target=rewrite)
    writer.start()
    cut, downloads = 0, 0
    try:
        with httpx.Client() as http:
            while downloads < 200 or rewrites[0] < 200:  # many downloads, overlapping many rewrites
                downloads += 1
                try:
                    cut += len(http.get(f"{server.url}gradio_api/file={path}").content) != size
                except httpx.HTTPError:
                    cut += 1
    finally:
        stop.set()
        writer.join()
    assert cut == 0, f"{cut} of {downloads} downloads were cut short ({rewrites[0]} rewrites)"


# --- the validators hold for any input -------------------------------------------------------------------------

ANYTHING = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=60), st.binary(max_size=20), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2), st.just(10**400), st.just("1e400"),
)


@settings(max_examples=300, deadline=None)
@given(ANYTHING, st.floats(-1e6, 1e6), st.floats(0, 1e6))
def test_number_accepts_exactly_finite_numbers_in_range(value, lo, width):
    hi = lo + width
    try:
        x = v.number(value, "x", lo, hi)
    except ValueError as exc:
        one_line(str(exc))
        assert str(exc).startswith("x ")
    else:
        assert lo <= x <= hi and x == x
        assert not isinstance(value, bool) and value is not None


@settings(max_examples=300, deadline=None)
@given(ANYTHING, st.integers(-1000, 1000), st.integers(0, 1000))
def test_integer_returns_ints_in_range_or_one_line(value, lo, width):
    try:
        k = v.integer(value, "K", lo, lo + width)
    except ValueError as exc:
        one_line(str(exc))
    else:
        assert type(k) is int and lo <= k <= lo + width


@settings(max_examples=200, deadline=None)
@given(st.integers(-10**6, 10**6))
def test_integer_round_trips_ints_and_their_strings(k):
    assert v.integer(k, "K", -10**6, 10**6) == k == v.integer(f" {k} ", "K", -10**6, 10**6)


@settings(max_examples=300, deadline=None)
@given(st.one_of(ANYTHING, st.text(alphabet="./\\~digtsa0123456789", max_size=30)))
def test_model_id_returns_only_registry_names(value):
    try:
        name = v.model_id(value, ("digits", "cifar10"))
    except ValueError as exc:
        one_line(str(exc))
    else:
        assert name in ("digits", "cifar10")


@settings(max_examples=200, deadline=None)
@given(ANYTHING, ANYTHING, ANYTHING, ANYTHING, ANYTHING, ANYTHING, ANYTHING)
def test_parse_purify_and_certify_enforce_the_caps(sigma, seeds, steps, seed, n0, n, alpha):
    try:
        _, cfg, s = parse_purify(PurifyRequest("x.png", sigma=sigma, seeds=seeds, sampler="fast", steps=steps, seed=seed))
    except ValueError as exc:
        one_line(str(exc))
    else:
        assert 0 < cfg.sigma <= v.LIMITS.sigma_max and 1 <= cfg.seeds <= v.LIMITS.purify_seeds
        assert 1 <= cfg.steps <= v.LIMITS.steps and 0 <= s <= v.LIMITS.seed
    try:
        c = parse_certify(CertifyRequest(n0=n0, n=n, alpha=alpha))
    except ValueError as exc:
        one_line(str(exc))
    else:
        assert 1 <= c.n0 <= v.LIMITS.n0 and 1 <= c.n <= v.LIMITS.n and 0 < c.alpha <= 0.5


@pytest.fixture(scope="module")
def guarded():
    with gr.Blocks() as demo:
        slider = gr.Slider(1, 32, step=1, label="K (seeds)")
        number = gr.Number(0, precision=0, minimum=0, maximum=100, label="base seed")
    guard_numbers(demo)
    return slider, number


@settings(max_examples=300, deadline=None)
@given(st.one_of(ANYTHING, st.floats(0, 40).map(str)))
def test_numeric_inputs_refuse_anything_else_in_one_line(guarded, payload):
    for component in guarded:
        try:
            x = component.preprocess(payload)
        except gr.Error as exc:
            one_line(exc.message)
            assert exc.message.startswith(component.label)
        else:
            assert x is None or (component.minimum <= x <= component.maximum and x == x)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([ValueError, RuntimeError, KeyError, MemoryError, ModelLoadError, OSError, ZeroDivisionError]),
       st.text(max_size=200))
def test_any_exception_reaches_the_user_as_one_line(kind, message):
    @v.user_errors
    def handler():
        raise kind(message)

    with pytest.raises(gr.Error) as info:
        handler()
    assert "\n" not in info.value.message and "Traceback" not in info.value.message
