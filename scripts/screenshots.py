"""The browser tour of the app: chromium (driven by Playwright) uses every view and screenshots it.

`tour(browser, url, out)` is shared by tests/test_browser.py (screenshots into a temporary folder)
and this command, which regenerates the README's images on purpose:

    python scripts/screenshots.py            # writes assets/screenshots/*.png (the five views, then
                                             # present-*.png at 1280x720 and phone-*.png at 390x844)
    python scripts/screenshots.py --out DIR  # anywhere else

The command serves the shipped digits model on a free loopback port. Every step waits for an event
in the page (a selector, a text, a Plotly trace), never for a fixed time; a step that does not
happen raises Playwright's TimeoutError. No pytest here: the tests import this module, not the reverse.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a plain script from anywhere

CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium (apt-get install chromium)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
OUT = ROOT / "assets" / "screenshots"
VIEWS = ("purify", "certify", "regions", "density", "about")  # one PNG each, in tour order
TABS = {"purify": "1. Purify", "certify": "2. Certify", "regions": "3. Robust regions (2D)",
        "density": "4. High-density points", "about": "5. About"}  # view -> its tab's name
PROJECTOR = {"width": 1280, "height": 720}  # presentation mode's target
PHONE = {"width": 390, "height": 844}
PRESENT_SHOTS = ("present-purify", "present-certify")  # presentation tour: the screen as the class sees it
PHONE_SHOTS = ("phone-purify", "phone-stories", "phone-verdict")  # phone tour: the top of the page, then a story tapped
# (its buttons and line scrolled to), then its verdict
PURIFY_STORY = "vote-wins"  # the story the presentation and phone tours run on Purify (its button's elem_id)
CERTIFY_STORY = "certify-robust"  # and on Certify
TAP_MIN_PX = 44  # a finger's tap target (Apple's guidelines, WCAG 2.5.5)
SCREENSHOT_WIDTH = 960  # README images are downscaled to this width
SCREENSHOT_HEIGHT = 1900  # and cropped to this many page pixels from the top
TIMEOUT_MS = 60_000  # the longest any one step may take (a certification on CPU)


@contextmanager
def chromium() -> Iterator:
    """A headless Debian chromium under Playwright (ImportError / FileNotFoundError when either is missing)."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise FileNotFoundError(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def serve(models) -> Iterator[str]:
    """The app on a free loopback port, every registry name served by `models`; yields its URL."""
    from densepure_viz.serving.ui import build_app
    from densepure_viz.serving.ui.app import launch_options

    demo = build_app(loader=lambda name, device: models, names=("digits",), device="cpu")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def shoot(page, name: str, out: Path) -> Path:
    """The top of the page (at most SCREENSHOT_HEIGHT CSS pixels), downscaled and palette-compressed."""
    from PIL import Image

    page.evaluate("window.scrollTo(0, 0)")
    raw = out / f"{name}.raw.png"
    page.screenshot(path=str(raw), full_page=True)
    img = Image.open(raw).convert("RGB")
    img = img.crop((0, 0, img.width, min(img.height, SCREENSHOT_HEIGHT)))
    img = img.resize((SCREENSHOT_WIDTH, round(img.height * SCREENSHOT_WIDTH / img.width)), Image.Resampling.LANCZOS)
    img.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out / f"{name}.png", optimize=True)
    raw.unlink()
    return out / f"{name}.png"


def text_contains(page, selector: str, text: str) -> None:
    """Wait until the element's visible text contains `text`."""
    page.wait_for_function(
        "([sel, text]) => { const el = document.querySelector(sel); return el && el.innerText.includes(text); }",
        arg=[selector, text], timeout=TIMEOUT_MS,
    )


def idle(page, *selectors: str) -> None:
    """Wait until none of the elements shows Gradio's status tracker ("processing | 1.2s", "queue: 1/2")."""
    page.wait_for_function(
        "(sels) => sels.every(sel => { const el = document.querySelector(sel);"
        " return el && !/processing|queue:/.test(el.innerText); })",
        arg=list(selectors), timeout=TIMEOUT_MS,
    )


