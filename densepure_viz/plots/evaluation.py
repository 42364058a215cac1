"""Plotly figure of the evaluation: certified accuracy against L2 radius (Cohen et al. 2019, Fig. 7 style).

One line per (method, sigma): colour names the method (bare classifier, Cohen et al. 2019; one-shot
denoising, Carlini et al. 2023; DensePure, Xiao et al. 2023), dash names sigma. Takes the result
dataclass of densepure_viz.evaluate (or one read back from results.json); never saves or shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import plotly.graph_objects as go

if TYPE_CHECKING:
    from ..evaluate import EvaluationResult

METHOD_COLORS: dict[str, str] = {"bare": "#7f7f7f", "one-shot": "#1f77b4", "densepure": "#d62728"}
METHOD_LABELS: dict[str, str] = {"bare": "bare classifier", "one-shot": "one-shot denoising", "densepure": "DensePure"}
SIGMA_DASHES: tuple[str, ...] = ("solid", "dash", "dot", "dashdot", "longdash")


def certified_accuracy_figure(result: EvaluationResult) -> go.Figure:
    """Certified accuracy (%) vs L2 radius, a step curve per (method, sigma), up to the largest table radius."""
    max_radius = max(result.config.radii)
    sigmas = sorted({c.sigma for c in result.certified})
    fig = go.Figure()
    for curve in result.certified:
        xs, ys = curve.step_points(max_radius)
        dash = SIGMA_DASHES[sigmas.index(curve.sigma) % len(SIGMA_DASHES)]
        fig.add_trace(go.Scatter(
            x=xs,
            y=[100 * y for y in ys],
            mode="lines",
            name=f"{METHOD_LABELS.get(curve.method, curve.method)}, sigma = {curve.sigma:g}",
            line={"color": METHOD_COLORS.get(curve.method), "dash": dash},
            hovertemplate="radius %{x:.3f}: %{y:.1f}%<extra></extra>",
        ))
    cfg = result.config
    fig.update_layout(
        title=f"Certified accuracy, {result.model}<br>({result.images} images; n = {cfg.n}, alpha = {cfg.alpha}; "
              f"DensePure K = {cfg.seeds}, b = {cfg.steps})",
        xaxis_title="L2 radius (on [0, 1] pixels)",
        yaxis_title="certified accuracy (%)",
        yaxis_range=[0, 100],
        xaxis_range=[0, max_radius],
        legend={"orientation": "h", "y": -0.2},
        template="plotly_white",
    )
    return fig
