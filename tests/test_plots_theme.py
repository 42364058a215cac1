"""The figures' light template is plotly_white wherever our figures can see the difference."""

from __future__ import annotations

import re
from pathlib import Path

import plotly.io as pio

from densepure_viz.viz.plots import theme
from densepure_viz.viz.plots.images import vote_histogram_figure

PLOTS = Path(theme.__file__).parent


def drawn_trace_types() -> set[str]:
    """The trace types the figure modules construct (go.Bar(...) -> "bar"), read from their source."""
    calls = {m.group(1) for f in PLOTS.glob("*.py") for m in re.finditer(r"\bgo\.(\w+)\(", f.read_text())}
    return {name.lower() for name in calls} - {"figure", "frame"}


def test_every_trace_type_drawn_keeps_plotly_whites_defaults():
    white = pio.templates["plotly_white"].to_plotly_json()
    light = theme.TEMPLATE.to_plotly_json()
    drawn = drawn_trace_types()
    assert {"bar", "scatter", "contour"} <= drawn <= set(theme.TRACES)
    assert {t: light["data"][t] for t in drawn} == {t: white["data"][t] for t in drawn}


def test_the_layout_is_plotly_whites_but_the_axes_we_never_draw():
    white = pio.templates["plotly_white"].to_plotly_json()["layout"]
    light = theme.TEMPLATE.to_plotly_json()["layout"]
    assert set(white) - set(light) == set(theme.UNUSED_LAYOUT)
    assert all(light[k] == white[k] for k in light)


def test_a_figure_carries_the_light_template():
    fig = vote_histogram_figure({3: 5, 5: 3}, tuple(str(c) for c in range(10)), winner=3)
    layout = fig.to_plotly_json()["layout"]
    assert layout["template"] == theme.TEMPLATE.to_plotly_json() and "polar" not in layout["template"]["layout"]
