"""Loading: hub-layout round trip, safe formats only, clear offline and bad-source errors."""

import socket

import huggingface_hub
import pytest
import torch
from safetensors.torch import load_file

from densepure_viz.models import registry as models_module
from densepure_viz.models.registry import REGISTRY, ModelLoadError, custom_spec, load_classifier, load_models, resolve_source


def test_round_trip_of_a_model_saved_in_hub_layout(tiny_dirs, tiny_models):
    diffusion, classifier = tiny_dirs
    saved = load_file(diffusion / "unet" / "diffusion_pytorch_model.safetensors")
    loaded = tiny_models.unet.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    saved_cls = load_file(classifier / "model.safetensors")
    assert all(torch.equal(v, tiny_models.classifier.state_dict()[k]) for k, v in saved_cls.items())
    assert tiny_models.labels == tuple(str(i) for i in range(10))
    assert tiny_models.image_size == 8 and tiny_models.channels == 1


def test_networks_are_frozen_from_creation(tiny_models):
    """Loaded models are shared between requests, so none of them toggles requires_grad: both networks load frozen."""
    params = [*tiny_models.unet.parameters(), *tiny_models.classifier.parameters()]
    assert params and not any(p.requires_grad for p in params)


def test_flat_unet_folder_loads_too(tmp_path, tiny_dirs):
    """A bare UNet folder with scheduler_config.json beside it (like google/ddpm-cifar10-32) loads."""
    import shutil

    diffusion, classifier = tiny_dirs
    flat = tmp_path / "flat"
    shutil.copytree(diffusion / "unet", flat)
    shutil.copy(diffusion / "scheduler" / "scheduler_config.json", flat)
    m = load_models(custom_spec(str(flat), str(classifier)), device="cpu")
    assert m.scheduler.config.num_train_timesteps == 1000


def test_pickle_only_classifier_is_refused(tmp_path, tiny_dirs):
    import shutil

    _, classifier = tiny_dirs
    bad = tmp_path / "pickled"
    shutil.copytree(classifier, bad)
    (bad / "model.safetensors").rename(bad / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="safetensors"):
        load_classifier(str(bad))


class NetworkLog:
    """Records every hub download and every DNS lookup or TCP connection this process attempts (and refuses them)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.downloads: list[dict] = []  # keyword arguments of each snapshot_download call
        self.connections: list[object] = []  # hosts looked up and addresses connected to
        real_snapshot = huggingface_hub.snapshot_download

        def snapshot(*args, **kwargs):
            self.downloads.append(kwargs)
            return real_snapshot(*args, **kwargs)

        def refuse(what):
            def attempt(*args, **kwargs):
                self.connections.append(args[1] if what == "connect" else args[0])
                raise OSError(f"network refused by the test ({what})")
            return attempt

        monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
        monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
        monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
        monkeypatch.setattr(socket.socket, "connect", refuse("connect"))

    @property
    def online_downloads(self) -> list[dict]:
        return [kw for kw in self.downloads if not kw.get("local_files_only")]


def test_offline_hub_id_fails_at_once_with_directions(tmp_path, monkeypatch):
    """Not in the cache and the hub unreachable: one cache look-up, one reachability check, no download, no retry."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    checks = []

    def unreachable(timeout: float = 3.0) -> bool:
        checks.append(timeout)
        return False

    monkeypatch.setattr(models_module, "_hub_reachable", unreachable)
    net = NetworkLog(monkeypatch)
    with pytest.raises(ModelLoadError, match="local folder") as info:
        resolve_source("google/ddpm-cifar10-32")
    assert "google/ddpm-cifar10-32" in str(info.value)
    assert len(checks) == 1, "the hub's reachability was checked more than once (a retry loop)"
    assert len(net.downloads) == 1 and net.downloads[0]["local_files_only"], net.downloads
    assert not net.online_downloads and not net.connections


