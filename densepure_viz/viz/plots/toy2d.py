"""Plotly figures of the exact 2D world of DensePure (Xiao et al., ICLR 2023).

Each function takes result dataclasses of densepure_viz.toy2d and returns a go.Figure: the scene
(density contours, a region map, power-diagram outlines, x0 / x_a / x~, certified circles, reverse
trajectories), the vote histogram, the four region maps side by side, and a sigma slider over
precomputed robust regions. Nothing is computed here beyond layout; nothing is saved or shown.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from densepure_viz.viz.plots.colors import CLASS_COLORS, class_color, discrete_colorscale
from densepure_viz.toy2d import LABELERS, Labeler, PowerCell, RegionMaps, ReverseTrajectories, RobustRegion, SigmaSweep
from densepure_viz.viz.plots.theme import TEMPLATE

__all__ = [
    "CLASS_COLORS",
    "MAP_TITLES",
    "region_maps_figure",
    "scene_figure",
    "sigma_slider_figure",
    "vote_histogram_figure",
]

MAP_TITLES: dict[str, str] = {
    "bayes": "(a) base classifier on x~",
    "one_shot": "(b) one-shot denoising (Tweedie)",
    "mode": "(c) highest-density point (robust regions)",
    "vote": "(d) majority vote (exact)",
}
REGION_OPACITY = 0.35  # heatmaps are translucent so contours and markers stay readable


def _region_heatmap(
    xs: np.ndarray, ys: np.ndarray, labels: np.ndarray, num_classes: int, name: str
) -> go.Heatmap:
    return go.Heatmap(
        x=xs,
        y=ys,
        z=labels,
        zmin=-0.5,
        zmax=num_classes - 0.5,
        colorscale=discrete_colorscale(num_classes),
        opacity=REGION_OPACITY,
        showscale=False,
        name=name,
        hovertemplate="x=%{x:.2f}, y=%{y:.2f}<br>label %{z}<extra></extra>",
    )


def _density_contour(maps: RegionMaps) -> go.Contour:
    return go.Contour(
        x=maps.xs,
        y=maps.ys,
        z=maps.density,
        contours_coloring="lines",
        line={"color": "rgba(40, 40, 40, 0.6)", "width": 1},
        ncontours=12,
        showscale=False,
        name="data density",
        hoverinfo="skip",
    )


def _mask_outline(xs: np.ndarray, ys: np.ndarray, mask: np.ndarray, name: str) -> go.Contour:
    return go.Contour(
        x=xs,
        y=ys,
        z=mask.astype(float),
        contours={"start": 0.5, "end": 0.5, "size": 1.0, "coloring": "none"},
        line={"color": "black", "width": 3},
        showscale=False,
        name=name,
        hoverinfo="skip",
    )


def _marker(point: np.ndarray, name: str, symbol: str, color: str, edge: str = "white") -> go.Scatter:
    return go.Scatter(
        x=[point[0]],
        y=[point[1]],
        mode="markers",
        marker={"symbol": symbol, "size": 14, "color": color, "line": {"color": edge, "width": 1.5}},
        name=name,
    )


def _circle(center: np.ndarray, radius: float, dash: str, name: str) -> dict:
    return {
        "type": "circle",
        "xref": "x",
        "yref": "y",
        "x0": center[0] - radius,
        "x1": center[0] + radius,
        "y0": center[1] - radius,
        "y1": center[1] + radius,
        "line": {"color": "black", "width": 2, "dash": dash},
        "name": name,
    }


def _square_axes(fig: go.Figure, xs: np.ndarray, ys: np.ndarray) -> None:
    fig.update_xaxes(range=[xs[0], xs[-1]], constrain="domain")
    fig.update_yaxes(range=[ys[0], ys[-1]], scaleanchor="x", scaleratio=1, constrain="domain")


def scene_figure(
    maps: RegionMaps,
    labeler: Labeler = "mode",
    robust: RobustRegion | None = None,
    trajectories: ReverseTrajectories | None = None,
    cells: list[PowerCell] | None = None,
    max_lines: int = 100,
) -> go.Figure:
    """The main view: one region map under the data density, with whatever results are given.

    robust adds x0, x_a, the robust-region outline and the certified circles (solid at x0, dashed at
    x_a); trajectories adds x~, up to max_lines reverse paths and every endpoint coloured by its
    label; cells adds the power-diagram outlines (point-mass preset).
    """
    heatmap = _region_heatmap(maps.xs, maps.ys, maps.labels(labeler), maps.num_classes, MAP_TITLES[labeler])
    fig = go.Figure([heatmap, _density_contour(maps)])
    if cells:
        xy = np.concatenate([np.vstack([c.vertices, c.vertices[:1], [[np.nan, np.nan]]]) for c in cells])
        outline = {"color": "dimgray", "width": 1}
        fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="lines", line=outline, name="power diagram"))
    if trajectories is not None:
        paths = trajectories.path[:, :max_lines]  # (S + 1, L, 2)
        for k in range(paths.shape[1]):
            fig.add_trace(
                go.Scatter(
                    x=paths[:, k, 0],
                    y=paths[:, k, 1],
                    mode="lines",
                    line={"color": "rgba(60, 60, 60, 0.35)", "width": 1},
                    name="reverse trajectory",
                    legendgroup="trajectories",
                    showlegend=k == 0,
                    hoverinfo="skip",
                )
            )
        ends = trajectories.endpoints
        fig.add_trace(
            go.Scatter(
                x=ends[:, 0],
                y=ends[:, 1],
                mode="markers",
                marker={
                    "size": 6,
                    "color": [class_color(int(c)) for c in trajectories.labels],
                    "line": {"color": "black", "width": 0.5},
                },
                name="endpoints (votes)",
            )
        )
        fig.add_trace(_marker(trajectories.x_tilde, "x~ (smoothed input)", "diamond", "white", edge="black"))
    if robust is not None:
        fig.add_trace(_mask_outline(maps.xs, maps.ys, robust.mask, "robust region of x0"))
        fig.add_trace(_marker(robust.x0, "x0", "circle", class_color(robust.label)))
        fig.add_trace(_marker(robust.x_a, "x_a", "x", "black"))
        balls = (
            (robust.x0, robust.certificate, "solid", "certified ball at x0"),
            (robust.x_a, robust.certificate_x_a, "dash", "certified ball at x_a"),
        )
        for point, cert, dash, name in balls:
            if cert.radius > 0:
                fig.add_shape(_circle(point, cert.radius, dash, name))
                fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=name,  # its legend entry
                                         line={"color": "black", "width": 2, "dash": dash}))
    title = f"{MAP_TITLES[labeler]}, sigma = {maps.sigma:.2f}"
    if robust is not None:
        clipped = " (at least: the window clips it)" if robust.clipped else ""
        title += f"<br>area: robust region {robust.area:.2f}{clipped} vs certified ball {robust.ball_area:.2f}"
    fig.update_layout(title=title, template=TEMPLATE, legend={"orientation": "h", "y": -0.12})
    _square_axes(fig, maps.xs, maps.ys)
    return fig


def vote_histogram_figure(trajectories: ReverseTrajectories) -> go.Figure:
    """Vote shares of the K endpoints per label (bars) against the exact posterior label masses."""
    classes = np.arange(len(trajectories.exact_probabilities))
    k = trajectories.path.shape[1]
    fig = go.Figure(
        [
            go.Bar(
                x=classes,
                y=trajectories.votes / k,
                marker_color=[class_color(int(c)) for c in classes],
                name=f"votes of {k} trajectories",
            ),
            go.Scatter(
                x=classes,
                y=trajectories.exact_probabilities,
                mode="markers",
                marker={"symbol": "line-ew", "size": 30, "line": {"color": "black", "width": 3}},
                name="exact posterior mass",
            ),
        ]
    )
    fig.update_layout(
        title=(
            f"Majority vote at x~, sigma = {trajectories.sigma:.2f} "
            f"({trajectories.method}, {len(trajectories.timesteps)} steps)"
        ),
        xaxis={"title": "label", "tickmode": "array", "tickvals": classes},
        yaxis={"title": "share", "range": [0, 1]},
        template=TEMPLATE,
    )
    return fig


def region_maps_figure(maps: RegionMaps) -> go.Figure:
    """The four region maps (a)-(d) for the same sigma, 2 x 2, with the data density on each."""
    fig = make_subplots(rows=2, cols=2, subplot_titles=[MAP_TITLES[n] for n in LABELERS])
    for i, name in enumerate(LABELERS):
        row, col = divmod(i, 2)
        heatmap = _region_heatmap(maps.xs, maps.ys, maps.labels(name), maps.num_classes, MAP_TITLES[name])
        fig.add_trace(heatmap, row=row + 1, col=col + 1)
        fig.add_trace(_density_contour(maps), row=row + 1, col=col + 1)
        fig.update_yaxes(scaleanchor="x" if i == 0 else f"x{i + 1}", row=row + 1, col=col + 1)
    fig.update_layout(
        title=f"Four classifiers of x~, sigma = {maps.sigma:.2f}", template=TEMPLATE, showlegend=False
    )
    fig.update_xaxes(range=[maps.xs[0], maps.xs[-1]], constrain="domain")
    fig.update_yaxes(range=[maps.ys[0], maps.ys[-1]], constrain="domain")
    return fig


def sigma_slider_figure(sweep: SigmaSweep) -> go.Figure:
    """Map (c) and x0's robust region per sigma, as Plotly frames behind a slider."""
    names = [f"sigma = {s:.2f}" for s in sweep.sigmas]
    titles = [f"{name}: robust region of x0, area {a:.2f}" for name, a in zip(names, sweep.robust_areas)]
    jump = {"mode": "immediate", "frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}}

    def frame_data(i: int) -> list[go.BaseTraceType]:
        return [
            _region_heatmap(sweep.xs, sweep.ys, sweep.mode_labels[i], sweep.num_classes, MAP_TITLES["mode"]),
            _mask_outline(sweep.xs, sweep.ys, sweep.robust_masks[i], "robust region of x0"),
        ]

    x0_label = int(sweep.mode_labels[0][sweep.robust_masks[0]][0])
    fig = go.Figure(
        data=frame_data(0) + [_marker(sweep.x0, "x0", "circle", class_color(x0_label))],
        frames=[
            go.Frame(data=frame_data(i), traces=[0, 1], name=name, layout={"title": {"text": title}})
            for i, (name, title) in enumerate(zip(names, titles))
        ],
    )
    fig.update_layout(
        title=titles[0],
        template=TEMPLATE,
        sliders=[
            {
                "active": 0,
                "currentvalue": {"prefix": "sigma = "},
                "steps": [
                    {"label": f"{s:.2f}", "method": "animate", "args": [[name], jump]}
                    for s, name in zip(sweep.sigmas, names)
                ],
            }
        ],
    )
    _square_axes(fig, sweep.xs, sweep.ys)
    return fig
