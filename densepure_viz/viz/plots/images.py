"""Plotly figures of DensePure on images (Xiao et al., ICLR 2023): votes, running certification, projections.

Each function takes plain results (counts, result dataclasses of densepure_viz.experiments.projections) and
returns a go.Figure; nothing is computed beyond layout, nothing is saved or shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from densepure_viz.experiments.projections import ProjectedScene
from densepure_viz.smoothing.sequential import LowerBoundCurve
from densepure_viz.viz.plots.colors import class_color
from densepure_viz.viz.plots.theme import TEMPLATE

__all__ = [
    "certificates_figure",
    "confidence_sequence_figure",
    "label_mass_figure",
    "lower_bound_figure",
    "projection_figure",
    "vote_histogram_figure",
]


# a horizontal legend under the plot, clear of the x-axis title (figures that use it keep a bottom margin of 80)
_LEGEND_BELOW = {"orientation": "h", "yanchor": "top", "y": -0.3}


def _labels_axis(labels: Sequence[str]) -> dict:
    return {"title": "class", "tickmode": "array", "tickvals": list(range(len(labels))), "ticktext": list(labels)}


def vote_histogram_figure(
    votes: Mapping[int, int] | Sequence[int],
    labels: Sequence[str],
    title: str = "Votes of the K purified images",
    winner: int | None = None,
    reference: int | None = None,
) -> go.Figure:
    """Bars of votes per class (a {class: count} mapping or a full count list).

    winner is outlined (DensePure's label); reference (e.g. the clean label) is marked with a star.
    """
    counts = [int(votes.get(c, 0)) for c in range(len(labels))] if isinstance(votes, Mapping) else [int(v) for v in votes]
    total = max(sum(counts), 1)
    fig = go.Figure(
        go.Bar(
            x=list(range(len(labels))),
            y=counts,
            marker={
                "color": [class_color(c) for c in range(len(labels))],
                "line": {"color": ["black" if c == winner else "rgba(0,0,0,0)" for c in range(len(labels))], "width": 3},
            },
            text=[str(n) if n else "" for n in counts],
            textposition="outside",
            hovertemplate="class %{x}: %{y} votes<extra></extra>",
            name="votes",
        )
    )
    if reference is not None and 0 <= reference < len(labels):
        fig.add_trace(
            go.Scatter(
                x=[reference], y=[0], mode="markers", marker={"symbol": "star", "size": 16, "color": "gold", "line": {"color": "black", "width": 1}},
                name="reference label", hovertemplate="reference label %{x}<extra></extra>",
            )
        )
    fig.update_layout(
        title=title,
        xaxis=_labels_axis(labels),
        yaxis={"title": "votes", "range": [0, total * 1.15]},
        template=TEMPLATE,
        height=340,
        margin={"l": 50, "r": 20, "t": 50, "b": 80},
        showlegend=reference is not None,
        legend=_LEGEND_BELOW,
    )
    return fig


def confidence_sequence_figure(
    draws: Sequence[int],
    lower: Sequence[float],
    upper: Sequence[float],
    fixed_n: Sequence[float],
    threshold: float | None = None,
    title: str = "Bounds on p_A against draws",
) -> go.Figure:
    """The anytime-valid lower and upper bounds on p_A at each look, the fixed-n Clopper-Pearson bound on the
    same draws (valid only had n been fixed in advance), 1/2 (certify at all) and Phi(R / sigma) (certify at R)."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=list(draws), y=list(upper), mode="lines+markers", name="upper bound (anytime-valid)",
                             line={"color": "#888", "dash": "dot"}))
    fig.add_trace(go.Scatter(x=list(draws), y=list(lower), mode="lines+markers", name="lower bound (anytime-valid)",
                             line={"color": "#1f77b4", "width": 3}))
    fig.add_trace(go.Scatter(x=list(draws), y=list(fixed_n), mode="markers", name="fixed-n Clopper-Pearson (not valid when peeking)",
                             marker={"color": "#d62728", "symbol": "x", "size": 9}))
    fig.add_hline(y=0.5, line={"color": "black", "width": 1}, annotation_text="1/2: certify at all")
    if threshold is not None:
        fig.add_hline(y=threshold, line={"color": "#2ca02c", "dash": "dash"}, annotation_text="Phi(R / sigma): certify at R")
    fig.update_layout(title=title, xaxis={"title": "estimation draws"}, yaxis={"title": "p_A", "range": [0, 1.02]},
                      template=TEMPLATE, height=340, margin={"l": 50, "r": 20, "t": 50, "b": 40},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def lower_bound_figure(curve: LowerBoundCurve, count: int, anytime_lower: float | None = None,
                       radius_ticks: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)) -> go.Figure:
    """Clopper-Pearson p_lower against the count nA for the run's n and alpha, the run's count marked, the 1/2
    line, and a right-hand axis reading p_lower as the radius sigma * Phi^-1(p_lower).

    anytime_lower (optional): the anytime-valid bound the run reported for the same count, drawn below the curve.
    """
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=curve.counts, y=curve.p_lower, mode="lines", name="p_lower (Clopper-Pearson, fixed n)",
                             line={"color": "#1f77b4", "width": 3},
                             customdata=curve.radius, hovertemplate="nA = %{x}: p_lower %{y:.4f}, radius %{customdata:.3f}"
                                                                    "<extra></extra>"))
    fig.add_trace(go.Scatter(x=curve.counts, y=curve.counts / max(curve.n, 1), mode="lines", name="nA / n (the raw share)",
                             line={"color": "#aaa", "dash": "dot"}, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[count], y=[curve.p_lower[count]], mode="markers", name=f"this run: nA = {count}",
                             marker={"color": "#d62728", "size": 13, "symbol": "circle", "line": {"color": "black", "width": 1}},
                             hovertemplate="this run: nA = %{x}, p_lower %{y:.4f}<extra></extra>"))
    if anytime_lower is not None:
        fig.add_trace(go.Scatter(x=[count], y=[anytime_lower], mode="markers", name="this run's anytime-valid p_lower",
                                 marker={"color": "#2ca02c", "size": 12, "symbol": "diamond", "line": {"color": "black", "width": 1}},
                                 hovertemplate="anytime-valid: %{y:.4f}<extra></extra>"))
    fig.add_hline(y=0.5, line={"color": "black", "width": 1}, annotation_text="1/2: below, abstain",
                  annotation_position="top left")
    ticks = [0.0]  # radii whose p_lower levels are far enough apart to read (they crowd towards 1)
    for r in radius_ticks:
        if curve.level(r) - curve.level(ticks[-1]) >= 0.06 and curve.level(r) <= 0.995:
            ticks.append(r)
    fig.update_layout(
        title=f"p_lower against the count nA (n = {curve.n}, alpha = {curve.alpha:g}, sigma = {curve.sigma:g})",
        xaxis={"title": "nA: draws voting for the top class", "range": [-0.5, curve.n + 0.5]},
        yaxis={"title": "p_lower", "range": [0, 1.02]},
        yaxis2={"title": "certified radius", "overlaying": "y", "side": "right", "range": [0, 1.02], "tickmode": "array",
                "tickvals": [curve.level(r) for r in ticks], "ticktext": [f"{r:g}" for r in ticks],
                "showgrid": False},
        template=TEMPLATE, height=340, margin={"l": 50, "r": 60, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.25},
    )
    fig.add_trace(go.Scatter(x=[0, curve.n], y=[0.5, 0.5], yaxis="y2", mode="lines", opacity=0, showlegend=False,
                             hoverinfo="skip"))  # the radius axis is drawn only with a trace on it
    return fig


