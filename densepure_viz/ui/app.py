"""Placeholder page until the explorer lands: says what the project is and how to use the CLI."""

import gradio as gr


def build_app() -> gr.Blocks:
    with gr.Blocks(title="densepure-viz") as demo:
        gr.Markdown("# densepure-viz\nThe explorer is being built; meanwhile use `python -m densepure_viz purify IMAGE`.")
    return demo
