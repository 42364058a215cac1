"""What the app shares between requests: lazily loaded models, the device, the samples, the GPU decorator,
the outputs of identical requests (computed once: a class sending the same request at once), and the batcher
that computes different concurrent requests' network calls together (engine.batching: a class each with its
own image and seed; each request's numbers are those it gets alone).

Models are loaded on first use (never at import or build time) and cached per (name, device). A
model that cannot be loaded (offline hub id, missing files) raises ModelLoadError with its message;
the UI shows it and falls back to the embedded model.

Hugging Face Spaces: with the `spaces` package importable the views' bodies run inside `spaces.GPU(duration=...)`,
the duration computed from the request itself (`gpu_duration`: its UNet evaluations at the model's GPU rate, plus a
fixed overhead, at most MAX_GPU_SECONDS); without it `gpu` returns the body unchanged. On ZeroGPU hardware
(`zero_gpu_space`: SPACES_ZERO_GPU set) the main process never touches CUDA: models load and stay on the CPU there,
and each GPU call works on its own copy moved to CUDA (`ModelPool.get` inside the call).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
import threading
from functools import lru_cache
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from densepure_viz.experiments.projections import training_pca
from densepure_viz.models.inputs import true_label
from densepure_viz.models.images import list_images
from densepure_viz.paths import ASSETS
from densepure_viz.models.registry import REGISTRY, DensePureModels, ModelLoadError, ModelSpec, default_device, load_models
from densepure_viz.engine.batching import NetworkBatcher, batched
from densepure_viz.serving.sharing import SharedResults
from densepure_viz.serving.ui.requests import request_evaluations
from densepure_viz.serving.ui.validation import limits_for, model_id
from densepure_viz.toy2d import preset_maps

Loader = Callable[[str, torch.device], DensePureModels]  # (registry name, device) -> loaded models
SAMPLES = ASSETS / "samples" / "digits"  # shipped test digits (scripts/export_samples.py)
# Queue lanes: interactive model work (purify, high-density points) never waits behind long work
# (certifications); each lane has its own concurrency limit, so one of each runs at once.
INTERACTIVE = "interactive"
LONG = "long"
# Interactive requests computed at once when they share the batcher (engine.batching): they wait on it, and it
# computes one batch at a time; more wait in Gradio's queue, shown their place in line.
BATCH_SESSIONS = 8
# ZeroGPU: what one GPU call may ask for. Its duration is a reservation (the quota is charged the time used), and a
# visitor's daily quota is 2 minutes unauthenticated (hub docs, spaces-zerogpu): a request asking more could never
# run for them. Every model's caps (validation.limits_for) keep its capped requests under this.
MAX_GPU_SECONDS = 120.0
GPU_OVERHEAD_SECONDS = 5.0  # per call: the models copied to the GPU, the CUDA context and kernels warmed up, the attack
_ON_GPU: contextvars.ContextVar[bool] = contextvars.ContextVar("on_gpu", default=False)  # inside a spaces.GPU call


def spaces_module():
    """The `spaces` package (Hugging Face ZeroGPU) when importable, else None."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return None
    return spaces


def zero_gpu_space() -> bool:
    """Whether this process may run on ZeroGPU hardware, where CUDA exists only inside GPU calls: `spaces` importable,
    and SPACES_ZERO_GPU set (as ZeroGPU sets it) or, when unset, `spaces`'s own setting (spaces.config.Config.zero_gpu,
    false on CPU and dedicated-GPU Spaces); a `spaces` without that setting counts as ZeroGPU, the safe side."""
    spaces = spaces_module()
    if spaces is None:
        return False
    if os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    setting = getattr(getattr(getattr(spaces, "config", None), "Config", None), "zero_gpu", None)
    return True if setting is None else bool(setting)


def gpu_duration(evaluations: int, rate: float) -> float:
    """Seconds to reserve on ZeroGPU for `evaluations` UNet image-evaluations at `rate` per second: the fixed
    overhead plus the evaluations' time, at most MAX_GPU_SECONDS."""
    return min(MAX_GPU_SECONDS, GPU_OVERHEAD_SECONDS + evaluations / rate)


