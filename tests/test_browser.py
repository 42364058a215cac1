"""A real browser (Debian's chromium driven by Playwright) uses the app: the five views, presentation mode at
1280x720, the phone layout at 390x844, and the sketchpad's first stroke.

The tour itself lives in scripts/screenshots.py, which also regenerates the README's screenshots on
purpose; here it writes them to a temporary folder, so a test run never rewrites tracked files.
Skips with a visible reason when chromium or Playwright is missing, except under CI (the CI variable
set), where a missing browser fails the test.
"""

from __future__ import annotations

import os

import pytest

from densepure_viz.models.registry import load_models
from densepure_viz.paths import ASSETS
from densepure_viz.serving.api import PARAMETERS, view_stories
from densepure_viz.teaching.stories import FILE, load
from scripts.screenshots import (CERTIFY_STORY, LEGEND_PICTURES, PHONE, PHONE_SHOTS, PRESENT_SHOTS, PROJECTOR, PURIFY_STORY,
                                 TABS, VIEWS, above_the_fold, chromium, layout_problems, phone_tour, present_tour, serve,
                                 tap_problems, text_contains, tour)

SHIPPED = (ASSETS / "digits" / "diffusion").is_dir() and (ASSETS / "digits" / "classifier").is_dir()
STORY_TITLES = {"purify": {s.key: s.title for s in load(FILE, PARAMETERS)}[PURIFY_STORY],  # the stories the tours run
                "certify": {s.key: s.title for s in load(FILE, PARAMETERS)}[CERTIFY_STORY]}
pytestmark = pytest.mark.slow


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so browser tests must run: `apt-get install chromium`)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        with chromium() as b:
            yield b
    except (ImportError, FileNotFoundError) as exc:
        _missing(str(exc))


@pytest.fixture(scope="module")
def server(tiny_models):
    """The app on a free loopback port: the shipped digits model when present, else tiny random models."""
    with serve(load_models("digits", device="cpu") if SHIPPED else tiny_models) as url:
        yield url


def test_the_views_in_a_real_browser(browser, server, tmp_path):
    seen = []
    shots = tour(browser, server, tmp_path, on_view=lambda name, page: seen.append(name))
    assert seen == list(VIEWS) and set(shots) == set(VIEWS)
    assert all(shots[v].parent == tmp_path and 0 < shots[v].stat().st_size < 500_000 for v in VIEWS)


# what must be on screen, without scrolling, once each view has its result in presentation mode at 1280x720 (on
# Purify and Certify a story has run: its buttons and its "what to look at" line belong to the result)
RESULT_ABOVE_THE_FOLD = {
    "purify": ("#purify-verdict", "#purify-votes", "#purify-story-look", f"#story-{PURIFY_STORY}", "#purify-run"),
    "certify": ("#certify-status", "#certify-card tbody tr", "#certify-story-look", f"#story-{CERTIFY_STORY}",
                "#certify-run"),
    "regions": ("#regions-scene .nsewdrag", "#regions-summary h3, #regions-summary p", "#regions-run"),
    "density": ("#density-projection .nsewdrag", "#density-run"),
}


# Presentation mode's Purify, measured: the samples gallery against its pane, the input image and the first setting;
# the three images (x, x_a, x_a + delta) against the verdict. Boxes as [left, top, right, bottom] in the viewport.
PRESENT_PURIFY_JS = """() => {
  const rect = el => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const gallery = document.querySelector('#purify-samples');
  let pane = gallery.parentElement;  // the left pane: the gallery's first ancestor that scrolls
  while (pane && !/auto|scroll/.test(getComputedStyle(pane).overflowY)) pane = pane.parentElement;
  return {
    gallery: rect(gallery), pane: [...rect(pane), pane.clientWidth], input: rect(document.querySelector('#purify-image')),
    sigma: rect([...pane.querySelectorAll('.block')].find(b => /sigma/.test(b.innerText))),
    images: [...document.querySelector('#purify-clean').parentElement.children].map(rect),
    verdict: rect(document.querySelector('#purify-verdict')),
  };
}"""
# the picture of a view's image output once drawn (lazily loaded: wait for it), as [width, height] on the page
PICTURE_JS = """(sel) => { const img = document.querySelector(sel + ' img');
  if (!img || !img.complete || !img.naturalWidth) return false;
  const r = img.getBoundingClientRect(), s = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
  return [s * img.naturalWidth, s * img.naturalHeight]; }"""