def purify_a_three(page) -> None:
    """Pick the gallery's "3" and Run; return once the verdict, the vote histogram and the grid are on the page.

    The desktop tour's Purify step; the presentation and phone tours run a story instead (run_story).
    """
    before = page.locator("#purify-image img").first.get_attribute("src")
    page.locator('#purify-samples button[aria-label="Thumbnail 7 of 20"]').click()
    page.wait_for_function(
        "(before) => { const img = document.querySelector('#purify-image img');"
        " return img && img.getAttribute('src') !== before && /label3/.test(img.getAttribute('src')); }",
        arg=before, timeout=TIMEOUT_MS,
    )
    page.click("#purify-run")
    text_contains(page, "#purify-verdict", "True label: 3")
    text_contains(page, "#purify-verdict", "DensePure vote")
    page.wait_for_selector("#purify-votes .js-plotly-plot .barlayer")  # the vote histogram
    page.wait_for_selector("#purify-grid img")  # the trajectory grid
    idle(page, "#purify-verdict", "#purify-votes", "#purify-grid")


def run_story(page, key: str) -> None:
    """Click (tap, on a touch screen) the story's button; return once its line and its view's result are shown.

    Purify: the verdict changed (so a story is run once per page), the votes and the grid drawn; Certify: the certificate, then the scale of its
    radius (cleared at the click, filled once the run has succeeded). Nothing is left running.
    """
    from densepure_viz.serving.api import PARAMETERS
    from densepure_viz.teaching.stories import FILE, load

    story = next(s for s in load(FILE, PARAMETERS) if s.key == key)
    view, title = story.view, story.title
    before = page.locator("#purify-verdict").inner_text()
    button = page.locator(f"#story-{key}")
    if page.evaluate("'ontouchstart' in window"):  # the phone tour's page has a touch screen
        button.tap()
    else:
        button.click()
    text_contains(page, f"#{view}-story-look", title)
    if view == "purify":
        page.wait_for_function("(before) => document.querySelector('#purify-verdict').innerText !== before",
                               arg=before, timeout=TIMEOUT_MS)
        page.wait_for_selector("#purify-votes .js-plotly-plot .barlayer")
        # attached, not visible: the grid's image loads lazily, and on a phone it lies far below the story buttons
        page.wait_for_selector("#purify-grid img", state="attached")
        idle(page, "#purify-verdict", "#purify-votes", "#purify-grid")
    else:
        page.wait_for_function(
            "() => /Certified|does not certify|abstain/.test(document.querySelector('#certify-status').innerText)"
            " && document.querySelector('#certify-scale').innerText.trim() !== ''", timeout=TIMEOUT_MS)
        idle(page, "#certify-status", "#certify-card", "#certify-scale")


def certify_small(page) -> None:
    """Certify the Purify view's image with fewer draws than the default; return once the verdict is shown."""
    for slider, value in (("#certify-n0", "20"), ("#certify-n", "100")):
        box = page.locator(f"{slider} input[type=number]")
        box.fill(value)
        box.press("Enter")
    page.click("#certify-run")
    text_contains(page, "#certify-card", "bare classifier")
    page.wait_for_function("() => /Certified|does not certify/.test(document.querySelector('#certify-status').innerText)",
                           timeout=TIMEOUT_MS)


def open_view(page, view: str) -> None:
    """Click the view's tab and wait until its panel is shown."""
    page.get_by_role("tab", name=TABS[view]).click()
    page.wait_for_function("(name) => [...document.querySelectorAll('[role=tab]')].some("
                           "t => t.innerText.trim() === name && t.getAttribute('aria-selected') === 'true')",
                           arg=TABS[view], timeout=TIMEOUT_MS)


# The pictures that draw a colour legend band at their top-left (grids.legend_band): the trajectory grid and the scrub
# view of the K seeds at one step.
LEGEND_PICTURES = ("#purify-grid", "#purify-scrub")

