"""The Gradio user interface (the only package that imports gradio)."""

from densepure_viz.serving.ui.app import build_app

__all__ = ["build_app"]
