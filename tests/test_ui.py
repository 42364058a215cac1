"""The Gradio app without a server: building it, its endpoints, its validators and handlers, module boundaries."""

from __future__ import annotations

import ast
import inspect
import json
import math
from dataclasses import replace
from pathlib import Path

import gradio as gr
import pytest
import torch

from densepure_viz.serving.cli import main
from densepure_viz.errors import InputError
from densepure_viz.models.inputs import load_input
from densepure_viz.engine.purify import PurifyConfig, PurifyResult, purify_stream
from densepure_viz.serving.ui import build_app
from densepure_viz.serving.ui import validation as v
from densepure_viz.serving.api import CLASSROOM, PARAMETERS, CertifyRequest, PurifyRequest, RegionsRequest, arguments
from densepure_viz.serving.ui.purify_tab import PurifyOutputs, shown_after
from densepure_viz.serving.ui.requests import no_progress, parse_attack
from densepure_viz.serving.ui.session import AppContext, ModelPool, list_samples

PACKAGE = Path(__file__).resolve().parent.parent / "densepure_viz"
SAMPLES = PACKAGE.parent / "assets" / "samples" / "digits"


@pytest.fixture(scope="module")
def app(tiny_models):
    return build_app(loader=lambda name, device: tiny_models, names=("digits",), device="cpu")


@pytest.fixture(scope="module")
def ctx(tiny_models):
    return AppContext(pool=ModelPool(lambda name, device: tiny_models, ("digits",), "cpu"))


@pytest.fixture(scope="module")
def sample() -> str:
    paths = sorted(SAMPLES.glob("*.png"))
    if not paths:
        pytest.skip("no shipped samples: run scripts/export_samples.py")
    return str(paths[0])


def test_build_does_not_launch_or_load(tiny_models):
    calls = []
    demo = build_app(loader=lambda name, device: calls.append(name) or tiny_models, names=("digits",), device="cpu")
    assert isinstance(demo, gr.Blocks)
    assert not calls, "building the app must not load a model"
    assert getattr(demo, "server", None) is None and not demo.is_running


def test_named_endpoints_are_public(app):
    public = {fn.api_name: fn for fn in app.fns.values() if fn.api_visibility == "public"}
    assert set(public) == {"purify", "certify", "regions", "density"}  # helpers (gallery, scrub, load) stay private
    for view, fn in public.items():  # each endpoint takes its request's fields, in order (serving.api)
        assert list(inspect.signature(fn.fn).parameters)[:len(PARAMETERS[view])] == list(PARAMETERS[view])
        assert len(fn.inputs) == len(PARAMETERS[view])
    # interactive work has its own lane, never behind a certification (the waiting line's bound: test_robustness)
    assert public["purify"].concurrency_id == public["density"].concurrency_id != public["certify"].concurrency_id


