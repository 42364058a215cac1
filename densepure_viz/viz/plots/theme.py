"""The figures' look: Plotly's "plotly_white", cut to the parts our figures use, built once.

Naming "plotly_white" makes Plotly validate and deep-copy the whole template (every trace type's defaults, polar,
ternary and geo axes) into each new figure: ~6 ms a figure, on every Purify request's vote histogram. TEMPLATE keeps
its layout for 2D and 3D axes and its defaults for the trace types drawn here, so the figures look the same.
"""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

TRACES = ("bar", "scatter", "scatter3d", "heatmap", "contour")  # the trace types our figures draw
UNUSED_LAYOUT = ("polar", "ternary", "geo")  # plotly_white's axes for figure kinds we never draw


def light_template() -> dict:
    """plotly_white's layout (without polar, ternary and geo axes) and its defaults for TRACES, as a plain dict."""
    white = pio.templates["plotly_white"].to_plotly_json()
    return {"layout": {k: v for k, v in white["layout"].items() if k not in UNUSED_LAYOUT},
            "data": {k: v for k, v in white["data"].items() if k in TRACES}}


TEMPLATE = go.layout.Template(light_template())
