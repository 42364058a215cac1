"""Where the project's files are: the repository root, the package and the shipped assets (weights, samples,
stories, results). No torch or gradio here: teaching, scripts and tests read it without loading a model."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent  # densepure_viz/
ROOT = PACKAGE.parent  # the repository root: story and sample images are named relative to it
ASSETS = ROOT / "assets"