class ModelPool:
    """Models loaded once per (name, device), on first use; thread-safe."""

    def __init__(self, loader: Loader | None = None, names: tuple[str, ...] | None = None,
                 device: torch.device | str | None = None, specs: Mapping[str, ModelSpec] | None = None,
                 zero_gpu: bool = False):
        """loader(name, device) replaces loading each name's spec (tests pass tiny models); specs add or replace
        registry entries (the app's command-line model) and come first in `names` unless names is given.
        zero_gpu: CUDA exists only inside spaces.GPU calls (ZeroGPU), so models are loaded on the CPU and each
        call inside one gets a copy on `device`."""
        self.specs = {**REGISTRY, **(specs or {})}
        self.loader = loader or (lambda name, device: load_models(self.specs[name], device=device))
        self.names = names or tuple(dict.fromkeys([*(specs or {}), *REGISTRY]))
        if device is None:  # ZeroGPU: the GPU of the calls, whatever torch says outside them
            device = torch.device("cuda") if zero_gpu else default_device()
        self.device = torch.device(device)  # where requests compute
        self.zero_gpu = zero_gpu and self.device.type == "cuda"
        self.home = torch.device("cpu") if self.zero_gpu else self.device  # where models are loaded and kept
        self.default = self.names[0]  # the model the page opens with
        embedded = [n for n in self.names if n in self.specs and self.specs[n].embedded]
        self.embedded = embedded[0] if embedded else self.names[0]  # the fallback when a model cannot be loaded
        self._models: dict[tuple[str, str], DensePureModels] = {}
        self._loading: dict[tuple[str, str], threading.Lock] = {}  # one lock per model
        self._lock = threading.Lock()  # guards _loading

    def get(self, name: str) -> DensePureModels:
        """The loaded models for registry entry `name` (ModelLoadError when they cannot be loaded).

        Loaded models are returned without waiting; a model is loaded by one caller at a time, and a
        slow load (a hub download) never holds up requests for the models already loaded. Failures
        are not cached: the next request tries again (the hub may be back). On ZeroGPU, inside a GPU call: a copy
        of the CPU-loaded models on the GPU (the call's own; outside calls, the CPU models).
        """
        models = self._loaded(name)
        return models.to_device(self.device) if self.zero_gpu and _ON_GPU.get() else models

    def _loaded(self, name: str) -> DensePureModels:
        if name not in self.names:
            raise ModelLoadError(f"unknown model {name!r}; choose one of {', '.join(self.names)}")
        key = (name, str(self.home))
        if key in self._models:
            return self._models[key]
        with self._lock:
            lock = self._loading.setdefault(key, threading.Lock())
        with lock:  # later callers for the same model wait for this load, then get the cached models
            if key not in self._models:
                self._models[key] = self.loader(name, self.home)
            return self._models[key]

    def describe(self, name: str) -> str:
        """One line on a model."""
        spec = self.specs.get(name)
        return spec.description if spec is not None and spec.description else name


@dataclass(frozen=True)
class Sample:
    """A shipped sample image."""

    path: Path  # PNG file
    label: int  # true label written in its name (-1 when absent)

    @property
    def caption(self) -> str:
        return f"label {self.label}" if self.label >= 0 else self.path.stem


def list_samples(folder: Path = SAMPLES) -> list[Sample]:
    """The sample images of a folder (sorted by label, then name); empty when the folder is missing."""
    if not folder.is_dir():
        return []
    samples = [Sample(p, true_label(p)) for p in list_images(folder)]
    return sorted(samples, key=lambda s: (s.label, s.path.name))


