"""Model registry and loading: a diffusers DDPM (UNet2DModel + DDPMScheduler) and a timm classifier.

One loading path serves every source. A source is either a local folder or a Hugging Face hub id;
a hub id is first resolved to a local snapshot folder (the cache, or a download of only safetensors
and JSON files), then loaded exactly like a local folder. Loading is safe by construction: weights
are read from safetensors only (no pickle is ever downloaded or opened) and nothing runs remote code.
Offline, a hub id that is not cached fails at once with a message naming the local-folder route.
Before a pair is used, `check_pair` holds it together: the UNet's images have the classifier's channels and
a size it takes (its input side is the UNet's or a whole multiple of it, like a CIFAR-10 classifier trained
at 224 = 7 x 32), a preset's replaced sources make its images, and there is one class name per output.

Loaded models are shared by concurrent requests and never changed by one: a DensePureModels freezes
both networks when it is created (attacks differentiate with respect to the input only) and, on
CUDA, measures then the UNet's activation memory per image, by which `runtime.auto_batch` sizes batches.
"""

from __future__ import annotations

import copy
import json
import socket
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

import timm
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel

from densepure_viz.errors import InputError
from densepure_viz.models.tracing import run_network
from densepure_viz.paths import ASSETS

HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.md"]  # never *.bin / *.pt / *.pth / *.ckpt
PROBE_BATCH = 8  # images of the one UNet call that measures activation memory per image on CUDA
_PROBE_LOCK = threading.Lock()  # probes reset CUDA's process-wide peak counter: one probe at a time
CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class ModelLoadError(InputError):
    """A model could not be loaded; the message says why and what to do."""


@dataclass(frozen=True)
class ModelSpec:
    """Where a DensePure model pair comes from."""

    name: str  # registry key shown in the UI and accepted by --model
    diffusion: str  # diffusers DDPM: local folder or hub id (pipeline layout or bare UNet folder)
    classifier: str  # timm classifier: local folder or hub id (timm's config.json + model.safetensors)
    description: str = ""  # one line for the UI
    labels: tuple[str, ...] | None = None  # class names; default: the classifier's label_names
    embedded: bool = False  # shipped in assets/ (works offline)
    dark_background: bool = False  # trained on light strokes on black: invert light-background inputs
    image_shape: tuple[int, int] | None = None  # (channels, side) of a preset's images; replaced sources must match


REGISTRY: dict[str, ModelSpec] = {
    "digits": ModelSpec(
        name="digits",
        diffusion=str(ASSETS / "digits" / "diffusion"),
        classifier=str(ASSETS / "digits" / "classifier"),
        description="Embedded: 16x16 handwritten digits, DDPM + ResNet trained by this project (offline)",
        embedded=True,
        dark_background=True,
        image_shape=(1, 16),
    ),
    "cifar10": ModelSpec(
        name="cifar10",
        diffusion="google/ddpm-cifar10-32",
        classifier="grodino/resnet18_cifar10",
        description="Hub: google/ddpm-cifar10-32 (35.7M UNet) + timm ResNet-18 for CIFAR-10 (needs network once)",
        labels=CIFAR10_LABELS,
        image_shape=(3, 32),
    ),
}


