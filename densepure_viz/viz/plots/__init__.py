"""Plotly figures (no Gradio, no computation beyond layout)."""
