"""Plotly figure of the vote study: per-draw accuracy against the vote size K, one panel per sigma.

DensePure (Xiao et al., ICLR 2023) votes K reverse trajectories; one-shot denoising (Carlini et al.
2023) classifies the posterior mean. Each reverse sampler is a line over K (K = 1 is one trajectory,
one posterior sample) with Wilson error bars; the methods without K (bare classifier, one-shot, the
ideal posterior's sample, vote and mean) are horizontal lines with their interval as a band. Takes
densepure_viz.experiments.study.StudyResult (or one read back from results.json); never saves or shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from densepure_viz.viz.plots.theme import TEMPLATE

if TYPE_CHECKING:
    from ..study import Accuracy, StudyResult

REFERENCE_STYLE: dict[str, tuple[str, str]] = {  # method -> (colour, dash)
    "bare": ("#7f7f7f", "dot"),
    "one-shot": ("#1f77b4", "dash"),
    "ideal sample": ("#2ca02c", "dot"),
    "ideal vote": ("#2ca02c", "dash"),
    "ideal mean": ("#9467bd", "dashdot"),
}
CHAIN_COLORS: tuple[str, ...] = ("#d62728", "#ff7f0e", "#8c564b", "#e377c2")


def _band(ref: Accuracy, x0: float, x1: float, color: str) -> go.Scatter:
    """The reference's interval as a translucent rectangle from x0 to x1."""
    return go.Scatter(
        x=[x0, x1, x1, x0, x0], y=[100 * v for v in (ref.low, ref.low, ref.high, ref.high, ref.low)],
        fill="toself", fillcolor=color, opacity=0.12, line={"width": 0}, mode="lines",
        hoverinfo="skip", showlegend=False,
    )


def study_figure(result: StudyResult) -> go.Figure:
    """Accuracy (%) vs K per sampler, references as horizontal lines, one subplot per sigma (shared y)."""
    sigmas, ks = result.sigmas, result.ks
    fig = make_subplots(rows=1, cols=len(sigmas), shared_yaxes=True,
                        subplot_titles=[f"sigma = {s:g}" for s in sigmas])
    chains = list(dict.fromkeys(a.method for a in result.accuracies if a.k is not None))
    for col, sigma in enumerate(sigmas, start=1):
        first = col == 1
        for i, chain in enumerate(chains):
            accs = [result.get(sigma, chain, k) for k in ks]
            fig.add_trace(go.Scatter(
                x=ks, y=[100 * a.accuracy for a in accs], mode="lines+markers", name=f"vote, {chain}",
                legendgroup=chain, showlegend=first, line={"color": CHAIN_COLORS[i % len(CHAIN_COLORS)]},
                error_y={"type": "data", "symmetric": False, "array": [100 * (a.high - a.accuracy) for a in accs],
                         "arrayminus": [100 * (a.accuracy - a.low) for a in accs]},
                customdata=[[a.correct, a.total] for a in accs],
                hovertemplate="K = %{x}: %{y:.1f}% (%{customdata[0]}/%{customdata[1]})<extra></extra>",
            ), row=1, col=col)
        for method, (color, dash) in REFERENCE_STYLE.items():
            ref = next((a for a in result.accuracies if (a.sigma, a.method, a.k) == (sigma, method, None)), None)
            if ref is None:
                continue
            fig.add_trace(_band(ref, ks[0], ks[-1], color), row=1, col=col)
            fig.add_trace(go.Scatter(
                x=[ks[0], ks[-1]], y=[100 * ref.accuracy] * 2, mode="lines", name=method, legendgroup=method,
                showlegend=first, line={"color": color, "dash": dash},
                hovertemplate=f"{method}: %{{y:.1f}}% ({ref.correct}/{ref.total})<extra></extra>",
            ), row=1, col=col)
        fig.update_xaxes(type="log", tickvals=ks, ticktext=[str(k) for k in ks], title_text="K (votes)",
                         row=1, col=col)
    fig.update_yaxes(title_text="per-draw accuracy (%)", row=1, col=1)
    fig.update_layout(
        title=f"Where the vote matters: {result.model}",
        legend={"orientation": "h", "y": -0.25},
        template=TEMPLATE,
        height=420,
    )
    return fig


def study_page(results: Sequence[StudyResult]) -> str:
    """One HTML page with a figure per result (the digits study, then the 2D controls), plotly.js embedded
    once so the page renders offline."""
    parts = [study_figure(r).to_html(full_html=False, include_plotlyjs=i == 0) for i, r in enumerate(results)]
    return "<html><head><meta charset='utf-8'></head><body>" + "".join(parts) + "</body></html>\n"
