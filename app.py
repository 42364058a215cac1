"""densepure-viz: `python app.py` serves the explorer (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT honoured).

build_app() configures the queue (a concurrency limit per model, a bounded waiting line); nothing is
loaded or launched on import, so tests and Hugging Face Spaces can import this file safely.
"""

from densepure_viz.serving.ui import build_app
from densepure_viz.serving.ui.app import launch_options

if __name__ == "__main__":
    build_app().launch(**launch_options())