# What a visitor would see as broken, measured on the page: anything wider than the screen, a title cut off or
# covered, an image's label over a picture's colour legend. Returns one line per problem (none: an empty list).
LAYOUT_PROBLEMS_JS = """(legend) => {
  const W = window.innerWidth, problems = [];
  // the part of an element that can be seen: its box cut by every ancestor that clips (a scrolling pane), or null
  const box = el => {
    if (!el.checkVisibility()) return null;
    let r = el.getBoundingClientRect(), [left, top, right, bottom] = [r.left, r.top, r.right, r.bottom];
    for (let a = el.parentElement; a; a = a.parentElement) {
      const cs = getComputedStyle(a);
      if (cs.overflowX === 'visible' && cs.overflowY === 'visible') continue;
      const c = a.getBoundingClientRect();
      [left, top, right, bottom] = [Math.max(left, c.left), Math.max(top, c.top), Math.min(right, c.right), Math.min(bottom, c.bottom)];
    }
    return right - left > 0 && bottom - top > 0 ? { left, top, right, bottom } : null;
  };
  const name = el => el.id ? '#' + el.id : (el.innerText || el.textContent || el.className || el.tagName).trim().slice(0, 40);
  const hit = (a, b) => a && b && a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const width = document.documentElement.scrollWidth;
  if (width > W + 1) problems.push(`the page is ${width}px wide on a ${W}px screen`);
  for (const el of document.querySelectorAll('.gradio-container .block, [role=tab]')) {
    const r = box(el);
    if (r && (r.left < -1 || r.right > W + 1)) problems.push(`${name(el)} spans x = ${r.left.toFixed(0)}..${r.right.toFixed(0)}`);
  }
  const buttons = [...document.querySelectorAll('.gradio-container .icon-button-wrapper button')].filter(box);
  const headings = [...document.querySelectorAll('.gradio-container :is(h1, h2, h3, [data-testid=block-label])')].filter(box);
  for (const h of headings) {  // a heading or an image's label under an image's buttons (its own or another's)
    for (const button of buttons) {
      if (hit(box(h), box(button))) problems.push(`"${name(h)}" is covered by a button (${button.getAttribute('aria-label')})`);
    }
  }
  for (const plot of document.querySelectorAll('.js-plotly-plot')) {  // figure titles: whole, apart, inside the figure
    const svg = plot.querySelector('.main-svg');
    if (!svg || !box(svg)) continue;
    const frame = svg.getBoundingClientRect();
    const titles = [...plot.querySelectorAll('.gtitle, .annotation-text, .g-xtitle text, .g-ytitle text, .legendtext')]
      .filter(t => t.checkVisibility());
    titles.forEach((t, i) => {
      const r = t.getBoundingClientRect();
      if (r.left < frame.left - 1 || r.right > frame.right + 1 || r.top < frame.top - 1 || r.bottom > frame.bottom + 1)
        problems.push(`figure text "${name(t)}" is cut off`);
      for (const u of titles.slice(i + 1)) if (hit(r, u.getBoundingClientRect())) problems.push(`figure texts "${name(t)}" and "${name(u)}" overlap`);
    });
  }
  // a legend band: the top two lines of text of the picture as drawn (grids.text_size of its width), in the left
  // LEGEND_SHARE of it; no image label may lie over it (a picture not loaded yet is not measured)
  const labels = [...document.querySelectorAll('.gradio-container [data-testid=block-label]')].filter(box);
  for (const img of document.querySelectorAll(legend.pictures.map(p => p + ' img').join(','))) {
    if (!img.naturalWidth || !box(img)) continue;
    const r = img.getBoundingClientRect(), s = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
    const left = r.left + (r.width - s * img.naturalWidth) / 2, top = r.top + (r.height - s * img.naturalHeight) / 2;
    const line = 1.5 * Math.max(legend.minText, Math.round(img.naturalWidth / legend.textShare));
    const band = { left, top, right: left + legend.share * s * img.naturalWidth, bottom: top + s * (2 * line + 4) };
    for (const label of labels) {
      if (hit(box(label), band)) problems.push(`the label "${name(label)}" covers the colour legend of ${name(img.closest('.block'))}`);
    }
  }
  return problems;
}"""


# Whether a finger can use each shown button the selector names: tall enough, inside the screen's width, on top
# where its centre is (scrolled into view first: nothing covers it), clear of the others. One line per problem.
TAP_PROBLEMS_JS = """([selector, minimum]) => {
  const W = window.innerWidth, problems = [];
  const buttons = [...document.querySelectorAll(selector)].filter(b => b.checkVisibility());
  if (!buttons.length) problems.push(`no button shown matches ${selector}`);
  const boxes = buttons.map(b => {
    b.scrollIntoView({ block: 'center' });
    const r = b.getBoundingClientRect(), x = (r.left + r.right) / 2, y = (r.top + r.bottom) / 2;
    const top = document.elementFromPoint(x, y);
    if (!top || !b.contains(top)) problems.push(`#${b.id} is covered at its centre by ${top ? top.tagName + '.' + top.className : 'nothing'}`);
    if (r.height < minimum) problems.push(`#${b.id} is ${r.height.toFixed(0)}px tall (a tap needs ${minimum})`);
    if (r.left < -1 || r.right > W + 1) problems.push(`#${b.id} spans x = ${r.left.toFixed(0)}..${r.right.toFixed(0)}`);
    return [b.id, r.left, r.top + window.scrollY, r.right, r.bottom + window.scrollY];
  });
  boxes.forEach(([a, l, t, r, b], i) => boxes.slice(i + 1).forEach(([c, l2, t2, r2, b2]) => {
    if (l < r2 - 1 && l2 < r - 1 && t < b2 - 1 && t2 < b - 1) problems.push(`#${a} and #${c} overlap`);
  }));
  return problems;
}"""


