"""What a teacher asked for: one-click stories that really happen, the radius in pixels, p_lower against the
count, a glossary on demand and a colour legend on the trajectory grid."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import norm

from densepure_viz.smoothing.bounds import lower_confidence_bound
from densepure_viz.smoothing.certify import certified_radius, perturb_by_radius
from densepure_viz.teaching.glossary import GLOSSARY
from densepure_viz.viz.grids import BACKGROUND, LEGEND_SHARE, _rgb, step_view, text_size, trajectory_grid
from densepure_viz.models.inputs import load_input, true_label
from densepure_viz.viz.plots.colors import class_color
from densepure_viz.viz.plots.images import lower_bound_figure
from densepure_viz.engine.seeding import Stream, make_generator
from densepure_viz.smoothing.sequential import lower_bound_curve
from densepure_viz.teaching import stories
from densepure_viz.serving.api import PARAMETERS, REQUESTS, arguments, story_request, view_stories
from densepure_viz.teaching.stories import ROOT, Story
from densepure_viz.serving.ui import build_app

STORIES: dict[str, Story] = {s.key: s for s in stories.load(stories.FILE, PARAMETERS)}


# --- the radius in pixels -----------------------------------------------------------------------------


def test_the_radius_picture_moves_the_input_by_exactly_the_radius(digits_models):
    x = load_input(Path(story_request(STORIES["certify-robust"]).image), digits_models)  # a digit: ink at 0, paper at 1
    picture = perturb_by_radius(x, 0.62, make_generator(0, Stream.RADIUS))
    assert picture.reached == pytest.approx(0.62, abs=1e-6)  # inside [0, 1] and still at L2 0.62
    assert float((picture.perturbed - x).norm()) == pytest.approx(0.62, abs=1e-5)
    assert picture.perturbed.min() >= 0 and picture.perturbed.max() <= 1
    assert picture.stretch > 0.62  # saturated pixels shortened the move: the direction was scaled up
    assert picture.rms == pytest.approx(0.62 / 16) and picture.values == 256  # 16 x 16 grey
    again = perturb_by_radius(x, 0.62, make_generator(0, Stream.RADIUS))
    assert torch.equal(again.perturbed, picture.perturbed)  # seeded


def test_without_clipping_the_picture_is_the_random_direction_itself():
    x = torch.full((1, 8, 8), 0.5)
    picture = perturb_by_radius(x, 0.3, make_generator(1, Stream.RADIUS))
    assert picture.stretch == pytest.approx(0.3, rel=1e-9) and picture.reached == pytest.approx(0.3, abs=1e-9)
    assert picture.max_change < 0.5  # nothing clipped
    assert perturb_by_radius(x, 0.0, make_generator(1, Stream.RADIUS)).max_change == pytest.approx(0.0, abs=1e-9)


def test_the_box_limits_what_a_radius_can_reach():
    x = torch.zeros(1, 2, 2)  # 4 values at 0: at most the values with a positive direction can move, by 1 each
    picture = perturb_by_radius(x, 10.0, make_generator(2, Stream.RADIUS))
    direction = torch.randn(x.shape, generator=make_generator(2, Stream.RADIUS), dtype=torch.float64)
    farthest = math.sqrt(int((direction > 0).sum()))  # every value with a positive direction at 1
    assert picture.reached == pytest.approx(farthest, abs=1e-6) and farthest < 10.0


# --- p_lower against the count ------------------------------------------------------------------------


def test_the_lower_bound_curve_is_clopper_pearson_for_every_count():
    curve = lower_bound_curve(100, 0.001, 0.5)
    for count in (0, 1, 37, 60, 75, 99, 100):  # scipy's binomtest, the certify module's own bound
        assert curve.p_lower[count] == pytest.approx(lower_confidence_bound(count, 100, 0.001), abs=1e-9)
        assert curve.radius[count] == pytest.approx(certified_radius(curve.p_lower[count], 0.5), abs=1e-9)
    assert curve.p_lower[100] == pytest.approx(0.001 ** (1 / 100))  # every draw agreeing: alpha^(1/n)
    assert np.all(np.diff(curve.p_lower) > 0)
    first = curve.first_certified
    assert lower_confidence_bound(first, 100, 0.001) > 0.5 >= lower_confidence_bound(first - 1, 100, 0.001)
    assert curve.level(0.5) == pytest.approx(norm.cdf(1.0))


def test_the_lower_bound_figure_marks_the_run_and_reads_p_lower_as_a_radius():
    curve = lower_bound_curve(100, 0.001, 0.5)
    fig = lower_bound_figure(curve, 99, anytime_lower=0.89)
    run = next(t for t in fig.data if t.name == "this run: nA = 99")
    assert list(run.x) == [99] and run.y[0] == pytest.approx(curve.p_lower[99])
    assert any(t.name == "this run's anytime-valid p_lower" and t.y[0] == 0.89 for t in fig.data)
    axis = fig.layout.yaxis2
    assert axis.overlaying == "y" and axis.ticktext[0] == "0" and axis.tickvals[0] == pytest.approx(0.5)
    i = list(axis.ticktext).index("0.5")
    assert axis.tickvals[i] == pytest.approx(norm.cdf(0.5 / 0.5))  # radius 0.5 at p = Phi(0.5 / sigma)
    assert any(s.y0 == 0.5 and s.y1 == 0.5 for s in fig.layout.shapes)  # the 1/2 line


# --- the trajectory grid's legend ---------------------------------------------------------------------


def test_the_trajectory_grid_has_a_readable_legend_clear_of_the_image_buttons():
    k, cols = 4, 11
    frames = [torch.full((k, 1, 16, 16), 0.5) for _ in range(cols)]
    labels = [[1, 1, 7, 3]] * cols  # labels 1, 3 and 7 appear; 0, 2, 4, 5, 6, 8, 9 do not
    grid = np.asarray(trajectory_grid(frames, frames, list(range(cols)), labels, frames[0], [1, 1, 7, 3],
                                      [str(c) for c in range(10)], scale=4))
    band = grid[: text_size(grid.shape[1]) * 3]  # the legend's two lines of text
    colors = {tuple(p) for p in band.reshape(-1, 3)}
    assert all(_rgb(class_color(c)) in colors for c in (1, 3, 7))
    assert not any(_rgb(class_color(c)) in colors for c in (0, 2, 4, 5, 6, 8, 9))
    right = band[:, int(LEGEND_SHARE * grid.shape[1]) + 1:]
    assert (right == BACKGROUND).all()  # nothing under the page's image buttons
    assert text_size(grid.shape[1]) >= grid.shape[1] / 50  # ~15 px or more once the page shrinks it to ~700 px


def test_the_scrub_view_has_the_grids_legend():
    """The one-step view under the grid (the scrub slider's picture) carries the same band: its labels' colours only."""
    k = 8
    frames = torch.full((k, 1, 16, 16), 0.5)
    labels = [2, 2, 5, 7, 5, 9, 2, 2]  # 7's grey is also the text's anti-aliasing: keep it shown
    view = np.asarray(step_view(frames, frames, labels, 10, 6, [str(c) for c in range(10)]))
    band = view[: text_size(view.shape[1]) * 3]
    colors = {tuple(p) for p in band.reshape(-1, 3)}
    assert all(_rgb(class_color(c)) in colors for c in (2, 5, 7, 9))
    assert not any(_rgb(class_color(c)) in colors for c in (0, 1, 3, 4, 6, 8))
    assert (band[:, int(LEGEND_SHARE * view.shape[1]) + 1:] == BACKGROUND).all()  # clear of the image buttons
    plain = np.asarray(step_view(frames, frames, None, 10, 6))  # no labels: no band, no frame colours
    assert plain.shape[0] < view.shape[0]


def test_a_one_seed_scrub_views_legend_fits_its_share():
    """K = 1: the picture is narrower than the long heading; the legend takes the short one and stays in its share."""
    frames = torch.full((1, 1, 16, 16), 0.5)
    view = np.asarray(step_view(frames, frames, [4], 10, 6, [str(c) for c in range(10)]))
    band = view[: text_size(view.shape[1]) * 3]
    assert _rgb(class_color(4)) in {tuple(p) for p in band.reshape(-1, 3)}
    assert (band[:, int(LEGEND_SHARE * view.shape[1]) + 1:] == BACKGROUND).all()


def test_text_grows_with_the_grid():
    assert text_size(300) == 14 and text_size(960) == 20


# --- the glossary -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tiny_models):
    return build_app(loader=lambda name, device: tiny_models, names=("digits",), device="cpu")


def test_the_glossary_is_closed_until_opened_and_says_what_each_symbol_is(app):
    terms = {term for key in GLOSSARY for term in key.split(", ")}
    assert {"p_lower", "radius", "abstain", "t*", "K", "b", "sigma", "x_a + delta", "tie"} <= terms
    accordions = [b for b in app.blocks.values() if isinstance(b, gr.Accordion) and b.label.startswith("Glossary")]
    assert len(accordions) >= 2 and not any(a.open for a in accordions)  # Purify and Certify views
    texts = [str(b.value) for b in app.blocks.values() if isinstance(b, gr.Markdown) and "glossary" in (b.elem_classes or [])]
    assert texts and all("**abstain**" in t and "Clopper-Pearson" in t for t in texts)


# --- the stories ---------------------------------------------------------------------------------------


JSON_OUTPUT = {"purify": 6, "certify": 3, "regions": 4}  # the position of the view's JSON among its API outputs


def _endpoint(app, name: str):
    return next(fn for fn in app.fns.values() if fn.api_name == name)


def test_the_stories_are_what_the_seeded_search_found():
    """assets/stories.json holds the controls and expected outputs scripts/find_stories.py recorded (no drift)."""
    record = json.loads((ROOT / "assets" / "results" / "stories" / "search.json").read_text())["stories"]
    assert list(record) == list(STORIES)
    for key, story in STORIES.items():
        found = record[key]
        assert (story.view, story.controls, story.expect) == (found["view"], found["controls"], found["expect"]), key


def test_each_view_lists_its_endpoints_parameters_in_order(app):
    """Each endpoint's signature is its request's fields with their defaults (what a story's controls name), so
    predict(**controls) replays a story, and the page's controls open at the request's defaults."""
    import inspect

    for view, request in REQUESTS.items():
        endpoint = _endpoint(app, view)
        params = inspect.signature(endpoint.fn).parameters
        assert tuple(p for p in params if p != "progress") == PARAMETERS[view], view
        defaults = arguments(request())
        assert {p: params[p].default for p in PARAMETERS[view]} == defaults, view
        shown = {name: block.value for name, block in zip(PARAMETERS[view], endpoint.inputs)}
        opened = {k: v for k, v in defaults.items() if k not in ("image", "model")}  # the first sample, the first model
        assert {k: shown[k] for k in opened} == opened, view


def test_what_each_story_expects_is_what_its_title_says():
    """The file's expected outputs tell the stories: the vote right where the bare classifier on the same noisy
    input and one-shot are wrong; noise alone undoing an attack; DensePure's radius the largest; ..."""
    wins = STORIES["vote-wins"].expect
    assert wins["label"] == wins["true_label"] != wins["noisy_label"] and wins["one_shot_label"] != wins["true_label"]
    assert STORIES["vote-wins"].controls["sigma"] == 1.0 and not wins["tie"]
    alone = STORIES["noise-alone-recovers"].expect
    assert alone["input_label"] != alone["true_label"] == alone["noisy_label"] == alone["label"]
    both = STORIES["adaptive-fools-both"].expect
    assert both["attack.success"] and both["input_label"] != both["true_label"] != both["label"]
    tie = STORIES["tie"].expect
    top = max(tie["votes"].values())
    assert tie["tie"] and tie["label"] == min(int(c) for c, v in tie["votes"].items() if v == top) != tie["true_label"]
    radius = STORIES["certify-wins"].expect
    assert radius["densepure.label"] == true_label(STORIES["certify-wins"].controls["image"])
    assert radius["densepure.radius"] > max(radius["one_shot.radius"], radius["bare.radius"])
    assert STORIES["certify-robust"].expect["bare.label"] is None
    abstain = STORIES["certify-abstain"].expect
    assert abstain["densepure.decision"] == "abstain" and abstain["bare.label"] is not None
    region = STORIES["region-larger-than-ball"].expect
    assert region["robust_region.area"] > 4 * math.pi * region["certificate_x0.radius"] ** 2
    assert region["robust_region.x_a_inside"] and not region["certificate_x0.x_a_inside"]


@pytest.mark.parametrize("view", ["purify", "certify", "regions"])
def test_each_story_button_sets_every_control_of_its_view_then_runs_it(app, view):
    stories = view_stories(view)
    assert stories
    endpoint = _endpoint(app, view)
    buttons = {b._id: b.elem_id for b in app.blocks.values() if isinstance(b, gr.Button)}
    for story in stories:
        click = next(fn for fn in app.fns.values() if [buttons.get(t[0]) for t in fn.targets] == [f"story-{story.key}"])
        n = len(endpoint.inputs)
        assert click.outputs[:n] == endpoint.inputs  # every input of the view's endpoint, in order
        look, *stale = click.outputs[n:]
        values = click.fn()
        assert values[:n] == list(arguments(story_request(story)).values()) and story.look in values[n]
        assert values[n + 1:] == [None] * len(stale)  # what described the previous run is cleared
        run = next(fn for fn in app.fns.values() if fn.trigger_after == click._id)
        assert run.fn is endpoint.fn and run.inputs == endpoint.inputs and run.outputs == endpoint.outputs
        after = [fn for fn in app.fns.values() if fn.trigger_after == run._id]
        assert [fn.outputs for fn in after] == ([stale] if stale else [])  # as after the view's own Run button
        if stale:
            assert [fn.outputs for fn in app.fns.values() if fn.trigger_after == endpoint._id] == [stale]
    clear = next(fn for fn in app.fns.values() if fn.targets == endpoint.targets and fn is not endpoint)
    # Run clears the line (and what the story's run left), through Gradio's own postprocessing: a lone output takes
    # its value unwrapped, so a one-item list ([""]) was an error on every Purify Run
    cleared = asyncio.run(app.process_api(clear, []))["data"]
    assert clear.outputs[0] is look and cleared == ["", *[None] * (len(clear.outputs) - 1)]


def test_a_malformed_stories_file_is_one_line_and_the_app_serves_without_stories(tiny_models, tmp_path, monkeypatch,
                                                                                 caplog):
    bad = tmp_path / "stories.json"
    bad.write_text('[{"key": "tie", "view": "purify",')  # cut short
    monkeypatch.setattr(stories, "FILE", bad)
    with caplog.at_level(logging.WARNING):
        app = build_app(loader=lambda name, device: tiny_models, names=("digits",), device="cpu")
    lines = [r.getMessage() for r in caplog.records if r.name == stories.__name__]
    assert len(lines) == 1 and str(bad) in lines[0] and "without stories" in lines[0] and "\n" not in lines[0]
    assert not [b for b in app.blocks.values() if isinstance(b, gr.Button) and (b.elem_id or "").startswith("story-")]
    assert {_endpoint(app, view).api_name for view in PARAMETERS} == set(PARAMETERS)  # the views still serve


@pytest.mark.parametrize("edit, fault", [
    (lambda items: {"stories": items}, "expected a list"),
    (lambda items: [{**items[0], "view": "gallery"}, *items[1:]], "unknown view 'gallery'"),
    (lambda items: [{k: v for k, v in items[0].items() if k != "look"}, *items[1:]], "has no look"),
    (lambda items: [{**items[0], "controls": {**items[0]["controls"], "K": 8}}, *items[1:]], "unknown controls K"),
    (lambda items: [{**items[0], "controls": {k: v for k, v in items[0]["controls"].items() if k != "seed"}}],
     "lacks controls seed"),
    (lambda items: [*items, items[0]], "appears twice"),
])
def test_each_fault_of_the_file_is_named_in_one_line(tmp_path, caplog, edit, fault):
    items = json.loads(stories.FILE.read_text())
    path = tmp_path / "stories.json"
    path.write_text(json.dumps(edit(items)))
    with caplog.at_level(logging.WARNING):
        assert stories.load(path, PARAMETERS) == () and stories.load(path, PARAMETERS) == ()  # read (and reported) once
    lines = [r.getMessage() for r in caplog.records if r.name == stories.__name__]
    assert len(lines) == 1 and fault in lines[0] and str(path) in lines[0], lines


def test_a_story_checks_its_expected_fields_by_dotted_path():
    story = Story("s", "certify", "t", "l", {}, {"densepure.radius": 0.5, "densepure.label": None, "tie": True})
    assert story.mismatches({"densepure": {"radius": 0.50004, "label": None}, "tie": True}) == []
    assert story.mismatches({"densepure": {"radius": 0.501, "label": 3}, "tie": 1}) == [
        "s: densepure.radius is 0.501, expected 0.5", "s: densepure.label is 3, expected None",
        "s: tie is 1, expected True"]


def test_the_stories_module_needs_no_torch():
    import subprocess
    import sys

    code = ("import json, sys, densepure_viz.teaching.stories as s; items = json.loads(s.FILE.read_text()); "
            "names = {i['view']: tuple(i['controls']) for i in items}; assert len(s.load(s.FILE, names)) == len(items); "
            "assert 'torch' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


@pytest.fixture(scope="module")
def digits_ctx(digits_models):
    from densepure_viz.serving.ui.session import AppContext, ModelPool

    return AppContext(pool=ModelPool(lambda name, device: digits_models, ("digits",), "cpu"))


@pytest.fixture(scope="module")
def digits_url(digits_models):
    from scripts.screenshots import serve

    with serve(digits_models) as url:
        yield url


@pytest.mark.slow
def test_every_story_replays_through_the_api_and_happens(digits_url):
    """Each story's controls, sent as they are to its view's API endpoint, give every field its expect claims."""
    from gradio_client import Client, handle_file

    client = Client(digits_url, verbose=False)
    for story in STORIES.values():
        controls = {k: handle_file(str(ROOT / v)) if k == "image" else v for k, v in story.controls.items()}
        output = client.predict(**controls, api_name=f"/{story.view}")[JSON_OUTPUT[story.view]]
        assert story.mismatches(output) == [], story.key


def test_a_tie_the_cli_tells_the_same_story(capsys):
    from densepure_viz.serving.cli import main

    story = STORIES["tie"]
    c = story.controls
    assert main(["purify", story_request(story).image, "--sigma", str(c["sigma"]), "--seeds", str(c["seeds"]), "--sampler",
                 c["sampler"], "--steps", str(c["steps"]), "--seed", str(c["seed"]), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert {k: cli[k] for k in ("tie", "label", "votes")} == {k: story.expect[k] for k in ("tie", "label", "votes")}


def test_the_certify_view_shows_the_radius_in_pixels_and_p_lower_against_the_count(digits_ctx):
    from densepure_viz.serving.ui.certify_tab import make_explainer

    out = {"densepure": {"radius": 0.62, "draws_used": 100, "alpha": 0.001, "sigma": 0.5, "count": 99, "p_lower": 0.89}}
    image = story_request(STORIES["certify-robust"]).image
    text, x, moved, fig = make_explainer(digits_ctx)(out, image, "digits", 0)
    assert "0.039 per value (RMS)" in text and "16x16 = 256 values" in text and "exactly 0.62" in text
    assert isinstance(x, Image.Image) and x.size == moved.size and x.tobytes() != moved.tobytes()
    assert any(t.name == "this run: nA = 99" for t in fig.data)
    abstain = {"densepure": {**out["densepure"], "radius": 0.0, "count": 40, "p_lower": 0.2}}
    text, x, moved, fig = make_explainer(digits_ctx)(abstain, image, "digits", 0)
    assert "abstained" in text and moved is None  # nothing to picture


def test_a_story_that_sets_the_2d_preset_keeps_its_own_sigma_and_points(app):
    """The preset's defaults follow a person's choice (input), not a story setting the preset (change)."""
    defaults = next(fn for fn in app.fns.values() if fn.name == "preset_defaults")
    assert [event for _, event in defaults.targets] == ["input"]
