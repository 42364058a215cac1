"""A visitor whose Run waits in line sees the queue position next to the Run button (a real browser)."""

from __future__ import annotations

import threading

import pytest
from test_browser import browser  # noqa: F401 - the shared chromium fixture (fails under CI when it is missing)

from densepure_viz.models.registry import custom_spec, load_models
from densepure_viz.serving.ui.session import AppContext
from scripts.screenshots import serve

pytestmark = pytest.mark.slow


def test_a_queued_run_shows_its_position_next_to_the_button(browser, tiny_dirs, monkeypatch):
    # the interactive lane admits BATCH_SESSIONS runs at once (they share the batcher); one here, so the second waits
    monkeypatch.setattr(AppContext, "interactive_limit", property(lambda ctx: 1))
    models = load_models(custom_spec(str(tiny_dirs[0]), str(tiny_dirs[1])), device="cpu")  # own copy: hooked
    hold, busy = threading.Event(), threading.Event()

    def block(*_):  # the first Run holds the interactive lane until the test lets it go
        if not hold.is_set():
            busy.set()
            hold.wait(60)

    models.unet.register_forward_hook(block)
    hold.set()  # the first view's preset computes freely
    with serve(models) as url:
        pages = [browser.new_page(viewport={"width": 1280, "height": 720}) for _ in range(2)]
        try:
            for i, page in enumerate(pages):
                page.set_default_timeout(60_000)
                page.goto(url)
                page.wait_for_selector("#purify-votes .js-plotly-plot")
                page.get_by_label("base seed").fill(str(10 + i))  # different requests: none is shared
                page.get_by_label("base seed").press("Tab")
            hold.clear()
            pages[0].locator("#purify-run").click()
            assert busy.wait(30), "the first Run never reached the model"
            pages[1].locator("#purify-run").click()
            status = pages[1].locator("#purify-run-status")
            status.get_by_text("queue: 1/1").wait_for()
            box, button = status.bounding_box(), pages[1].locator("#purify-run").bounding_box()
            assert box["y"] < 720 and abs(box["y"] - button["y"]) < 60, "not beside the Run button, above the fold"
        finally:
            hold.set()
            for page in pages:
                page.close()
