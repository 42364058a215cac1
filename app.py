"""densepure-viz: `python app.py` launches the explorer (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT honoured)."""

from densepure_viz.ui import build_app

if __name__ == "__main__":
    build_app().queue(default_concurrency_limit=2).launch()
