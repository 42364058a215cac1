"""Class colour palette shared by every figure of densepure-viz (2D world and images alike)."""

from __future__ import annotations

CLASS_COLORS: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # one colour per class label 0..9 (Plotly's D3 / matplotlib's tab10)


def class_color(label: int) -> str:
    """Colour of one class label (the palette repeats after ten)."""
    return CLASS_COLORS[label % len(CLASS_COLORS)]


def discrete_colorscale(num_classes: int) -> list[tuple[float, str]]:
    """Piecewise-constant Plotly colorscale for integer labels 0..C-1 (use zmin=-0.5, zmax=C-0.5)."""
    scale = []
    for c in range(num_classes):
        scale += [(c / num_classes, class_color(c)), ((c + 1) / num_classes, class_color(c))]
    return scale