def label_mass_figure(mass: Sequence[float], labels: Sequence[str], vote_shares: Sequence[float] | None = None, title: str = "") -> go.Figure:
    """Exact label masses of a posterior (bars), optionally against the observed vote shares (markers)."""
    classes = list(range(len(labels)))
    fig = go.Figure(
        go.Bar(x=classes, y=list(mass), marker_color=[class_color(c) for c in classes], name="posterior label mass")
    )
    if vote_shares is not None:
        fig.add_trace(
            go.Scatter(
                x=classes, y=list(vote_shares), mode="markers",
                marker={"symbol": "line-ew", "size": 26, "line": {"color": "black", "width": 3}}, name="DensePure vote share",
            )
        )
    fig.update_layout(
        title=title or "Label mass of the point-mass posterior",
        xaxis=_labels_axis(labels),
        yaxis={"title": "share", "range": [0, 1.05]},
        template=TEMPLATE,
        height=340,
        margin={"l": 50, "r": 20, "t": 50, "b": 80},
        legend=_LEGEND_BELOW,
    )
    return fig


def _scatter(coords, dims: int, **kwargs) -> go.BaseTraceType:
    pts = coords.reshape(-1, coords.shape[-1])
    if dims == 3:
        return go.Scatter3d(x=pts[:, 0].tolist(), y=pts[:, 1].tolist(), z=pts[:, 2].tolist(), **kwargs)
    return go.Scatter(x=pts[:, 0].tolist(), y=pts[:, 1].tolist(), **kwargs)


