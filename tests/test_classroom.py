"""What a class sees must be true: every quantity named for what it is, ties called ties, no ✓ without a truth."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from gradio.blocks import postprocess_update_dict
from PIL import Image

from densepure_viz.attacks.pgd import AttackConfig, AttackResult
from densepure_viz.smoothing.certify import CertifyResult
from densepure_viz.teaching.glossary import glossary_markdown
from densepure_viz.models.images import convert_image
from densepure_viz.engine.purify import PurifyResult
from densepure_viz.engine.votes import tied_labels
from densepure_viz.serving.reports import certificate_json, purify_json
from densepure_viz.serving.ui import build_app
from densepure_viz.serving.ui.certify_tab import card, fixed_row
from densepure_viz.serving.ui.purify_tab import PurifyOutputs, attack_line, verdict
from densepure_viz.attacks.prepare import PreparedInput

LABELS = tuple(str(c) for c in range(10))
X = torch.zeros(1, 4, 4)


def prepared(true_label: int = 3, attacked: bool = False) -> PreparedInput:
    attack = AttackResult(X, clean_label=3, adversarial_label=5, success=True, target_label_rate=0.75, linf=0.1, l2=0.4)
    return PreparedInput(X, X, 3, true_label, attack if attacked else None, 3 if attacked else None, [])


def result(votes: dict[int, int], label: int) -> PurifyResult:
    per_seed = [c for c, n in sorted(votes.items()) for _ in range(n)]
    return PurifyResult(label, votes, per_seed, 300, [300, 0], 5, 5, 3, X, X.repeat(len(per_seed), 1, 1, 1))


def test_the_attacked_input_is_called_x_a_plus_delta():
    attacked = verdict(prepared(attacked=True), result({3: 8}, 3), LABELS, 8)
    assert "x_a + delta" in attacked and "x + delta" not in attacked and "attacked input x_a" in attacked
    clean = verdict(prepared(), result({3: 8}, 3), LABELS, 8)
    assert "x + delta" in clean and "x_a" not in clean


def test_a_tie_is_a_tie_and_says_how_it_is_broken():
    text = verdict(prepared(), result({3: 4, 9: 4}, 3), LABELS, 8)
    assert "a tie** between 3 and 9 (4/8 seeds each)" in text and "smallest label" in text
    assert tied_labels({3: 4, 9: 4}) == [3, 9] and tied_labels({3: 5, 9: 3}) == [3]
    models = type("M", (), {"labels": LABELS, "name": "m"})()
    cfg = type("C", (), {"sigma": 0.5, "seeds": 8, "sampler": "fast", "steps": 10})()
    assert purify_json(result({3: 4, 9: 4}, 3), cfg, 0, models)["tie"] is True
    assert purify_json(result({3: 5, 9: 3}, 3), cfg, 0, models)["tie"] is False


def test_the_attack_line_says_what_held_and_on_how_many_draws():
    adaptive = attack_line(prepared(attacked=True), "PGD", AttackConfig(eps=0.1, threat="adaptive", eot_samples=8))
    assert "on 8 fresh noise draws of its own (not the draw shown below)" in adaptive
    assert "a label other than 3 on 75%, a majority: **fooled** on those draws" in adaptive
    # the vote under it is about another draw: the two lines must not read as one claim (held, then "vote: 8 ✗")
    assert "DensePure's vote below is on another draw" in adaptive
    missed = prepared(attacked=True)
    missed.attack.success = False
    adaptive_held = attack_line(missed, "PGD", AttackConfig(eps=0.1, threat="adaptive", eot_samples=8))
    assert "not a majority: it **held** on those draws" in adaptive_held
    held = prepared(attacked=True)
    held.attack.success = False
    line = attack_line(held, "FGSM", AttackConfig(eps=0.1, steps=1))
    assert "bare classifier **held**" in line and "% of" not in line  # one deterministic draw: no share


def test_no_tick_without_a_known_true_label():
    known = verdict(prepared(true_label=3), result({3: 8}, 3), LABELS, 8)
    unknown = verdict(prepared(true_label=-1), result({3: 8}, 3), LABELS, 8)
    assert "✓" in known
    assert "✓" not in unknown and "✗" not in unknown and "True label unknown" in unknown


def test_a_photo_says_what_the_model_sees():
    photo = np.zeros((48, 64, 3), np.uint8)
    photo[:] = (250, 230, 200)  # cream paper: colour, a size change, a padding and an inversion
    notes = convert_image(photo, 1, 16, dark_background=True).notes
    assert any("resized from 64x48 to 16x16" in n for n in notes) and "colour turned to grey" in notes
    assert any(n.startswith("inverted") for n in notes)
    grey = convert_image(np.full((16, 16), 10, np.uint8), 1, 16, dark_background=True)
    assert grey.notes == []  # a 16x16 dark grey image is what the model eats: nothing changed


def test_an_abstention_names_the_class_it_counted():
    abstain = CertifyResult(None, 0.0, 0.17, 209, 1000, 100, 0.001, 0.5, 3, [0] * 10, [0] * 10)
    assert certificate_json(abstain, None, 100, 1.0)["top_class"] == 3
    assert "abstain (top class 3)" in card([fixed_row("DensePure", abstain)], LABELS, 0.001, 0.5, 1000)


@pytest.fixture(scope="module")
def app(tiny_models):
    return build_app(loader=lambda name, device: tiny_models, names=("digits",), device="cpu")


def _fn(app, name: str):
    return next(fn for fn in app.fns.values() if fn.name == name)


def test_every_load_shows_the_scrub_slider_at_the_last_step(app):
    first_view = _fn(app, "first_view")
    for _ in range(2):  # Gradio pops "value" from update dicts as it sends them; the second load must not suffer
        outputs = PurifyOutputs(*first_view.fn()[:10])
        slider = outputs.scrub
        assert slider["value"] == slider["maximum"] or slider["maximum"] == 1
        postprocess_update_dict(app.blocks[first_view.outputs[7]._id], slider)


def test_stop_leaves_a_note_that_this_is_not_a_certificate(app):
    stop = _fn(app, "stopped_note")
    certify = next(fn for fn in app.fns.values() if fn.api_name == "certify")
    deps = {tuple(map(tuple, d["targets"])): d for d in app.get_config_file()["dependencies"]}
    assert [o.elem_id for o in stop.outputs] == ["certify-status"]
    cancels = deps[tuple(stop.targets)]["cancels"]
    assert cancels[0] == certify._id  # the same click stops the certification
    assert all(app.fns[i].fn is certify.fn for i in cancels)  # and one started by a story button
    assert "anytime-valid" in stop.fn() and "not a certificate" in stop.fn()


def test_an_unloadable_model_is_reported_once(tiny_models, monkeypatch):
    from densepure_viz.models.registry import ModelLoadError

    def loader(name, device):
        if name == "cifar10":
            raise ModelLoadError("cannot reach the Hugging Face hub")
        return tiny_models

    warnings = []
    monkeypatch.setattr(gr, "Warning", lambda *a, **k: warnings.append(a))
    demo = build_app(loader=loader, names=("digits", "cifar10"), device="cpu")
    _, message = _fn(demo, "check_model").fn("cifar10")
    assert message.count("cannot reach the Hugging Face hub") == 1 and not warnings


def test_about_and_api_examples_are_right(app):
    about = " ".join(str(b.value) for b in app.blocks.values() if isinstance(b, gr.Markdown))
    assert "Understanding Diffusion Models towards Adversarial Robustness" in about
    assert "Models for Adversarial" not in about
    images = [b for b in app.blocks.values() if isinstance(b, gr.Image) and b.elem_id == "purify-image"]
    example = images[0].example_payload()["path"]
    assert not example.startswith("http") and Path(example).name.endswith(".png") and Path(example).exists()


def test_the_density_view_has_its_own_settings_and_opens_computed(app):
    density = next(fn for fn in app.fns.values() if fn.api_name == "density")
    purify = next(fn for fn in app.fns.values() if fn.api_name == "purify")
    assert density.inputs[0] is purify.inputs[0]  # the same input image
    assert all(density.inputs[i] is not purify.inputs[i] for i in range(2, 7))  # its own sigma, K, sampler, b, seed
    first_view = _fn(app, "first_view")
    values = dict(zip([o._id for o in first_view.outputs], first_view.fn()))
    fig, *_, state = [values[o._id] for o in density.outputs]
    assert len(fig.data) > 3 and state["scene"].train.shape[1] == 3  # computed on load, 3 axes stored
    flat = _fn(app, "replot").fn(state, 3)  # 2D <-> 3D from the stored scene, no recomputation
    assert any(trace.type == "scatter3d" for trace in flat.data)


def test_the_live_certificate_is_anytime_valid_and_stops_when_decided(tiny_models):
    from densepure_viz.serving.api import CertifyRequest, arguments
    from densepure_viz.serving.ui.certify_tab import make_handler
    from densepure_viz.serving.ui.requests import no_progress
    from densepure_viz.serving.ui.session import AppContext, ModelPool

    ctx = AppContext(pool=ModelPool(lambda name, device: tiny_models, ("digits",), "cpu"))
    image = str(sorted((Path(__file__).resolve().parent.parent / "assets" / "samples" / "digits").glob("*.png"))[0])
    request = CertifyRequest(image, "digits", 0.5, 1, "one-shot", 1, 0, n0=5, n=1000, alpha=0.01, compare=False,
                             target=0.1, stop_early=True)
    frames = list(make_handler(ctx)(**arguments(request), progress=no_progress))
    fig, status, table, out = frames[-1]
    result = out["densepure"]
    upper, lower, fixed = fig.data
    assert list(lower.y) == sorted(lower.y) and list(upper.y) == sorted(upper.y, reverse=True)  # never shrinks
    assert list(lower.x)[-1] == result["draws_used"] and result["p_lower"] == pytest.approx(lower.y[-1])
    if result["decision"] in ("certified", "not_certified"):
        assert result["draws_used"] < 1000  # decided at R = 0.1 and stopped
    assert len(fixed.y) == len(lower.y)  # the fixed-n bound on the same draws, at every look
    assert "anytime-valid" in table and "had n been fixed in advance" in table


def _traces(figure) -> list[dict]:
    """The traces of a gr.Plot's value (Gradio keeps a figure as its JSON)."""
    plot = json.loads(figure["plot"]) if isinstance(figure, dict) and "plot" in figure else figure.to_plotly_json()
    return [{"xaxis": t.get("xaxis"), "name": t.get("name", ""), "x": t.get("x", []), "y": t.get("y", [])}
            for t in plot["data"]]