def test_app_module_is_thin():
    """app.py only calls the UI's main, under __main__: importing it starts nothing."""
    tree = ast.parse((PACKAGE.parent / "app.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "main"]
    guards = [n for n in tree.body if isinstance(n, ast.If)]
    assert calls and guards and all(any(n is m for m in ast.walk(guards[0])) for n in calls)


def test_the_apps_command_line(tmp_path, capsys):
    """python app.py --help prints its options and exits; the model options are the CLI's; a bad one is one line."""
    import subprocess
    import sys

    from densepure_viz.models.registry import REGISTRY
    from densepure_viz.serving.ui.app import main, parse_args

    out = subprocess.run([sys.executable, str(PACKAGE.parent / "app.py"), "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and all(f"--{o}" in out.stdout for o in ("model", "diffusion", "classifier", "labels",
                                                                         "host", "port", "share"))
    args = parse_args(["--model", "cifar10", "--diffusion", "D", "--classifier", "C", "--host", "0.0.0.0", "--port",
                       "7870", "--share"])
    assert (args.model, args.diffusion, args.classifier, args.host, args.port, args.share) == (
        "cifar10", "D", "C", "0.0.0.0", 7870, True)
    assert main(["--diffusion", "D"]) == 2 and "--diffusion and --classifier go together" in capsys.readouterr().err
    assert main(["--model", "imagenet"]) == 2 and "unknown model 'imagenet'" in capsys.readouterr().err
    assert main(["--labels", "a,,b"]) == 2 and "--labels" in capsys.readouterr().err
    assert set(REGISTRY) == {"digits", "cifar10"}


def test_a_model_from_the_command_line_opens_the_page_beside_the_presets(tiny_models, tiny_dirs):
    from densepure_viz.models.registry import model_spec

    spec = model_spec(None, str(tiny_dirs[0]), str(tiny_dirs[1]), ("a", "b", "c", "d", "e", "f", "g", "h", "i", "j"))
    demo = build_app(loader=lambda name, device: tiny_models, device="cpu", specs={spec.name: spec})
    dropdown = next(b for b in demo.blocks.values() if isinstance(b, gr.Dropdown) and b.elem_id == "model")
    assert dropdown.value == spec.name and [c[1] for c in dropdown.choices] == [spec.name, "digits", "cifar10"]


@pytest.mark.parametrize("value, expected", [(3, 3), (3.0, 3), ("3", 3), (" 7 ", 7)])
def test_integer_accepts_numbers(value, expected):
    assert v.integer(value, "K", 1, 10) == expected


@pytest.mark.parametrize("value", [0, 11, 2.5, "abc", "", None, True, float("nan"), float("inf"), [], 10**9])
def test_integer_refuses_bad_values(value):
    with pytest.raises(ValueError, match="K"):
        v.integer(value, "K", 1, 10)


@pytest.mark.parametrize("value", [0, -0.5, float("nan"), float("inf"), 2.5, "x", None])
def test_sigma_must_be_positive_finite_and_capped(value):
    with pytest.raises(ValueError, match="sigma"):
        v.positive(value, "sigma", 2.0)
    assert v.positive("0.25", "sigma", 2.0) == 0.25


@pytest.mark.parametrize("name", ["../digits", "digits/../../etc", "/etc/passwd", "a\\b", "~root", "x" * 500, "cifar100", "", None, 3])
def test_model_ids_are_registry_names_only(name):
    with pytest.raises(ValueError):
        v.model_id(name, ("digits", "cifar10"))
    assert v.model_id("digits", ("digits", "cifar10")) == "digits"


def test_image_and_choice_validation():
    with pytest.raises(ValueError, match="no input image"):
        v.image_file(None)
    assert v.image_file({"path": "/tmp/x.png"}) == "/tmp/x.png"
    with pytest.raises(ValueError, match="sampler"):
        v.choice("ddim", "sampler", ("one-shot", "fast", "full"))
    with pytest.raises(ValueError, match="image evaluations"):
        v.evaluations(10**9, 1000, "this")


def test_user_errors_become_one_line_gr_errors():
    @v.user_errors
    def plain(x):
        raise InputError(f"bad {x}\nsecond line")

    @v.user_errors
    def bug():
        raise ValueError("an internal ValueError is a bug, not the user's fault")

    @v.user_errors
    def gen():
        yield 1
        raise RuntimeError("boom")

    with pytest.raises(gr.Error) as err:
        plain(3)
    assert err.value.message == "bad 3"
    with pytest.raises(gr.Error, match="internal error \\(ValueError\\)"):
        bug()
    g = gen()
    assert next(g) == 1
    with pytest.raises(gr.Error, match="internal error \\(RuntimeError\\)"):
        next(g)


@pytest.mark.slow
def test_the_views_start_at_the_clis_defaults(app, tiny_dirs, sample, tmp_path, capsys):
    """What the CLI runs when given no flags (its JSON echoes every setting) is what the API documents as defaults."""
    model = ["--diffusion", str(tiny_dirs[0]), "--classifier", str(tiny_dirs[1]), "--device", "cpu", "--json"]

    def cli(*argv: str) -> dict:
        capsys.readouterr()
        assert main([*argv, *model]) == 0
        return json.loads(capsys.readouterr().out)

    purify = cli("purify", sample)
    certify = cli("certify", sample, "--n0", "1", "--n", "10")  # sigma, K, sampler, b at their defaults
    draws = cli("certify", sample, "--seeds", "1", "--sampler", "one-shot")  # n0, n, alpha at their defaults
    attack = cli("attack", sample, "--eps", "0.1", "--out", str(tmp_path / "adv.png"))  # norm, PGD steps, threat
    api = {name: {p["parameter_name"]: p["parameter_default"] for p in info["parameters"]}
           for name, info in app.get_api_info()["named_endpoints"].items()}
    shown, expected = api["/purify"], {k: purify[k] for k in ("sigma", "seeds", "sampler", "steps", "seed")}
    expected |= {"norm": attack["norm"], "attack_steps": attack["steps"], "threat": attack["threat"]}
    assert {k: shown[k] for k in expected} == expected
    shown = api["/certify"]
    expected = {k: certify[k] for k in ("sigma", "seeds", "sampler", "steps")} | {"alpha": draws["alpha"]}
    assert {k: shown[k] for k in expected} == expected
    # the Certify view opens on a classroom-sized run (seconds), not the CLI's n0 = 100, n = 1000 (minutes)
    assert (shown["n0"], shown["n"]) == (CLASSROOM.n0, CLASSROOM.n) and CLASSROOM.n < draws["n"]


def test_attack_controls_map_to_attack_configs():
    def attack(name, norm, eps, steps, threat):
        return PurifyRequest(attack=name, norm=norm, eps=eps, attack_steps=steps, threat=threat)

    assert parse_attack(attack("none", "linf", 0.1, 10, "classifier"), 0.5, 0) is None
    fgsm = parse_attack(attack("FGSM", "l2", 1.0, 99, "classifier"), 0.5, 3)
    assert (fgsm.steps, fgsm.random_start, fgsm.alpha, fgsm.seed) == (1, False, 1.0, 3)
    pgd = parse_attack(attack("PGD", "linf", 0.2, 5, "adaptive"), 0.25, 0)
    assert (pgd.steps, pgd.threat, pgd.sigma) == (5, "adaptive", 0.25)
    with pytest.raises(ValueError, match="eps"):
        parse_attack(attack("PGD", "linf", 1.5, 5, "classifier"), 0.5, 0)


def test_purify_handler_streams_frames_and_matches_the_engine(ctx, tiny_models, sample, monkeypatch):
    from densepure_viz.serving.ui import purify_tab
    from densepure_viz.serving.ui.purify_tab import make_handler

    monkeypatch.setattr(purify_tab, "STREAM_INTERVAL", 0.0)  # a frame per step (a real run streams every 0.5 s)
    request = PurifyRequest(image=sample, sigma=0.5, seeds=3, sampler="fast", steps=4, seed=7)
    frames = list(make_handler(ctx)(**arguments(request), progress=no_progress))
    assert len(frames) >= 3  # the input, at least one reverse step, the result
    final = PurifyOutputs(*frames[-1])
    out = final.result
    *_, expected = purify_stream(tiny_models, load_input(sample, tiny_models), PurifyConfig(0.5, 3, "fast", 4), 7)
    assert isinstance(expected, PurifyResult)
    assert (out["label"], out["per_seed"], out["one_shot_label"]) == (expected.label, expected.per_seed, expected.one_shot_label)
    assert final.grid.width > 100 and final.scrub_image is not None  # the grid and the scrub view are images
    # the inputs go out once, with the first frame, and stay on the page: the last frame skips them
    first, shown = PurifyOutputs(*frames[0]), PurifyOutputs(*shown_after(frames))
    assert final.clean == gr.skip() and final.adversarial == gr.skip()
    assert shown.clean is first.clean and shown.clean["value"].size == (128, 128) and shown.noisy is final.noisy


@pytest.mark.parametrize("override, message", [
    ({"sigma": -1}, "sigma"), ({"sigma": float("nan")}, "sigma"), ({"seeds": 0}, "K"), ({"seeds": 10**9}, "K"),
    ({"steps": 5000}, "steps"), ({"model": "../x"}, "model"), ({"sampler": "euler"}, "sampler"),
    ({"image": None}, "no input image"), ({"seed": "abc"}, "seed"), ({"attack": "CW"}, "attack"),
])
def test_purify_handler_refuses_bad_inputs(ctx, sample, override, message):
    from densepure_viz.serving.ui.purify_tab import make_handler

    request = replace(PurifyRequest(image=sample, sigma=0.5, seeds=2, sampler="fast", steps=2, attack_steps=2), **override)
    with pytest.raises(gr.Error, match=message):
        list(make_handler(ctx)(**arguments(request), progress=no_progress))


def test_bad_image_file_is_one_clear_line(ctx, tmp_path):
    from densepure_viz.serving.ui.certify_tab import make_handler

    bad = tmp_path / "x.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(gr.Error, match="not an image") as err:
        list(make_handler(ctx)(**arguments(CertifyRequest(str(bad), "digits", 0.5, 2, "fast", 2, 0, 5, 10, 0.001, False)),
                               progress=no_progress))
    assert "\n" not in err.value.message


def test_certify_handler_caps_the_work(ctx, sample):
    from densepure_viz.serving.ui.certify_tab import make_handler

    small = CertifyRequest(image=sample, sigma=0.5, seeds=2, sampler="fast", steps=2, n0=10, alpha=0.001, compare=False)
    with pytest.raises(gr.Error, match="n must be"):
        list(make_handler(ctx)(**arguments(replace(small, n=10**9)), progress=no_progress))
    with pytest.raises(gr.Error, match="image evaluations"):
        list(make_handler(ctx)(**arguments(replace(small, seeds=16, sampler="full", n0=1000, n=10_000)), progress=no_progress))


def test_regions_handler_and_its_validation(tiny_models):
    from densepure_viz.toy2d import PRESETS
    from densepure_viz.serving.ui.regions_tab import make_handler

    ctx = AppContext(pool=ModelPool(lambda name, device: tiny_models, ("digits",), "cpu"))
    regions = make_handler(ctx)
    assert ctx.caches.regions.cache_info().currsize == 0  # each app keeps its own caches, empty when built

    p = PRESETS["clusters"]
    request = RegionsRequest("clusters", p.sigma, *map(float, (*p.x0, *p.x_a)), seeds=8, steps=20, n=200)
    scene, maps, votes, summary, data = regions(**arguments(request))
    assert sum(data["votes"]) == 8 and math.isclose(sum(data["exact_probabilities"]), 1, abs_tol=1e-9)
    assert len(scene.data) > 3 and "robust region" in summary
    with pytest.raises(gr.Error, match="x0 x"):
        regions(**arguments(replace(request, x0_x=99.0, x0_y=0.0)))
    regions(**arguments(replace(request, seeds=4, method="ddim", labeler="bayes", seed=1)))  # the same maps: cached
    info = ctx.caches.regions.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    assert AppContext(pool=ctx.pool).caches.regions.cache_info().currsize == 0  # another app: its own, empty
    with pytest.raises(gr.Error, match="preset"):
        regions(**arguments(replace(request, preset="../moons")))


def test_unloadable_model_falls_back_with_a_message(tiny_models):
    from densepure_viz.models.registry import ModelLoadError

    def loader(name, device):
        if name == "cifar10":
            raise ModelLoadError("cannot reach the Hugging Face hub to download 'google/ddpm-cifar10-32'")
        return tiny_models

    demo = build_app(loader=loader, names=("digits", "cifar10"), device="cpu")
    check = next(fn for fn in demo.fns.values() if fn.name == "check_model").fn
    update, message = check("cifar10")
    assert update["value"] == "digits" and "cannot reach" in message and "embedded" in message
    assert "loaded" in check("digits")[1]


def test_samples_are_shipped_with_labels_in_their_names():
    samples = list_samples(SAMPLES)
    if not samples:
        pytest.skip("no shipped samples: run scripts/export_samples.py")
    assert sorted({s.label for s in samples}) == list(range(10)) and len(samples) == 20
    assert torch.is_tensor(load_input(samples[0].path, type("M", (), {"channels": 1, "image_size": 16, "dark_background": True})()))


def test_a_drawing_becomes_dark_strokes_on_white():
    from PIL import Image, ImageDraw

    from densepure_viz.serving.ui.purify_tab import drawing_to_image

    canvas = Image.new("RGBA", (64, 64), (0, 0, 0, 0))  # the sketchpad's transparent layer
    ImageDraw.Draw(canvas).line([(10, 10), (50, 50)], fill=(0, 0, 0, 255), width=6)
    img = drawing_to_image({"background": None, "layers": [canvas], "composite": canvas})
    assert img.mode == "L" and img.getpixel((2, 60)) == 255 and img.getpixel((30, 30)) == 0
    with pytest.raises(gr.Error, match="empty"):
        drawing_to_image({"composite": Image.new("RGBA", (64, 64), (0, 0, 0, 0))})
    with pytest.raises(gr.Error, match="draw something"):
        drawing_to_image(None)


def test_image_inputs_hand_over_the_file_untouched(tmp_path):
    from gradio.data_classes import ImageData

    from densepure_viz.serving.ui.components import image_input

    with gr.Blocks():
        image = image_input("x")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")  # gr.Image would fail here with a generic error; to_tensor explains it
    assert image.preprocess(ImageData(path=str(junk), orig_name="junk.png")) == str(junk)
    assert image.preprocess(None) is None
    assert not (Path(__file__).resolve().parent.parent / "densepure_viz" / "serving" / "ui" / "components.pyi").exists()


def test_gradio_still_rewrites_cached_images_in_place(tmp_path):
    """Why the app's image components write their pictures themselves (components.written_whole). When this fails,
    the installed Gradio writes its cached images atomically: written_whole can go."""
    from gradio import processing_utils
    from PIL import Image

    img = Image.new("L", (8, 8), 3)
    path = Path(processing_utils.save_pil_to_cache(img, str(tmp_path), format="png"))
    inode = path.stat().st_ino
    processing_utils.save_pil_to_cache(img, str(tmp_path), format="png")
    assert path.stat().st_ino == inode  # the same file truncated and rewritten: a reader can catch it empty


def test_every_image_of_the_page_is_written_whole_and_gradio_is_not_patched(app):
    """Each image component writes a picture aside and renames it into Gradio's cache (a reader sees the old file or
    the new, both complete); nothing process-wide is replaced."""
    from gradio import processing_utils
    from PIL import Image

    from densepure_viz.serving.ui.components import _written_whole

    assert processing_utils.save_pil_to_cache.__module__.startswith("gradio")  # Gradio's own function, unpatched
    images = [b for b in app.blocks.values() if isinstance(b, gr.Image)]
    assert len(images) >= 9 and all(b.postprocess.__func__ is _written_whole for b in images)
    img = Image.new("L", (8, 8), 5)
    first = images[0].postprocess(img)
    path = Path(first.path)
    assert path.is_relative_to(Path(images[0].GRADIO_CACHE).resolve()) and path.name == "image.png"
    inode = path.stat().st_ino
    assert Path(images[0].postprocess(img).path) == path and path.stat().st_ino != inode  # replaced, not rewritten
    assert Image.open(path).getpixel((0, 0)) == 5 and sorted(p.name for p in path.parent.iterdir()) == ["image.png"]



def test_the_device_line_says_the_precision():
    from densepure_viz.serving.ui.app import _device_line

    assert _device_line(ModelPool(lambda name, device: None, ("digits",), "cpu")) == "CPU (no GPU found), networks in float32"


def test_output_pngs_are_lossless_and_lighter_to_encode():
    """encode_image writes PNGs at PNG_LEVEL (faster than Gradio's default level 6) and loses nothing: a drawn grid,
    its colours and text, decodes to the same pixels; other formats stay Gradio's."""
    import io

    import numpy as np
    from gradio import processing_utils
    from PIL import Image

    from densepure_viz.serving.ui.components import PNG_LEVEL, encode_image
    from densepure_viz.viz.grids import trajectory_grid

    gen = torch.Generator().manual_seed(0)
    cols = [torch.rand(3, 1, 16, 16, generator=gen) for _ in range(4)]
    grid = trajectory_grid(cols, cols, [40, 30, 20, 10], [[1, 2, 3]] * 4, cols[0], [1, 2, 3], scale=4)
    data = encode_image(grid, "png")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), np.asarray(grid))
    assert PNG_LEVEL < 6 and data != processing_utils.encode_pil_to_bytes(grid, "png")  # not Gradio's level 6
    assert encode_image(grid, "webp") == processing_utils.encode_pil_to_bytes(grid, "webp")
