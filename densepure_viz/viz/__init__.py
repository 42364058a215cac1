"""Pictures of results: Plotly figures (plots/) and the trajectory grids (PIL). They take results and
return figures or images; they never import gradio.

Imports: experiments and below (for result types), never serving.
"""