def test_the_about_view_shows_the_vote_study(app):
    plots = {b.elem_id: b for b in app.blocks.values() if isinstance(b, gr.Plot)}
    figure = plots["about-study"].value
    assert figure is not None
    from densepure_viz.experiments.study import load_study
    from densepure_viz.serving.ui.about_tab import STUDY

    study = load_study(STUDY / "results.json")  # the shipped study: every plotted accuracy is one of its numbers
    plotted = {(trace["name"], x): y for trace in _traces(figure) if trace["name"].startswith("vote, ")
               for x, y in zip(trace["x"], trace["y"]) if trace["xaxis"] in ("x", None)}
    sigma = study.sigmas[0]  # the first subplot's
    for a in study.accuracies:
        if a.sigma == sigma and a.k is not None:
            assert plotted[(f"vote, {a.method}", a.k)] == pytest.approx(100 * a.accuracy)
    assert plotted and len(plotted) == sum(1 for a in study.accuracies if a.sigma == sigma and a.k is not None)


def test_the_2d_scene_says_what_it_shows():
    """The robust region's area says when the window clips it; the balls have legend entries; x~ is visible."""
    from densepure_viz.smoothing.certify import CertifyConfig
    from densepure_viz.viz.plots.toy2d import scene_figure
    from densepure_viz.toy2d import PRESETS, region_maps, reverse_trajectories, robust_region

    p = PRESETS["clusters"]
    maps = region_maps(p.mixture, p.grid, 2.0)  # at sigma 2 one label covers the window
    robust = robust_region(p.mixture, maps, np.array(p.x0), np.array(p.x_a), np.random.default_rng(0),
                           CertifyConfig(n0=20, n=400))
    assert robust.clipped and robust.mask[0].any()
    traj = reverse_trajectories(p.mixture, np.array(p.x_a), 2.0, [1, 2, 3], steps=5)
    fig = scene_figure(maps, "mode", robust, traj)
    assert "the window clips it" in fig.layout.title.text
    names = {t.name for t in fig.data}
    assert any(s.name == "certified ball at x0" for s in fig.layout.shapes) == ("certified ball at x0" in names)
    x_tilde = next(t for t in fig.data if t.name == "x~ (smoothed input)")
    assert x_tilde.marker.line.color != x_tilde.marker.color  # not white on white


