"""Render a shipped offline Plotly HTML figure to a PNG for the README (headless Debian chromium, Playwright).

    python scripts/figure_png.py assets/results/digits-sequential/sequential_draws.html [--out FILE.png]

Waits for Plotly's first drawn trace (an event in the page, no fixed sleep), screenshots the figure's
div at 1000 x 560 CSS pixels, and writes FILE.png (default: the HTML's path with .png).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshots import chromium  # noqa: E402  (a sibling script, not a package)

SIZE = {"width": 1000, "height": 560}


def render(html: Path, png: Path) -> Path:
    """Screenshot the Plotly figure of `html` into `png`."""
    with chromium() as browser:
        page = browser.new_page(viewport=SIZE)
        page.goto(html.resolve().as_uri())
        page.wait_for_selector(".plotly .scatterlayer .trace", timeout=60_000)
        page.locator(".plotly-graph-div").first.screenshot(path=str(png))
    return png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    print(render(args.html, args.out or args.html.with_suffix(".png")))


if __name__ == "__main__":
    main()
