"""The one-click stories in a real browser: each button sets its view's controls, runs it, and the view tells the
story (the same chromium and app as test_browser.py)."""

from __future__ import annotations

import pytest
from test_browser import SHIPPED, browser, server  # noqa: F401 - the fixtures, shared

from densepure_viz.serving.api import PARAMETERS
from densepure_viz.teaching.stories import FILE, load
from scripts.screenshots import TIMEOUT_MS, text_contains

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not SHIPPED, reason="the stories are the shipped digits model's")]

TABS = {"purify": "1. Purify", "certify": "2. Certify", "regions": "3. Robust regions (2D)"}
SHOWS = {  # story -> (view, element, text it shows once the story has run)
    "vote-wins": ("purify", "#purify-verdict", "(5/8 seeds)"),
    "noise-alone-recovers": ("purify", "#purify-verdict", "(8/8 seeds)"),
    "adaptive-fools-both": ("purify", "#purify-verdict", "attacked input x_a"),
    "tie": ("purify", "#purify-verdict", "a tie between 3 and 8"),
    "certify-wins": ("certify", "#certify-scale", "How big is 0.72?"),
    "certify-robust": ("certify", "#certify-scale", "How big is 0.62?"),
    "certify-abstain": ("certify", "#certify-scale", "No radius to picture"),
    "region-larger-than-ball": ("regions", "#regions-summary", "radius 0.441"),
}


def test_each_story_button_tells_its_story(browser, server):
    stories = load(FILE, PARAMETERS)
    assert {s.key for s in stories} == set(SHOWS)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server)
    text_contains(page, "#purify-verdict", "DensePure vote")  # the first view is in
    for story in stories:
        view, element, text = SHOWS[story.key]
        page.get_by_role("tab", name=TABS[view]).click()
        page.locator(f"#story-{story.key}").click()
        text_contains(page, element, text)
        text_contains(page, f"#{view}-story-look", story.look[:40])  # and says what to look at
    page.close()
