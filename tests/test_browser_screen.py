"""A screen that keeps up, in a real browser at projector size (1280x720): results never outlive their input, and
the trajectory grid streams its columns while the reverse process runs.

Uses the browser and server fixtures of tests/test_browser.py (Debian's chromium under Playwright; the shipped
digits model); skips or, under CI, fails as they do.
"""

from __future__ import annotations

import re

import pytest
from test_browser import browser, server  # noqa: F401 - fixtures

import densepure_viz.serving.ui.purify_tab as purify_tab
from scripts.screenshots import PROJECTOR, TIMEOUT_MS, idle, open_view, text_contains

pytestmark = pytest.mark.slow
THREE = '#purify-samples button[aria-label="Thumbnail 7 of 20"]'  # the gallery's "3" (samples sort by label)


def _box(page, selector: str) -> dict | None:
    """The element's box on the page when it is shown, else None."""
    loc = page.locator(selector)
    return loc.first.bounding_box() if loc.count() and loc.first.is_visible() else None


def _results_cleared(page) -> None:
    """Every Purify result is gone and the verdict says why: no old digit, grid or true label left on screen."""
    text_contains(page, "#purify-verdict", "New input")
    verdict = page.locator("#purify-verdict").inner_text()
    assert "True label" not in verdict and "DensePure vote" not in verdict
    for selector in ("#purify-grid img", "#purify-clean img", "#purify-votes .js-plotly-plot .barlayer"):
        assert _box(page, selector) is None, f"{selector} still shown"
    box = _box(page, "#purify-verdict")
    assert box is not None and box["height"] > 20  # the note itself is shown, not an empty box


def test_a_new_input_clears_the_results_of_the_old_one(browser, server, tmp_path):  # noqa: F811
    page = browser.new_page(viewport=PROJECTOR)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server)
    text_contains(page, "#purify-verdict", "True label: 0")  # the first view: the first sample, computed
    # its grid is drawn (a picture still loading has no box yet: wait for it, within the timeout)
    page.wait_for_function("() => { const img = document.querySelector('#purify-grid img');"
                           " return img !== null && img.getBoundingClientRect().height > 100; }")

    page.locator(THREE).click()  # a new sample
    _results_cleared(page)
    page.click("#purify-run")
    text_contains(page, "#purify-verdict", "True label: 3")
    idle(page, "#purify-verdict", "#purify-grid")

    open_view(page, "certify")  # the Certify view follows the Purify view's image: no certificate of the old one
    text_contains(page, "#certify-status", "New input")
    open_view(page, "density")  # the High-density view follows the Purify view's image, and says whose it is
    text_contains(page, "#density-summary", "New input")
    page.click("#density-run")
    text_contains(page, "#density-summary", "Image: test_")
    assert re.search(r"Image: test_\d+_label3\.png \(true label 3\)", page.locator("#density-summary").inner_text())

    open_view(page, "purify")  # an upload that is not an image: the old results go, the Run is refused in one line
    bad = tmp_path / "notes.png"
    bad.write_text("this is not a picture")
    page.set_input_files("#purify-image input[type=file]", str(bad))
    _results_cleared(page)
    page.click("#purify-run")
    page.wait_for_selector(".toast-body", timeout=TIMEOUT_MS)
    assert "True label" not in page.locator("#purify-verdict").inner_text()
    page.close()


# Records, in the page, every picture the grid shows and whether a progress overlay covers it, until the verdict
# names the vote (the run's last frame).
WATCH_GRID_JS = """() => {
  window.gridFrames = []; window.gridCovered = false; window.gridRun = 'before';
  const grid = document.querySelector('#purify-grid');
  new MutationObserver(() => {
    const verdict = document.querySelector('#purify-verdict').innerText;
    if (window.gridRun === 'before' && /Purifying/.test(verdict)) window.gridRun = 'running';  // the run's first frame
    if (window.gridRun === 'running' && /DensePure vote/.test(verdict)) window.gridRun = 'done';  // its last
    if (window.gridRun !== 'running') return;
    const img = grid.querySelector('img');
    if (img && img.src && !window.gridFrames.includes(img.src)) window.gridFrames.push(img.src);  // each new picture
    if (/processing|queue:|\\d+\\/\\d+ steps/.test(grid.innerText)) window.gridCovered = true;
  }).observe(document.body, { childList: true, subtree: true, attributes: true, characterData: true });
}"""


def test_the_grid_shows_the_digits_emerge_step_by_step(browser, server, monkeypatch):  # noqa: F811
    monkeypatch.setattr(purify_tab, "STREAM_INTERVAL", 0.0)  # every shown step streams (the server is in this process)
    page = browser.new_page(viewport=PROJECTOR)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server)
    text_contains(page, "#purify-verdict", "True label: 0")
    box = page.locator("#purify-steps input[type=number]")  # b = 60: a run long enough to watch, on any machine
    box.fill("60")
    box.press("Enter")
    page.evaluate(WATCH_GRID_JS)
    page.click("#purify-run")
    page.wait_for_function("() => window.gridRun === 'done'", timeout=TIMEOUT_MS)
    frames, covered = page.evaluate("[window.gridFrames, window.gridCovered]")
    assert len(frames) >= 3, f"only {len(frames)} grid pictures before the vote"  # columns arriving, not one final grid
    assert not covered, "a progress overlay covered the grid during the run"
    page.close()