def projection_figure(scene: ProjectedScene, labels: Sequence[str], dims: int = 2) -> go.Figure:
    """Training images (faint, by class), x0, x_a, the noised inputs, the reversed samples (by label) and
    the highest-density training image, on the first `dims` (2 or 3) PCA axes."""
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    if scene.train.shape[1] < dims:
        raise ValueError(f"the scene has {scene.train.shape[1]} axes, fewer than dims={dims}")
    small = 3 if dims == 3 else 5
    fig = go.Figure()
    first = True
    for c in range(len(labels)):
        mask = scene.train_labels == c
        if mask.any():
            fig.add_trace(
                _scatter(
                    scene.train[mask][:, :dims], dims, mode="markers", name="training images (colour = class)",
                    legendgroup="train", showlegend=first, text=[f"training image, class {labels[c]}"] * int(mask.sum()),
                    marker={"size": small, "color": class_color(c), "opacity": 0.25}, hoverinfo="text",
                )
            )
            first = False
    fig.add_trace(
        _scatter(
            scene.samples[:, :dims], dims, mode="markers", name="reversed samples (by label)",
            marker={"size": small + 3, "color": [class_color(int(c)) for c in scene.sample_labels], "symbol": "circle",
                    "line": {"color": "black", "width": 1}},
            text=[f"label {labels[int(c)]}" for c in scene.sample_labels], hoverinfo="text",
        )
    )
    fig.add_trace(
        _scatter(scene.noisy[:, :dims], dims, mode="markers", name="x + delta (noised input)",
                 marker={"size": small + 2, "color": "gray", "symbol": "diamond"}, hoverinfo="name")
    )
    marks = [(scene.clean, "x0 (clean)", "black", "circle-open" if dims == 3 else "star")]
    if scene.adversarial is not None:
        marks.append((scene.adversarial, "x_a (adversarial)", "red", "x"))
    marks.append((scene.highest_density, f"highest-density training image ({labels[scene.highest_density_label]})",
                  class_color(scene.highest_density_label), "square"))
    for point, name, color, symbol in marks:
        fig.add_trace(
            _scatter(point[None, :dims], dims, mode="markers", name=name, hoverinfo="name",
                     marker={"size": 16 if dims == 2 else 8, "color": color, "symbol": symbol, "line": {"color": "black", "width": 2}})
        )
    ev = [f"PC{i + 1} ({100 * float(scene.explained[i]):.0f}%)" for i in range(dims)]
    layout = {"template": TEMPLATE, "height": 600, "legend": {"orientation": "h", "y": -0.15},
              "margin": {"l": 40, "r": 20, "t": 40, "b": 40}, "title": "PCA of the training images"}
    if dims == 3:
        layout["scene"] = {"xaxis": {"title": ev[0]}, "yaxis": {"title": ev[1]}, "zaxis": {"title": ev[2]}}
    else:
        layout["xaxis"] = {"title": ev[0]}
        layout["yaxis"] = {"title": ev[1], "scaleanchor": "x", "scaleratio": 1}
    fig.update_layout(**layout)
    return fig


def certificates_figure(rows: Sequence[tuple[str, float, float]]) -> go.Figure:
    """Certified radius and p_lower of several smoothed classifiers side by side: rows of (name, p_lower, radius)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("p_lower", "certified L2 radius"))
    names = [r[0] for r in rows]
    fig.add_trace(go.Bar(x=names, y=[r[1] for r in rows], marker_color="#1f77b4", showlegend=False), row=1, col=1)
    fig.add_trace(go.Bar(x=names, y=[r[2] for r in rows], marker_color="#2ca02c", showlegend=False), row=1, col=2)
    fig.add_hline(y=0.5, line_dash="dot", row=1, col=1)
    fig.update_yaxes(range=[0, 1], row=1, col=1)
    fig.update_layout(template=TEMPLATE, height=300, margin={"l": 40, "r": 20, "t": 40, "b": 40})
    return fig