def test_real_offline_environment_fails_fast(tmp_path, monkeypatch):
    """With HF_HUB_OFFLINE the hub is never contacted (CI has no hub access either way)."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    net = NetworkLog(monkeypatch)
    with pytest.raises(ModelLoadError, match="cannot reach the Hugging Face hub"):
        load_models("cifar10", device="cpu")
    assert not net.connections, f"the hub was contacted: {net.connections}"
    assert net.downloads and not net.online_downloads, net.downloads  # the cache only, then the directions


@pytest.mark.parametrize("source", ["../../no-such-model", "/nonexistent/folder", "not a repo", "a/b/c", "~/missing"])
def test_bad_sources_are_refused(source):
    with pytest.raises(ModelLoadError):
        resolve_source(source)


def test_unknown_registry_name():
    with pytest.raises(ModelLoadError, match="unknown model"):
        load_models("imagenet-9000")


def test_registry_embedded_entry_points_inside_assets():
    assert REGISTRY["digits"].embedded and "assets" in REGISTRY["digits"].diffusion
    assert not REGISTRY["cifar10"].embedded


def test_folder_that_is_not_a_model_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="not a diffusers DDPM"):
        load_models(custom_spec(str(tmp_path), str(tmp_path)))


def _shape(**changes) -> "PairShape":
    """The cifar10 preset's shapes (3x32x32 UNet, 224x224 RGB classifier, 10 classes), with `changes`."""
    from dataclasses import replace

    from densepure_viz.models.registry import PairShape

    return replace(PairShape(3, 32, 3, (224, 224), (3, 3), 10, 10), **changes)


@pytest.mark.parametrize("changes, message", [
    ({}, None),
    ({"classifier_size": (32, 32)}, None),  # the UNet's own size
    ({"classifier_size": (64, 64)}, None),  # a whole multiple: upsampled, as CIFAR classifiers trained at 224
    ({"classifier_size": (16, 16)}, "nor a whole multiple"),  # would shrink what the diffusion model restored
    ({"classifier_size": (48, 48)}, "nor a whole multiple"),
    ({"classifier_size": (224, 192)}, "nor a whole multiple"),  # not square: the resize would distort
    ({"classifier_channels": 1, "stats": (1, 1)}, "takes 1-channel input"),
    ({"stats": (3, 1)}, "mean and std have 3 and 1 values"),
    ({"labels": 9}, "names 9 classes, but the classifier"),
])
def test_check_pair_accepts_only_pairs_that_fit(changes, message):
    from densepure_viz.models.registry import check_pair, custom_spec

    spec = custom_spec("unet-dir", "classifier-dir", tuple("abcdefghij"))
    if message is None:
        check_pair(spec, _shape(**changes))
    else:
        with pytest.raises(ModelLoadError, match=message):
            check_pair(spec, _shape(**changes))


def test_a_preset_with_replaced_sources_must_make_its_images():
    """--model cifar10 with a 1x16x16 DDPM: refused even though the pair itself fits (grey 16 with grey 16)."""
    from densepure_viz.models.registry import check_pair, model_spec

    fitting_grey_pair = _shape(unet_channels=1, unet_side=16, classifier_channels=1, classifier_size=(16, 16), stats=(1, 1))
    check_pair(model_spec(None, "unet-dir", "classifier-dir"), fitting_grey_pair)
    with pytest.raises(ModelLoadError, match="the preset 'cifar10' is for 3x32x32 images, but .* makes 1x16x16"):
        check_pair(model_spec("cifar10", "unet-dir", "classifier-dir"), fitting_grey_pair)


def test_class_count_is_the_classifiers_outputs_not_its_source_config(tmp_path, tiny_dirs):
    """A fine-tuned timm model keeps its source's pretrained_cfg num_classes (often 1000): the outputs count."""
    import json
    import shutil

    diffusion, classifier = tiny_dirs
    edited = tmp_path / "classifier"
    shutil.copytree(classifier, edited)
    config = json.loads((edited / "config.json").read_text())
    config["pretrained_cfg"]["num_classes"] = 1000
    (edited / "config.json").write_text(json.dumps(config))
    assert load_models(custom_spec(str(diffusion), str(edited)), device="cpu").num_classes == 10
    config["pretrained_cfg"]["mean"] = [0.5, 0.5, 0.5]  # ImageNet-like stats left on a grey classifier
    (edited / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="1-channel input, but its pretrained_cfg's mean and std have 3 and 1 values"):
        load_models(custom_spec(str(diffusion), str(edited)), device="cpu")