def test_presentation_mode_puts_each_result_above_the_fold(browser, server, tmp_path):
    """Fails when a result, or a story's line, ends below y = 720: e.g. with the story line in the body's type
    under the vote histogram (before the compact story row in ui/components.py it ended at y = 816).

    Also, on Purify: the samples gallery comes first in the left pane (after the Run row), whole and as wide as the
    pane (it was at its bottom, y = 1312, 550 px wide in a 384 px pane), and x, x_a and x_a + delta sit beside the
    verdict, on the first screen (they came after the trajectory grid, at y = 1833); on High-density, the pictures
    of x0, the highest-density image and the posterior mean get room (they were a sliver beside their label)."""
    seen = {}

    def check(view, page):
        seen[view] = {
            "hidden": [s for s in RESULT_ABOVE_THE_FOLD[view] if not above_the_fold(page, s)],
            "problems": layout_problems(page),
            "type": page.evaluate("parseFloat(getComputedStyle(document.querySelector('#purify-run, #certify-run,"
                                  " #regions-run, #density-run')).fontSize)"),
            "look": page.locator(f"#{view}-story-look").inner_text() if view in STORY_TITLES else None,
        }
        if view == "purify":
            seen[view]["layout"] = page.evaluate(PRESENT_PURIFY_JS)
        if view == "density":
            seen[view]["pictures"] = page.wait_for_function(PICTURE_JS, arg="#density-pictures").json_value()

    shots = present_tour(browser, server, tmp_path, on_view=check)
    assert set(seen) == set(RESULT_ABOVE_THE_FOLD) and set(shots) == set(PRESENT_SHOTS)
    for view, found in seen.items():
        assert found["hidden"] == [], f"{view}: not above the fold at 1280x720: {found['hidden']}"
        assert found["problems"] == [], f"{view}: {found['problems']}"
        assert found["type"] >= 20  # bigger type (Gradio's large button text is 16 px)
        if view in STORY_TITLES:  # the line on screen is the story's that ran
            assert found["look"].startswith(STORY_TITLES[view]), found["look"]
    at = seen["purify"]["layout"]
    (gl, gt, gr, gb), (pl, pt, pr, pb, inner) = at["gallery"], at["pane"]
    assert pl - 1 <= gl and gr <= pr + 1 and gr - gl >= inner - 2, f"gallery x = {gl:.0f}..{gr:.0f} in a pane {pl:.0f}..{pr:.0f}"
    assert gb <= min(pb, PROJECTOR["height"]) + 1, f"the gallery ends at y = {gb:.0f}, below the first screen"
    assert gt < at["input"][1] and gt < at["sigma"][1], "the gallery is not the pane's first input"
    vl, vt, vr, vb = at["verdict"]
    assert len(at["images"]) == 3
    for left, top, right, bottom in at["images"]:  # beside the verdict, in its band, on the first screen
        assert left >= vr - 1 and top < vb and bottom > vt and bottom <= PROJECTOR["height"], (at["images"], at["verdict"])
    width, height = seen["density"]["pictures"]
    assert height >= 120 and width >= 400, f"High-density's pictures are {width:.0f}x{height:.0f}"


def test_the_projector_in_the_normal_layout_shows_run_and_the_first_result(browser, server):
    """1280x720 without presentation mode: a compact header (it took 293 px), then Purify's Run button and its
    first result, x / x_a / x_a + delta, whole on the first screen (Run was at y = 774, the images at y = 1026).
    And no image label lies over a picture's colour legend (the scrub view's label covered "frame colour = label"):
    layout_problems measures the legends once the pictures are drawn."""
    page = browser.new_page(viewport=PROJECTOR)
    page.goto(server)
    page.wait_for_selector("#purify-votes .js-plotly-plot")
    text_contains(page, "#purify-verdict", "DensePure vote")
    header = page.locator("#views").bounding_box()["y"]
    images = [f".row:has(> #purify-clean) > .block:nth-child({i})" for i in (1, 2, 3)]
    hidden = [s for s in ("#purify-run", *images) if not above_the_fold(page, s)]
    drawn = page.wait_for_function(PICTURE_JS, arg="#purify-clean").json_value()  # the result is there, not a box
    for picture in LEGEND_PICTURES:  # drawn lazily: bring each into view and wait for it
        page.locator(picture).scroll_into_view_if_needed()
        page.wait_for_function(PICTURE_JS, arg=picture)
    problems = layout_problems(page)
    page.close()
    assert header <= 180, f"the header takes {header:.0f} px"
    assert hidden == [], f"not on the first screen at 1280x720: {hidden}"
    assert min(drawn) >= 100, drawn
    assert problems == [], problems


