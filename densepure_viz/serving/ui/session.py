"""What the app shares between requests: lazily loaded models, the device, the samples, the GPU decorator,
and the outputs of identical requests (computed once: a class sending the same request at once).

Models are loaded on first use (never at import or build time) and cached per (name, device). A
model that cannot be loaded (offline hub id, missing files) raises ModelLoadError with its message;
the UI shows it and falls back to the embedded model. With the `spaces` package installed (Hugging
Face Spaces), heavy handlers are wrapped in `spaces.GPU`.
"""

from __future__ import annotations

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
from densepure_viz.serving.sharing import SharedResults
from densepure_viz.toy2d import preset_maps

Loader = Callable[[str, torch.device], DensePureModels]  # (registry name, device) -> loaded models
SAMPLES = ASSETS / "samples" / "digits"  # shipped test digits (scripts/export_samples.py)
# Queue lanes: interactive model work (purify, high-density points) never waits behind long work
# (certifications); each lane has its own concurrency limit, so one of each runs at once.
INTERACTIVE = "interactive"
LONG = "long"


class ModelPool:
    """Models loaded once per (name, device), on first use; thread-safe."""

    def __init__(self, loader: Loader | None = None, names: tuple[str, ...] | None = None,
                 device: torch.device | str | None = None, specs: Mapping[str, ModelSpec] | None = None):
        """loader(name, device) replaces loading each name's spec (tests pass tiny models); specs add or replace
        registry entries (the app's command-line model) and come first in `names` unless names is given."""
        self.specs = {**REGISTRY, **(specs or {})}
        self.loader = loader or (lambda name, device: load_models(self.specs[name], device=device))
        self.names = names or tuple(dict.fromkeys([*(specs or {}), *REGISTRY]))
        self.device = torch.device(device) if device is not None else default_device()
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
        are not cached: the next request tries again (the hub may be back).
        """
        if name not in self.names:
            raise ModelLoadError(f"unknown model {name!r}; choose one of {', '.join(self.names)}")
        key = (name, str(self.device))
        if key in self._models:
            return self._models[key]
        with self._lock:
            lock = self._loading.setdefault(key, threading.Lock())
        with lock:  # later callers for the same model wait for this load, then get the cached models
            if key not in self._models:
                self._models[key] = self.loader(name, self.device)
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


def gpu(fn: Callable) -> Callable:
    """`spaces.GPU(fn)` when the `spaces` package is importable (Hugging Face ZeroGPU), else fn unchanged."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return fn
    return spaces.GPU(fn)


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
    engine_concurrency: int = 1  # simultaneous interactive model requests (1 on CPU, 2 on a GPU)
    shared: SharedResults = field(default_factory=SharedResults)  # identical requests' outputs, computed once
    caches: ViewCaches = field(default_factory=ViewCaches)  # the 2D maps, the training set's PCA

    @property
    def default_image(self) -> str | None:
        """The first sample, the input of the first view."""
        return str(self.samples[0].path) if self.samples else None