def on_gpu(fn: Callable) -> Callable:
    """fn (a function or a generator function) marked as running inside a GPU call while it runs (ModelPool.get
    then hands out GPU copies); a generator is marked step by step, whichever thread runs the step."""
    if inspect.isgeneratorfunction(inspect.unwrap(fn)):
        @functools.wraps(fn)
        def steps(*args, **kwargs):
            token = _ON_GPU.set(True)
            try:
                frames = fn(*args, **kwargs)
            finally:
                _ON_GPU.reset(token)
            try:
                while True:
                    token = _ON_GPU.set(True)
                    try:
                        frame = next(frames)
                    except StopIteration:
                        return
                    finally:
                        _ON_GPU.reset(token)
                    yield frame
            finally:
                frames.close()  # a stopped request ends the body too, at once

        return steps

    @functools.wraps(fn)
    def call(*args, **kwargs):
        token = _ON_GPU.set(True)
        try:
            return fn(*args, **kwargs)
        finally:
            _ON_GPU.reset(token)

    return call


def gpu(fn: Callable, duration: Callable[..., float] | None = None) -> Callable:
    """`spaces.GPU(duration=duration)(fn)` when the `spaces` package is importable (Hugging Face ZeroGPU), else fn
    unchanged. duration takes fn's own arguments and returns seconds (ZeroGPU's dynamic duration); None: ZeroGPU's
    default (60 s)."""
    spaces = spaces_module()
    if spaces is None:
        return fn
    return spaces.GPU(duration=duration)(on_gpu(fn)) if duration is not None else spaces.GPU(on_gpu(fn))


@dataclass(frozen=True)
class ViewCaches:
    """Slow, pure results the views reuse, kept per app (each built app starts empty), least recently used out."""

    regions: Callable = field(default_factory=lambda: lru_cache(maxsize=32)(preset_maps))  # (preset, sigma) -> maps, cells
    training: Callable = field(default_factory=lambda: lru_cache(maxsize=4)(training_pca))  # (model, size) -> set, PCA


@dataclass
class AppContext:
    """Shared by every tab builder."""

    pool: ModelPool  # the models
    samples: list[Sample] = field(default_factory=list_samples)  # gallery images
    engine_concurrency: int = 1  # simultaneous interactive model requests without a batcher (1 on CPU, 2 on a GPU)
    shared: SharedResults = field(default_factory=SharedResults)  # identical requests' outputs, computed once
    caches: ViewCaches = field(default_factory=ViewCaches)  # the 2D maps, the training set's PCA
    # concurrent requests' network calls computed together, each keeping its bits (None: each computed alone)
    batcher: NetworkBatcher | None = field(default_factory=NetworkBatcher)
    batch_sessions: int = BATCH_SESSIONS  # interactive requests computed at once with a batcher

    def engine(self, models: DensePureModels):
        """A context manager giving the models a request computes with: a view of `models` whose network calls the
        batcher computes with the other requests' (bit for bit as alone), or `models` itself without a batcher
        and on ZeroGPU (each GPU call has its own copy of the models)."""
        return batched(None if self.pool.zero_gpu else self.batcher, models)

    @property
    def interactive_limit(self) -> int:
        """The interactive lane's concurrency: batch_sessions when requests share the batcher, else engine_concurrency."""
        return self.batch_sessions if self.batcher is not None and not self.pool.zero_gpu else self.engine_concurrency

    def gpu(self, body: Callable) -> Callable:
        """A view's body(request, progress) run in spaces.GPU for as long as its request needs (`gpu_seconds`);
        unchanged where `spaces` is not importable."""
        return gpu(body, duration=self.gpu_seconds)

    def gpu_seconds(self, request, *args, **kwargs) -> float:
        """ZeroGPU's duration for a request (called with the body's arguments, in the main process): its UNet
        evaluations at its model's GPU rate. A request that is refused (a bad value, a model that does not load)
        reserves only the overhead: the call itself says why in one line."""
        try:
            model = model_id(request.model, self.pool.names)
            count = request_evaluations(request, self.pool.get(model))
        except Exception:  # noqa: BLE001 - the GPU call reports it
            return gpu_duration(0, limits_for(None).gpu_rate)
        return gpu_duration(count, limits_for(model).gpu_rate)

    @property
    def default_image(self) -> str | None:
        """The first sample, the input of the first view."""
        return str(self.samples[0].path) if self.samples else None