def tap_problems(page, selector: str = 'button[id^="story-"]', minimum: int = TAP_MIN_PX) -> list[str]:
    """The problems a finger would have with the shown buttons `selector` names (see TAP_PROBLEMS_JS)."""
    return page.evaluate(TAP_PROBLEMS_JS, [selector, minimum])


def layout_problems(page) -> list[str]:
    """The layout problems on the page as shown now (see LAYOUT_PROBLEMS_JS)."""
    from densepure_viz.viz.grids import LEGEND_SHARE, MIN_TEXT, TEXT_SHARE

    legend = {"pictures": list(LEGEND_PICTURES), "share": LEGEND_SHARE, "minText": MIN_TEXT, "textShare": TEXT_SHARE}
    return page.evaluate(LAYOUT_PROBLEMS_JS, legend)


def above_the_fold(page, selector: str) -> bool:
    """Whether the element is whole inside the viewport, the page scrolled to the top."""
    page.evaluate("window.scrollTo(0, 0)")
    box = page.locator(selector).first.bounding_box()
    size = page.viewport_size
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= size["height"] and box["x"] + box["width"] <= size["width"]


def snap(page, name: str, out: Path) -> Path:
    """The viewport as it is (no full page, no downscaling), palette-compressed."""
    from PIL import Image

    raw = out / f"{name}.raw.png"
    page.screenshot(path=str(raw))
    Image.open(raw).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out / f"{name}.png", optimize=True)
    raw.unlink()
    return out / f"{name}.png"


def present_tour(browser, url: str, out: Path, on_view: Callable[[str, object], None] | None = None) -> dict[str, Path]:
    """Presentation mode (?mode=present) at 1280x720: each view's result, screenshots of Purify and Certify.

    Purify and Certify run a story (PURIFY_STORY, CERTIFY_STORY), as a class would see it: its line beside the
    result. Purify's is under a PGD attack: its verdict has a line more than without, the longest the view shows.

    `on_view(name, page)` runs once each view shows its result, the page scrolled to the top.
    """
    out.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport=PROJECTOR)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url + "?mode=present")
    page.wait_for_function("() => document.body.classList.contains('dp-present')", timeout=TIMEOUT_MS)
    page.wait_for_selector("#purify-votes .js-plotly-plot")
    shots: dict[str, Path] = {}

    def done(view: str) -> None:
        page.evaluate("window.scrollTo(0, 0)")
        if on_view:
            on_view(view, page)
        if f"present-{view}" in PRESENT_SHOTS:
            shots[f"present-{view}"] = snap(page, f"present-{view}", out)

    run_story(page, PURIFY_STORY)
    done("purify")
    open_view(page, "certify")
    run_story(page, CERTIFY_STORY)
    done("certify")
    open_view(page, "regions")
    text_contains(page, "#regions-summary", "robust region")
    page.wait_for_selector("#regions-scene .js-plotly-plot .nsewdrag")
    done("regions")
    open_view(page, "density")
    page.click("#density-run")  # the story gave Purify a new image, which cleared this view's result
    text_contains(page, "#density-summary", "Highest-density point")
    page.wait_for_selector("#density-projection .js-plotly-plot .nsewdrag")
    idle(page, "#density-summary")
    done("density")
    page.close()
    return shots


def phone_tour(browser, url: str, out: Path, on_view: Callable[[str, object], None] | None = None) -> dict[str, Path]:
    """The page on a 390x844 phone: every view opened from its tab, a story tapped on Purify and on Certify;
    screenshots of the top, of the Purify story's buttons and line, and of its verdict.

    `on_view(name, page)` runs once each view is shown (Purify and Certify after their story), the page scrolled
    to the top.
    """
    out.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=1)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("#purify-votes .js-plotly-plot")
    shots = {"phone-purify": snap(page, "phone-purify", out)}
    run_story(page, PURIFY_STORY)
    page.evaluate("window.scrollTo(0, 0)")
    if on_view:
        on_view("purify", page)
    page.evaluate("document.querySelector('#story-%s').parentElement.scrollIntoView({block: 'start'})" % PURIFY_STORY)
    shots["phone-stories"] = snap(page, "phone-stories", out)
    page.evaluate("document.querySelector('#purify-verdict').scrollIntoView({block: 'start'})")
    page.wait_for_function(  # the grid's picture loads lazily, once scrolled near: an empty box until then
        "() => { const img = document.querySelector('#purify-grid img'); return img && img.complete && img.naturalWidth > 0; }",
        timeout=TIMEOUT_MS)
    shots["phone-verdict"] = snap(page, "phone-verdict", out)
    for view, ready in (("certify", "#certify-run"), ("regions", "#regions-summary .prose"),
                        ("density", "#density-summary .prose"), ("about", "#about-study, .tabitem .prose")):
        open_view(page, view)
        page.wait_for_selector(ready, state="attached")
        if view == "certify":
            run_story(page, CERTIFY_STORY)
        page.evaluate("window.scrollTo(0, 0)")
        if on_view:
            on_view(view, page)
    page.close()
    return shots