# --- Markdown shows what was typed ------------------------------------------------------------------------------


def _plain(markdown: str) -> str:
    """Markdown rendered as CommonMark (the rules of the page's renderer), tags dropped: the text a student reads."""
    from markdown_it import MarkdownIt

    html_text = MarkdownIt("commonmark").render(re.sub(r"\$[^$]*\$", "", markdown))  # LaTeX is KaTeX's, not Markdown's
    return html.unescape(re.sub(r"<[^>]+>", "", html_text))


def test_every_asterisk_a_student_should_read_survives_markdown(app):
    """t* is a diffusion step: "**t***" rendered as a bold "t" with the definition in italics. Every Markdown text of
    the page (the views' prose, the glossary, a verdict and an attack line) must show each t* and keep no stray
    asterisk (an unmatched one means emphasis went wrong)."""
    texts = [str(b.value) for b in app.blocks.values() if isinstance(b, gr.Markdown) and b.value]
    cfg = AttackConfig(eps=0.1, threat="adaptive")
    texts += [glossary_markdown(), verdict(prepared(attacked=True), result({3: 4, 9: 4}, 3), LABELS, 8),
              attack_line(prepared(attacked=True), "PGD", cfg)]
    assert any("t\\*" in t for t in texts) and len(texts) > 10
    for text in texts:
        plain = _plain(text)
        typed = re.sub(r"\$[^$]*\$", "", text).replace("\\*", "*")
        assert len(re.findall(r"\bt\*", plain)) == len(re.findall(r"\bt\*", typed)), text
        literal = re.sub(r"\$[^$]*\$", "", text)  # asterisks typed to be read: escaped, or a product (" * ")
        assert plain.count("*") == literal.count("\\*") + literal.count(" * "), text
    glossary = _plain(glossary_markdown())
    assert "t*: the diffusion step whose noise level matches sigma: alpha_bar(t*)" in glossary
