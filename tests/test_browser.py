"""A real browser (Debian's chromium driven by Playwright) uses the app: Purify, Certify, the 2D view, High density.

Skips with a visible reason when chromium or Playwright is missing, except under CI (the CI variable
set), where a missing browser fails the test. With the shipped digits model the test also saves
small screenshots of each view to assets/screenshots/ for the README (SCREENSHOT_DIR overrides the folder).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from densepure_viz.models import ASSETS, load_models
from densepure_viz.ui import build_app
from densepure_viz.ui.app import launch_options

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SHIPPED = (ASSETS / "digits" / "diffusion").is_dir() and (ASSETS / "digits" / "classifier").is_dir()
SCREENSHOTS = ASSETS / "screenshots"
SCREENSHOT_WIDTH = 960  # README images are downscaled to this width
SCREENSHOT_HEIGHT = 1900  # and cropped to this many page pixels from the top
TIMEOUT_MS = 60_000


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so browser tests must run: `apt-get install chromium`)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright Python package is not installed")
    if not CHROMIUM.exists():
        _missing(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(tiny_models):
    """The app on a free loopback port: the shipped digits model when present, else tiny random models."""
    models = load_models("digits", device="cpu") if SHIPPED else tiny_models
    demo = build_app(loader=lambda name, device: models, names=("digits",), device="cpu")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def _shoot(page, name: str, out: Path) -> None:
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


def _text_contains(page, selector: str, text: str) -> None:
    page.wait_for_function(
        "([sel, text]) => { const el = document.querySelector(sel); return el && el.innerText.includes(text); }",
        arg=[selector, text], timeout=TIMEOUT_MS,
    )


def test_the_views_in_a_real_browser(browser, server, tmp_path):
    out = Path(os.environ.get("SCREENSHOT_DIR") or (SCREENSHOTS if SHIPPED else tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(server)

    # first view: a preset already computed (sample 0, the CLI's defaults)
    page.wait_for_selector("#purify-votes .js-plotly-plot", timeout=TIMEOUT_MS)
    _text_contains(page, "#purify-verdict", "DensePure vote")

    # Purify a "3" from the samples gallery
    page.locator('#purify-samples button[aria-label="Thumbnail 7 of 20"]').click()
    page.wait_for_timeout(1500)  # the gallery selection travels to the input image
    page.click("#purify-run")
    _text_contains(page, "#purify-verdict", "Reference: 3")
    _text_contains(page, "#purify-verdict", "DensePure vote")
    page.wait_for_selector("#purify-votes .js-plotly-plot .barlayer", timeout=TIMEOUT_MS)  # the vote histogram
    page.wait_for_selector("#purify-grid img", timeout=TIMEOUT_MS)  # the trajectory grid
    _shoot(page, "purify", out)

    # Certify, with fewer draws than the default
    page.get_by_role("tab", name="2. Certify").click()
    for slider, value in (("#certify-n0", "20"), ("#certify-n", "100")):
        box = page.locator(f"{slider} input[type=number]")
        box.fill(value)
        box.press("Enter")
    page.click("#certify-run")
    _text_contains(page, "#certify-card", "bare classifier")
    page.wait_for_function("() => /Certified|abstains/.test(document.querySelector('#certify-status').innerText)",
                           timeout=TIMEOUT_MS)
    _shoot(page, "certify", out)

    # the 2D world: the region map is drawn; a click on it moves x_a
    page.get_by_role("tab", name="3. Robust regions (2D)").click()
    page.wait_for_function(  # the region map is a heatmap trace of the scene
        "() => { const p = document.querySelector('#regions-scene .js-plotly-plot');"
        " return p && p.data && p.data.some(t => t.type === 'heatmap'); }", timeout=TIMEOUT_MS)
    drag = page.locator("#regions-scene .js-plotly-plot .nsewdrag").first.bounding_box()
    page.mouse.click(drag["x"] + 0.25 * drag["width"], drag["y"] + 0.75 * drag["height"])
    page.wait_for_function("() => document.querySelector('#regions-click textarea, #regions-click input').value !== ''",
                           timeout=TIMEOUT_MS)
    page.wait_for_timeout(2000)
    _shoot(page, "regions", out)

    # High-density points for the Purify view's image
    page.get_by_role("tab", name="4. High-density points").click()
    page.click("#density-run")
    _text_contains(page, "#density-summary", "Highest-density point")
    page.wait_for_selector("#density-projection .js-plotly-plot", timeout=TIMEOUT_MS)
    _shoot(page, "density", out)

    page.get_by_role("tab", name="5. About").click()
    page.wait_for_timeout(500)
    _shoot(page, "about", out)
    page.close()
    assert all((out / f"{v}.png").stat().st_size < 500_000 for v in ("purify", "certify", "regions", "density", "about"))