def tour(browser, url: str, out: Path, on_view: Callable[[str, object], None] | None = None) -> dict[str, Path]:
    """Use each view as a visitor would and screenshot it into `out`; view name -> PNG path.

    `on_view(name, page)` runs after each view's result is on the page, before its screenshot.
    """
    out.mkdir(parents=True, exist_ok=True)
    shots: dict[str, Path] = {}
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)

    def done(name: str) -> None:
        if on_view:
            on_view(name, page)
        shots[name] = shoot(page, name, out)

    page.goto(url)

    # first view: a preset already computed (sample 0, the CLI's defaults)
    page.wait_for_selector("#purify-votes .js-plotly-plot")
    text_contains(page, "#purify-verdict", "DensePure vote")

    # Purify a "3" from the samples gallery: its file travels to the input image, then Run
    purify_a_three(page)
    done("purify")

    # Certify, with fewer draws than the default
    open_view(page, "certify")
    certify_small(page)
    done("certify")

    # the 2D world: the region map is drawn; a click on it moves x_a and redraws the summary
    open_view(page, "regions")
    page.wait_for_function(  # the region map is a heatmap trace of the scene
        "() => { const p = document.querySelector('#regions-scene .js-plotly-plot');"
        " return p && p.data && p.data.some(t => t.type === 'heatmap'); }", timeout=TIMEOUT_MS)
    text_contains(page, "#regions-summary", "robust region")
    idle(page, "#regions-scene", "#regions-summary", "#regions-maps")
    xa_box = page.get_by_label("x_a x")
    xa_before = xa_box.input_value()
    drag = page.locator("#regions-scene .js-plotly-plot .nsewdrag").first.bounding_box()
    page.mouse.click(drag["x"] + 0.25 * drag["width"], drag["y"] + 0.75 * drag["height"])
    page.wait_for_function("() => document.querySelector('#regions-click textarea, #regions-click input').value !== ''",
                           timeout=TIMEOUT_MS)
    page.wait_for_function("([el, before]) => el.value !== before", arg=[xa_box.element_handle(), xa_before],
                           timeout=TIMEOUT_MS)  # the click reached the x_a inputs
    xa = [float(xa_box.input_value()), float(page.get_by_label("x_a y").input_value())]
    page.wait_for_function(  # the scene was redrawn with x_a where the click put it, and nothing is running
        "(xa) => { const p = document.querySelector('#regions-scene .js-plotly-plot');"
        " const t = p && p.data && p.data.find(t => t.name === 'x_a');"
        " return t && Math.abs(t.x[0] - xa[0]) < 2e-3 && Math.abs(t.y[0] - xa[1]) < 2e-3"
        " && !/processing|queue:/.test(document.body.innerText); }", arg=xa, timeout=TIMEOUT_MS)
    done("regions")

    # High-density points for the Purify view's image
    open_view(page, "density")
    page.click("#density-run")
    text_contains(page, "#density-summary", "Highest-density point")
    page.wait_for_selector("#density-projection .js-plotly-plot")
    done("density")

    open_view(page, "about")
    page.get_by_text("Results on the held-out digits").wait_for(state="visible")
    if page.locator("#about-results").count():  # the evaluation's figure, when assets/results has one
        page.wait_for_selector("#about-results .js-plotly-plot", state="visible")
    done("about")
    page.close()
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the README's screenshots with the shipped digits model.")
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder for the PNGs (default {OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    from densepure_viz.models.registry import load_models

    models = load_models("digits", device="cpu")  # the shipped model: what a visitor sees
    with serve(models) as url, chromium() as browser:
        shots = {**tour(browser, url, args.out), **present_tour(browser, url, args.out), **phone_tour(browser, url, args.out)}
    for path in shots.values():
        print(f"wrote {path} ({path.stat().st_size // 1024} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
