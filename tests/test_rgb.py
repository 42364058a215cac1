"""The RGB path end to end: the cifar10 preset on exact-architecture random-weight replicas, at 32x32 RGB.

The replicas (tests/rgb_replicas.py: google/ddpm-cifar10-32's 35.7M UNet and scheduler in the hub's flat
layout, a ResNet-18 in timm's format with grodino/resnet18_cifar10's 224-bicubic CIFAR pretrained_cfg) are
written once per session (conftest's `replicas` and `rgb_models`). Purify, certify (fixed-n and sequential), attack and evaluate run through the
CLI as a lab would (`--model cifar10 --diffusion DIR --classifier DIR`), checked against the engine's own
APIs on the same seeds and against closed forms; class names are CIFAR-10's. Sizes are tiny (K <= 2, b <= 2,
n <= 10): one UNet call on 2 CPU cores takes about a second here.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from scipy.stats import beta, norm

from densepure_viz.engine.purify import PurifyConfig, purify
from densepure_viz.models.inputs import folder_images, load_input, load_labelled
from densepure_viz.models.registry import CIFAR10_LABELS, ModelLoadError, load_models, model_spec
from densepure_viz.paths import ROOT
from densepure_viz.serving.cli import main
from densepure_viz.smoothing.base import smoothed
from densepure_viz.smoothing.sequential import SequentialConfig, sequential_certify
from rgb_replicas import CIFAR_MEAN, CIFAR_STD, Replicas, save_classifier_replica

pytestmark = pytest.mark.slow  # the 35.7M UNet: about a second per call on 2 cores


def write_rgb(path: Path, seed: int) -> Path:
    """A seeded 32x32 RGB picture (smooth colour blobs, not grey: every channel differs)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    Image.fromarray(coarse).resize((32, 32), Image.Resampling.BILINEAR).save(path)
    return path


