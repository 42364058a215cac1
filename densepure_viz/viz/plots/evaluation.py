"""Plotly figures of the evaluation: certified accuracy against L2 radius (Cohen et al. 2019, Fig. 7 style),
and, for `evaluate --sequential`, the draws sequential CERTIFY used per image against fixed-n's.

One line per (method, sigma): colour names the method (bare classifier, Cohen et al. 2019; one-shot
denoising, Carlini et al. 2023; DensePure, Xiao et al. 2023), dash names sigma. Takes the result
dataclass of densepure_viz.experiments.evaluate (or one read back from results.json); never saves or shows.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import plotly.graph_objects as go

from densepure_viz.viz.plots.theme import TEMPLATE

if TYPE_CHECKING:
    from ..evaluate import EvaluationResult

METHOD_COLORS: dict[str, str] = {"bare": "#7f7f7f", "one-shot": "#1f77b4", "densepure": "#d62728"}
METHOD_LABELS: dict[str, str] = {"bare": "bare classifier", "one-shot": "one-shot denoising", "densepure": "DensePure"}
SIGMA_DASHES: tuple[str, ...] = ("solid", "dash", "dot", "dashdot", "longdash")
RADIUS_COLORS: tuple[str, ...] = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")  # per target R


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
        template=TEMPLATE,
    )
    return fig


def sequential_draws_figure(result: EvaluationResult, method: str = "densepure") -> go.Figure:
    """Draws sequential CERTIFY used per image, sorted, one line per (sigma, target radius), beside the n0 + n
    draws fixed-n CERTIFY spends on every image (dotted line): where the sequence stops early, and how often."""
    cfg = result.config
    curves = [c for c in result.sequential if c.method == method]
    sigmas = sorted({c.sigma for c in curves})
    fig = go.Figure()
    for curve in curves:
        dash = SIGMA_DASHES[sigmas.index(curve.sigma) % len(SIGMA_DASHES)]
        for j, radius in enumerate(curve.radii):
            draws = sorted(curve.draws[j])
            fig.add_trace(go.Scatter(
                x=list(range(1, len(draws) + 1)),
                y=draws,
                mode="lines",
                line={"shape": "hv", "dash": dash, "color": RADIUS_COLORS[j % len(RADIUS_COLORS)]},
                name=f"R = {radius:g}, sigma = {curve.sigma:g}: mean {sum(draws) / max(len(draws), 1):.0f}",
                hovertemplate="image rank %{x}: %{y} draws<extra></extra>",
            ))
    images = max((c.images for c in curves), default=0)
    fig.add_trace(go.Scatter(  # a trace, not add_hline: hline annotations land off a log axis
        x=[1, max(images, 1)], y=[cfg.n0 + cfg.n] * 2, mode="lines", line={"color": "black", "dash": "dot"},
        name=f"fixed-n CERTIFY: n0 + n = {cfg.n0 + cfg.n} draws on every image",
    ))
    fig.update_layout(
        title=f"Draws sequential CERTIFY used to decide at R, {METHOD_LABELS.get(method, method)} on {result.model} "
              f"({images} images, sorted; budget {cfg.n}, alpha = {cfg.alpha})",
        xaxis_title="images, sorted by draws used",
        yaxis_title="draws used (log scale)",
        yaxis_type="log",
        yaxis_range=[math.log10(5), math.log10(1.5 * (cfg.n0 + cfg.n))],  # 5 draws to above fixed-n's line
        legend={"orientation": "h", "y": -0.2},
        template=TEMPLATE,
    )
    return fig
