"""A real browser (Debian's chromium driven by Playwright) uses the app: Purify, Certify, the 2D view, High density.

The tour itself lives in scripts/screenshots.py, which also regenerates the README's screenshots on
purpose; here it writes them to a temporary folder, so a test run never rewrites tracked files.
Skips with a visible reason when chromium or Playwright is missing, except under CI (the CI variable
set), where a missing browser fails the test.
"""

from __future__ import annotations

import os

import pytest

from densepure_viz.models import ASSETS, load_models
from scripts.screenshots import VIEWS, chromium, serve, tour

SHIPPED = (ASSETS / "digits" / "diffusion").is_dir() and (ASSETS / "digits" / "classifier").is_dir()
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