def test_presentation_mode_follows_its_checkbox_and_the_address(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.goto(server + "?mode=present")
    toggle = page.locator("#present-toggle input[type=checkbox]")
    page.wait_for_function("() => document.body.classList.contains('dp-present')")
    assert toggle.is_checked()
    toggle.uncheck()
    page.wait_for_function("() => !document.body.classList.contains('dp-present')")
    assert "mode=present" not in page.url
    toggle.check()
    page.wait_for_function("() => document.body.classList.contains('dp-present')")
    assert "mode=present" in page.url  # the address to bookmark
    page.close()


def test_the_phone_layout_reaches_every_view_with_nothing_cut_off(browser, server, tmp_path):
    """Also taps a story on Purify and on Certify (the tour waits for its result, or times out): each view's story
    buttons must be whole, uncovered, apart and a finger's height, and near the top of the page (within 1.5 screen
    heights, not below every control). Fails with Gradio's 26 px small buttons (without the phone's min-height rule
    in ui/components.py), when the stacked row lets a button spill off the screen, or without the phone's `order`
    rule that lifts the stories above the controls."""
    problems, tabs, taps, looks, tops, maps = {}, {}, {}, {}, {}, {}
    first = {view: view_stories(view)[0].key for view in ("purify", "certify", "regions")}  # each view's first story

    def check(view, page):
        problems[view] = layout_problems(page)
        tabs[view] = [page.get_by_role("tab", name=name).bounding_box() for name in TABS.values()]
        if view in STORY_TITLES:
            taps[view] = tap_problems(page)
            looks[view] = page.locator(f"#{view}-story-look").inner_text()
        if view in first:
            tops[view] = page.evaluate("(sel) => document.querySelector(sel).getBoundingClientRect().top + window.scrollY",
                                       f"#story-{first[view]}")
        if view == "regions":  # the map's plotting area, and the box it is shown in
            page.wait_for_selector("#regions-scene .nsewdrag")
            maps[view] = [page.locator(s).first.bounding_box() for s in ("#regions-scene .nsewdrag", "#regions-scene")]

    shots = phone_tour(browser, server, tmp_path, on_view=check)
    assert list(problems) == list(VIEWS) and set(shots) == set(PHONE_SHOTS)
    for view in VIEWS:
        assert problems[view] == [], f"{view} at 390x844: {problems[view]}"
        # every tab is a visible button inside the screen's width, at the top of the page (not in a menu)
        assert all(box is not None and 0 <= box["x"] and box["x"] + box["width"] <= 390 and box["y"] < 844
                   for box in tabs[view]), tabs[view]
    for view, title in STORY_TITLES.items():
        assert taps[view] == [], f"{view}'s story buttons at 390x844: {taps[view]}"
        assert looks[view].startswith(title), looks[view]  # the tapped story ran and says what to look at
    for view, top in tops.items():  # the 2D view's too (it was ~1950 px down, after every control)
        assert top <= 1.5 * PHONE["height"], f"{view}'s first story button is {top:.0f} px down the page"
    area, frame = maps["regions"]  # the whole map within its box and the screen (it was cut at the box's right)
    assert frame["x"] - 1 <= area["x"] and area["x"] + area["width"] <= min(frame["x"] + frame["width"], PHONE["width"]) + 1, (
        area, frame)


def test_the_sketchpad_draws_on_the_first_stroke(browser, server):
    """One drag right after opening Draw is a drawing: "Use this drawing" puts it in the input image."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server)
    page.wait_for_selector("#purify-votes .js-plotly-plot")
    before = page.locator("#purify-image img").first.get_attribute("src")
    page.get_by_role("tab", name="Draw").click()
    canvas = page.locator("#purify-sketch canvas").first
    canvas.wait_for(state="visible")
    box = canvas.bounding_box()
    x, y = box["x"] + 0.45 * box["width"], box["y"] + 0.3 * box["height"]
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(x + 2 * i, y + 10 * i)
    page.mouse.up()
    page.get_by_role("button", name="Use this drawing").click()
    outcome = page.wait_for_function(  # the input image changes, or the app says the canvas is empty
        "(before) => { const img = document.querySelector('#purify-image img');"
        " if (img && img.getAttribute('src') !== before) return 'drawn';"
        " const toast = document.querySelector('.toast-body'); return toast ? toast.innerText : false; }", arg=before)
    assert outcome.json_value() == "drawn"
    page.close()