@dataclass
class DensePureModels:
    """A loaded DDPM and classifier, on one device, with what the engine needs to drive them."""

    name: str  # registry name or source description
    unet: UNet2DModel  # epsilon/x0/v-predicting UNet, eval mode
    scheduler: DDPMScheduler  # its training schedule (alphas_cumprod, variance type, clipping)
    classifier: torch.nn.Module  # timm model taking normalised images at `classifier_size`
    labels: tuple[str, ...]  # class names, index = classifier output
    mean: torch.Tensor  # (1, C, 1, 1) classifier normalisation
    std: torch.Tensor  # (1, C, 1, 1)
    classifier_size: tuple[int, int]  # (H, W) the classifier expects; inputs are resized to it
    classifier_interpolation: str = "bilinear"  # resize mode when sizes differ
    dark_background: bool = False  # see ModelSpec.dark_background
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32  # network dtype (float16/bfloat16 on GPU)
    unet_bytes_per_image: int = field(init=False, default=0)  # CUDA: UNet activation memory per image; 0 on CPU

    def __post_init__(self) -> None:
        """Freeze both networks (shared models are never toggled per request); on CUDA, probe the UNet's memory."""
        self.unet.requires_grad_(False)
        self.classifier.requires_grad_(False)
        if self.device.type == "cuda":
            self.unet_bytes_per_image = self._probe_unet_bytes_per_image()

    def _probe_unet_bytes_per_image(self) -> int:
        """Peak activation memory of one UNet call per image, measured on a PROBE_BATCH batch.

        CUDA's peak counter is process-wide, so it is reset only here, when models are created (never
        from request code), and under a lock so that two loads never reset each other's probe. The
        counter sees every allocation of the process: GPU work running at the same moment blurs it.
        """
        with _PROBE_LOCK, torch.inference_mode(), self.autocast():
            torch.cuda.synchronize(self.device)
            before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            probe = torch.zeros(PROBE_BATCH, self.channels, self.image_size, self.image_size, device=self.device)
            self.unet(probe.to(self.dtype), 0).sample.float()
            torch.cuda.synchronize(self.device)
            return max(1, (torch.cuda.max_memory_allocated(self.device) - before) // PROBE_BATCH)

    def to_device(self, device: torch.device | str, dtype: torch.dtype | None = None) -> DensePureModels:
        """A copy of these models on `device`, networks in `dtype` (default: the device's, see default_dtype); these
        stay where they are. ZeroGPU keeps the models on the CPU and moves a copy to CUDA inside each GPU call."""
        device = torch.device(device)
        dtype = dtype or default_dtype(device)
        return replace(self, unet=copy.deepcopy(self.unet).to(device, dtype),
                       classifier=copy.deepcopy(self.classifier).to(device, dtype),
                       mean=self.mean.to(device, dtype), std=self.std.to(device, dtype), device=device, dtype=dtype)

    @property
    def channels(self) -> int:
        return int(self.unet.config.in_channels)

    @property
    def image_size(self) -> int:
        return _side(self.unet.config.sample_size)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def autocast(self) -> AbstractContextManager:
        """Autocast to `dtype` on `device`, the precision the engine runs both networks in (a no-op in float32)."""
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of images (B, C, H, W) in [0, 1]."""
        x = images.to(self.device, self.dtype)
        if tuple(x.shape[-2:]) != self.classifier_size:
            mode = "bicubic" if self.classifier_interpolation == "bicubic" else "bilinear"
            x = F.interpolate(x, size=self.classifier_size, mode=mode, align_corners=False)
        return run_network(self.classifier, "classifier", (x - self.mean) / self.std).float()

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Labels (B,) of images (B, C, H, W) in [0, 1]."""
        return self.logits(images).argmax(dim=1)


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """float32 on CPU; bfloat16 on GPUs that support it, else float16."""
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub endpoint accepts a TCP connection (fails in milliseconds without DNS)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def is_hub_id(source: str) -> bool:
    """Whether a model source names a hub repository ('org/name', not an existing path) rather than a local folder."""
    return not Path(source).expanduser().exists() and not source.startswith((".", "/", "~")) and source.count("/") == 1


def resolve_source(source: str) -> Path:
    """A local folder for `source`: the folder itself, or a snapshot of hub id `source`.

    Only safetensors, JSON and text files are fetched. Offline, a hub id missing from the cache
    raises ModelLoadError at once (no retries), saying how to use a local folder instead.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.is_relative_to(ASSETS):
        raise ModelLoadError(f"embedded model files are missing at {path}; rebuild them with "
                             f"`python -m densepure_viz.models.train` (or restore assets/ from git)")
    if path.exists() or source.startswith((".", "/", "~")) or source.count("/") != 1:
        what = "is not a folder" if path.exists() else "does not exist"
        raise ModelLoadError(f"model source {source!r} {what}, and it is not a hub id like 'org/name'")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(source, allow_patterns=HUB_FILES, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    if not _hub_reachable():
        raise ModelLoadError(
            f"cannot reach the Hugging Face hub to download {source!r} (no local folder of that name either, "
            f"and it is not in the local cache). "
            f"Where you have network, run `hf download {source} --local-dir DIR` and pass DIR instead "
            f"(a local folder; CLI: --diffusion DIR --classifier DIR), or use the embedded model 'digits'."
        )
    try:
        return Path(snapshot_download(source, allow_patterns=HUB_FILES))
    except Exception as exc:  # hub errors: unknown repo, gated, network dropped mid-way
        raise ModelLoadError(f"could not download {source!r} from the hub: {exc}") from exc


def load_diffusion(source: str, dtype: torch.dtype = torch.float32) -> tuple[UNet2DModel, DDPMScheduler]:
    """UNet (in `dtype`) and scheduler from a DDPM folder/hub id, pipeline layout (unet/, scheduler/) or flat."""
    root = resolve_source(source)
    sub = "unet" if (root / "unet").is_dir() else None
    sched_sub = "scheduler" if (root / "scheduler").is_dir() else None
    needed = [Path(sub or "") / "config.json", Path(sub or "") / "diffusion_pytorch_model.safetensors",
              Path(sched_sub or "") / "scheduler_config.json"]
    missing_files = [str(name) for name in needed if not (root / name).is_file()]
    if missing_files:  # said here, before diffusers logs its own search for them
        raise ModelLoadError(
            f"{source!r} is not a diffusers DDPM folder: it lacks {', '.join(missing_files)} (expected config.json and "
            "diffusion_pytorch_model.safetensors, flat or in unet/, and scheduler_config.json, flat or in scheduler/)"
        )
    try:
        unet, info = UNet2DModel.from_pretrained(
            root, subfolder=sub, use_safetensors=True, low_cpu_mem_usage=False, torch_dtype=dtype,
            output_loading_info=True,
        )
        scheduler = DDPMScheduler.from_pretrained(root, subfolder=sched_sub)
    except Exception as exc:  # diffusers, safetensors and torch raise several types for bad or corrupt files
        raise ModelLoadError(
            f"{source!r} is not a diffusers DDPM with safetensors weights "
            f"(expected config.json + diffusion_pytorch_model.safetensors and scheduler_config.json): {_brief(exc)}"
        ) from exc
    missing = info["missing_keys"] + [key for key, *_ in info["mismatched_keys"]]
    if missing:  # diffusers would fill these with random values and only warn
        raise ModelLoadError(
            f"{source!r}: the weights file lacks {len(missing)} of the UNet's tensors (e.g. {missing[0]!r}); "
            "it is corrupt or belongs to another model"
        )
    return unet.eval(), scheduler


def load_classifier(source: str) -> tuple[torch.nn.Module, dict]:
    """A timm classifier and its pretrained_cfg from a folder/hub id in timm's hub layout."""
    root = resolve_source(source)
    if not (root / "model.safetensors").is_file():
        raise ModelLoadError(f"{source!r} has no model.safetensors (only safetensors weights are loaded)")
    try:
        model = timm.create_model(f"local-dir:{root}", pretrained=True)
    except Exception as exc:  # timm raises several types for a bad config or state dict
        raise ModelLoadError(f"{source!r} is not a loadable timm classifier: {_brief(exc)}") from exc
    return model.eval(), dict(model.pretrained_cfg)


def _brief(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message, at most `limit` characters (the cause stays chained)."""
    lines = str(exc).strip().splitlines()
    line = lines[0] if lines else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _label_names(cfg: dict, root_config: Path, num_classes: int) -> tuple[str, ...]:
    """Class names from the timm config (label_names), else '0'..'C-1'."""
    names = cfg.get("label_names")
    if names is None and root_config.is_file():
        names = json.loads(root_config.read_text()).get("label_names")
    return tuple(names) if names else tuple(str(i) for i in range(num_classes))


def classifier_channels(classifier: torch.nn.Module, cfg: dict) -> int:
    """Channels the classifier takes: its first convolution's (as pretrained_cfg names it), else cfg's input_size."""
    try:
        return int(classifier.get_submodule(cfg["first_conv"]).in_channels)
    except (AttributeError, KeyError, TypeError):  # no such layer, no first_conv, or several named
        return int(cfg["input_size"][0])


@dataclass(frozen=True)
class PairShape:
    """What `check_pair` compares: the shapes and class counts of a loaded DDPM and classifier."""

    unet_channels: int  # channels of the UNet's images
    unet_side: int  # side of its (square) images
    classifier_channels: int  # channels the classifier takes
    classifier_size: tuple[int, int]  # (H, W) it takes; inputs are resized to it
    stats: tuple[int, int]  # values in its normalisation mean and std (one per channel each)
    outputs: int  # classes it scores
    labels: int  # class names the model was given


def _labels_origin(spec: ModelSpec) -> str:
    """Where a spec's class names come from, as the message about a count mismatch names it."""
    preset = REGISTRY.get(spec.name)
    if spec.labels is None:
        return "the classifier's config.json (label_names)"
    if preset is not None and spec.labels == preset.labels:
        return f"the preset {spec.name!r}"
    return "--labels"


def check_pair(spec: ModelSpec, shape: PairShape) -> None:
    """Refuse (ModelLoadError, one line saying what to pair) a DDPM and classifier that do not fit together.

    A preset's replaced sources must make its images; the UNet's images must have the classifier's channels
    (else normalisation would silently broadcast a grey image to colour) and a size the classifier takes: its
    square input side equals the UNet's or is a whole multiple of it (upsampled, like CIFAR-10 classifiers
    trained at 224 = 7 x 32), never a reduction of what the diffusion model restored; one name per class.
    """
    unet = f"{shape.unet_channels}x{shape.unet_side}x{shape.unet_side}"
    if spec.image_shape and spec.image_shape != (shape.unet_channels, shape.unet_side):
        channels, side = spec.image_shape
        raise ModelLoadError(
            f"the preset {spec.name!r} is for {channels}x{side}x{side} images, but the diffusion model "
            f"{spec.diffusion!r} makes {unet}: pass a DDPM made for {channels}x{side}x{side} images, or leave out --model"
        )
    if shape.unet_channels != shape.classifier_channels:
        raise ModelLoadError(
            f"the diffusion model {spec.diffusion!r} makes {unet} images, but the classifier {spec.classifier!r} takes "
            f"{shape.classifier_channels}-channel input: pair models made for the same images"
        )
    if set(shape.stats) != {shape.classifier_channels}:
        raise ModelLoadError(
            f"the classifier {spec.classifier!r} takes {shape.classifier_channels}-channel input, but its "
            f"pretrained_cfg's mean and std have {' and '.join(map(str, shape.stats))} values: fix its config.json"
        )
    height, width = shape.classifier_size
    if height != width or height % shape.unet_side:
        raise ModelLoadError(
            f"the classifier {spec.classifier!r} takes {height}x{width} input, which is not the diffusion model's "
            f"{shape.unet_side}x{shape.unet_side} nor a whole multiple of it (like 224 = 7 x 32): pair models made "
            f"for the same images"
        )
    if shape.labels != shape.outputs:
        raise ModelLoadError(
            f"{_labels_origin(spec)} names {shape.labels} classes, but the classifier {spec.classifier!r} has "
            f"{shape.outputs} outputs: give {shape.outputs} class names with --labels, or a classifier with "
            f"{shape.labels} classes"
        )


def load_models(
    spec: ModelSpec | str,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> DensePureModels:
    """Load a registry entry (or a ModelSpec) onto `device` (default: CUDA if present, else CPU).

    ModelLoadError (one line) when a source is missing, unreachable or malformed, or the pair does not fit.
    """
    if isinstance(spec, str):
        if spec not in REGISTRY:
            raise ModelLoadError(f"unknown model {spec!r}; choose one of {sorted(REGISTRY)}")
        spec = REGISTRY[spec]
    device = torch.device(device) if device is not None else default_device()
    dtype = dtype or default_dtype(device)
    unet, scheduler = load_diffusion(spec.diffusion, dtype)
    classifier, cfg = load_classifier(spec.classifier)
    num_classes = int(classifier.num_classes)  # the outputs it has (a pretrained_cfg may keep its source's count)
    labels = spec.labels or _label_names(cfg, resolve_source(spec.classifier) / "config.json", num_classes)
    channels, side = int(unet.config.in_channels), _side(unet.config.sample_size)
    size = tuple(cfg.get("input_size", (channels, side, side))[1:])
    mean, std = cfg.get("mean", (0.5,) * channels), cfg.get("std", (0.5,) * channels)
    check_pair(spec, PairShape(channels, side, classifier_channels(classifier, cfg), size,
                               (len(mean), len(std)), num_classes, len(labels)))
    return DensePureModels(
        name=spec.name,
        unet=unet.to(device),
        scheduler=scheduler,
        classifier=classifier.to(device, dtype),
        labels=tuple(labels),
        mean=torch.tensor(mean, dtype=dtype, device=device).view(1, -1, 1, 1),
        std=torch.tensor(std, dtype=dtype, device=device).view(1, -1, 1, 1),
        classifier_size=size,
        classifier_interpolation=cfg.get("interpolation", "bilinear"),
        dark_background=spec.dark_background,
        device=device,
        dtype=dtype,
    )


def _side(sample_size: int | list[int] | tuple[int, ...]) -> int:
    """The side of a UNet's square samples (diffusers stores an int or an (H, W) pair)."""
    return int(sample_size if isinstance(sample_size, int) else sample_size[0])


def custom_spec(diffusion: str, classifier: str, labels: tuple[str, ...] | None = None) -> ModelSpec:
    """A ModelSpec for any diffusers DDPM and timm classifier (local folders or hub ids)."""
    return ModelSpec(name=f"{diffusion} + {classifier}", diffusion=diffusion, classifier=classifier, labels=labels)


def parse_labels(text: str | None) -> tuple[str, ...] | None:
    """Class names from "a,b,c" (None when not given); empty names are refused."""
    if text is None:
        return None
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise InputError(f"--labels must be comma-separated class names, got {text!r}")
    return names


def model_spec(model: str | None = None, diffusion: str | None = None, classifier: str | None = None,
               labels: tuple[str, ...] | None = None) -> ModelSpec:
    """The model a command line asks for: a preset (default: the embedded digits), a preset with its sources
    replaced (--model with --diffusion/--classifier: its class names, preprocessing and name kept, so its caps
    still apply), or a custom pair (--diffusion/--classifier alone, class names from --labels or the classifier)."""
    if bool(diffusion) != bool(classifier):
        raise InputError("--diffusion and --classifier go together")
    if model is None and diffusion:
        return custom_spec(diffusion, classifier, labels)
    model = model or "digits"
    if model not in REGISTRY:
        raise ModelLoadError(f"unknown model {model!r}; choose one of {sorted(REGISTRY)}")
    preset = REGISTRY[model]
    if not diffusion:
        return preset if labels is None else replace(preset, labels=labels)
    return replace(preset, diffusion=diffusion, classifier=classifier, labels=labels or preset.labels, embedded=False,
                   description=f"{preset.description.split(':')[0]}: {diffusion} + {classifier}")