def cli_json(capsys, replicas: Replicas, *argv: str) -> dict:
    """`python -m densepure_viz ARGV --model cifar10 --diffusion DIR --classifier DIR --json`, in this process."""
    models = ["--model", "cifar10", "--diffusion", str(replicas.diffusion), "--classifier", str(replicas.classifier)]
    assert main([*argv, *models, "--json", "--device", "cpu"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_replicas_load_as_the_cifar10_preset_expects(replicas, rgb_models):
    """Flat DDPM folder, the hub's architecture and schedule, the classifier's 224 bicubic CIFAR preprocessing."""
    assert sorted(p.name for p in replicas.diffusion.iterdir()) == [
        "config.json", "diffusion_pytorch_model.safetensors", "scheduler_config.json"]
    assert sum(p.numel() for p in rgb_models.unet.parameters()) == 35_746_307  # google/ddpm-cifar10-32's count
    assert (rgb_models.channels, rgb_models.image_size, rgb_models.labels) == (3, 32, CIFAR10_LABELS)
    assert rgb_models.classifier_size == (224, 224) and rgb_models.classifier_interpolation == "bicubic"
    assert rgb_models.mean.view(-1).tolist() == pytest.approx(CIFAR_MEAN)
    assert rgb_models.std.view(-1).tolist() == pytest.approx(CIFAR_STD)
    assert rgb_models.scheduler.config.variance_type == "fixed_large" and rgb_models.scheduler.config.clip_sample
    saved = load_file(replicas.classifier / "model.safetensors")
    assert all(torch.equal(v, rgb_models.classifier.state_dict()[k]) for k, v in saved.items())


def test_purify_cli_matches_the_engine_and_names_the_class(tmp_path, capsys, replicas, rgb_models):
    image = write_rgb(tmp_path / "blob.png", 0)
    out = cli_json(capsys, replicas, "purify", str(image), "--sigma", "0.25", "--seeds", "2", "--steps", "2",
                   "--seed", "3")
    x = load_input(image, rgb_models)
    assert x.shape == (3, 32, 32) and not torch.equal(x[0], x[1])  # colour kept
    result = purify(rgb_models, x, PurifyConfig(sigma=0.25, seeds=2, steps=2, sampler="fast"), seed=3)
    assert (out["label"], out["per_seed"], out["t_star"]) == (result.label, result.per_seed, result.t_star)
    assert out["label_name"] == CIFAR10_LABELS[result.label] and out["model"] == "cifar10"
    assert sum(out["votes"].values()) == 2


def test_certify_cli_radius_is_the_clopper_pearson_closed_form(tmp_path, capsys, replicas):
    """Fixed-n CERTIFY through DensePure: p_lower = Beta(alpha; count, n - count + 1), radius = sigma Phi^-1(p_lower)."""
    image = write_rgb(tmp_path / "blob_label8.png", 1)
    sigma, n, alpha = 0.25, 8, 0.1
    out = cli_json(capsys, replicas, "certify", str(image), "--sigma", str(sigma), "--n0", "2", "--n", str(n),
                   "--alpha", str(alpha), "--seeds", "2", "--steps", "1", "--seed", "0")
    count = out["count"]
    assert out["n"] == n and sum(out["counts"]) == n and count == out["counts"][out["top_class"]]
    p_lower = beta.ppf(alpha, count, n - count + 1) if count else 0.0
    assert out["p_lower"] == pytest.approx(p_lower)
    if p_lower > 0.5:
        assert out["label"] == out["top_class"] and out["label_name"] == CIFAR10_LABELS[out["label"]]
        assert out["radius"] == pytest.approx(sigma * norm.ppf(p_lower))
    else:
        assert out["label"] is None and out["label_name"] is None and out["radius"] == 0


def test_sequential_certify_cli_matches_the_engine(tmp_path, capsys, replicas, rgb_models):
    image = write_rgb(tmp_path / "blob.png", 2)
    out = cli_json(capsys, replicas, "certify", str(image), "--sequential", "--radius", "0.1", "--n", "10",
                   "--sigma", "0.25", "--seeds", "1", "--steps", "1", "--alpha", "0.1", "--seed", "4")
    cfg = PurifyConfig(sigma=0.25, seeds=1, steps=1, sampler="fast")
    s = smoothed(rgb_models, load_input(image, rgb_models), "densepure", cfg, 4)
    result = sequential_certify(s.base, 10, 0.25, SequentialConfig(alpha=0.1, n=10, radius=0.1), s.chunk)
    assert (out["decision"], out["draws_used"], out["counts"]) == (result.decision, result.draws_used, result.counts)
    assert out["label_name"] == (None if result.label is None else CIFAR10_LABELS[result.label])


def test_attack_cli_writes_an_rgb_image_within_budget(tmp_path, capsys, replicas, rgb_models):
    image = write_rgb(tmp_path / "blob_label3.png", 3)
    adv = tmp_path / "adv.png"
    eps = 8 / 255
    out = cli_json(capsys, replicas, "attack", str(image), "--eps", str(eps), "--norm", "linf", "--steps", "2",
                   "--out", str(adv))
    assert (out["label"], out["label_source"], out["label_name"]) == (3, "file name", "cat")
    assert out["clean_label_name"] == CIFAR10_LABELS[out["clean_label"]]
    assert out["adversarial_label_name"] == CIFAR10_LABELS[out["adversarial_label"]]
    written = load_input(adv, rgb_models)
    assert written.shape == (3, 32, 32)
    assert (written - load_input(image, rgb_models)).abs().max() <= eps + 0.5 / 255  # PNG rounding


def test_evaluate_runs_the_table_on_a_folder_of_labelled_images(tmp_path, capsys, replicas):
    folder = tmp_path / "cifar"
    folder.mkdir()
    labels = [7, 3]
    for i, label in enumerate(labels):
        write_rgb(folder / f"test_{i:04d}_label{label}.png", 10 + i)
    out = cli_json(capsys, replicas, "evaluate", "--folder", str(folder), "--out", str(tmp_path / "eval"),
                   "--sigma", "0.25", "--n0", "1", "--n", "3", "--alpha", "0.1", "--seeds", "1", "--steps", "1",
                   "--radii", "0", "0.25")
    assert out["images"] == 2 and out["config"]["data"] == str(folder.resolve())
    records = [json.loads(line) for line in (tmp_path / "eval" / "records.jsonl").read_text().splitlines()]
    assert sorted((r["index"], r["label"]) for r in records if r["method"] == "bare") == [(0, 7), (1, 3)]
    for curve in out["certified"]:  # r = 0 is the smoothed classifier's accuracy on the file names' labels
        mine = [r for r in records if r["method"] == curve["method"]]
        assert out["table"][f"{curve['method']}@0.25"][0] == sum(r["predicted"] == r["label"] for r in mine) / 2


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--out", "OUT"], "--folder"),  # the held-out digits are grey
    (["evaluate", "--folder", "UNLABELLED", "--out", "OUT"], "_label<k>"),
    (["evaluate", "--folder", "OUT/none", "--out", "OUT"], "no such folder"),
])
def test_evaluate_refuses_what_it_cannot_use_in_one_line(argv, message, tmp_path, capsys, replicas):
    (tmp_path / "unlabelled").mkdir()
    write_rgb(tmp_path / "unlabelled" / "picture.png", 0)
    argv = [str(tmp_path / "unlabelled") if a == "UNLABELLED" else a.replace("OUT", str(tmp_path)) for a in argv]
    models = ["--model", "cifar10", "--diffusion", str(replicas.diffusion), "--classifier", str(replicas.classifier)]
    assert main([*argv, *models, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_classifier_with_another_class_count_than_the_preset_is_refused(tmp_path, replicas):
    five = save_classifier_replica(tmp_path / "five", num_classes=5)
    with pytest.raises(ModelLoadError, match="the preset 'cifar10' names 10 classes, but the classifier .* has 5 outputs"):
        load_models(model_spec("cifar10", str(replicas.diffusion), str(five)), device="cpu")
    names = ("a", "b", "c", "d", "e")
    assert load_models(model_spec(None, str(replicas.diffusion), str(five), names), device="cpu").labels == names


def export_script():
    """scripts/export_cifar10.py as a module (scripts/ is no package)."""
    spec = importlib.util.spec_from_file_location("export_cifar10", ROOT / "scripts" / "export_cifar10.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_export_script_writes_the_folder_evaluate_reads(tmp_path, rgb_models):
    """The script's writer makes <name>_label<k>.png files that load as the images they hold, with their labels."""
    pictures = [write_rgb(tmp_path / f"p{i}.png", 20 + i) for i in range(2)]
    written = export_script().write_images([(p.read_bytes(), k) for p, k in zip(pictures, (8, 9))], tmp_path / "out", 5)
    assert [p.name for p in written] == ["test_0005_label8.png", "test_0006_label9.png"]
    data = load_labelled(folder_images(tmp_path / "out"), rgb_models, 10)
    assert data.labels.tolist() == [8, 9]
    assert torch.equal(data.images[0], load_input(pictures[0], rgb_models))


def test_export_script_offline_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    """No network and nothing cached: status 2 and one line, before any download (which would retry for 20 s)."""
    from densepure_viz.models import registry

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(registry, "_hub_reachable", lambda timeout=3.0: False)
    assert export_script().main(["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the Hugging Face hub" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
