"""Image grids for display: DensePure's K reverse trajectories as rows of small pictures (PIL, no UI).

A trajectory grid has one row per reverse seed and one column per evaluated timestep; each cell shows
the sample x_t (scaled back to image range) above the predicted clean image x0_hat, framed in the
colour of the classifier's label for x0_hat. The last column holds the purified images, whose labels
are the votes. A legend band on top maps each frame colour to its label (also on the one-step view). Images are enlarged with
nearest-neighbour so 16x16 digits stay crisp; text grows with the picture, which a page shrinks to fit
its column, and the band's right end stays blank (where a page puts its image buttons).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from densepure_viz.models.images import to_pil
from densepure_viz.viz.plots.colors import class_color

BORDER = 3  # label-coloured frame around each cell, pixels
GAP = 4  # space between cells, pixels
HEADER = 18  # height of the column titles at the smallest text size, pixels
MARGIN = 56  # width of the row titles at the smallest text size, pixels
MIN_TEXT = 14  # smallest text size, pixels
TEXT_SHARE = 48  # text size = picture width / TEXT_SHARE: ~15 px when a 960 px grid is shown 700 px wide
LEGEND_SHARE = 0.7  # the legend stays in this share of the width; the rest of its band is blank
LEGEND_HEADINGS = ("frame colour = label:", "label:")  # the legend's heading: the first that fits its share
BACKGROUND = (255, 255, 255)
TEXT = (40, 40, 40)


def _font(size: int = 12) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def text_size(width: int) -> int:
    """Text size (pixels) for a picture `width` wide that a page shrinks to its column: readable when shrunk."""
    return max(MIN_TEXT, round(width / TEXT_SHARE))


def _text_width(text: str, font: ImageFont.ImageFont) -> int:
    return int(font.getbbox(text)[2])


def legend_band(labels: Sequence[int], names: Sequence[str] | None, width: int, size: int) -> Image.Image:
    """`width` x (two lines of text) band: "frame colour = label:" then a swatch and the name of each label,
    wrapped within LEGEND_SHARE of the width (the right end stays blank)."""
    font, line = _font(size), int(1.5 * size)
    items = [(names[c] if names is not None else str(c), _rgb(class_color(c))) for c in sorted(set(labels))]
    x, y, limit = 4, 4, int(LEGEND_SHARE * width)
    placed = []  # (x, y, name, colour)
    head = next((h for h in LEGEND_HEADINGS if 4 + _text_width(h, font) <= limit), "")
    x += _text_width(head, font) + size if head else 0
    for name, color in items:
        w = size + size // 3 + _text_width(name, font) + size
        if x + w > limit and x > 4:  # the next line, unless this one is empty
            x, y = 4, y + line
        placed.append((x, y, name, color))
        x += w
    band = Image.new("RGB", (width, max(2 * line, y + line) + 4), BACKGROUND)
    draw = ImageDraw.Draw(band)
    draw.text((4, 4), head, fill=TEXT, font=font)
    for x, y, name, color in placed:
        draw.rectangle((x, y + size // 6, x + size, y + size + size // 6), fill=color)
        draw.text((x + size + size // 3, y), name, fill=TEXT, font=font)
    return band


def _rgb(hex_color: str) -> tuple[int, int, int]:
    return tuple(int(hex_color[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def column_indices(total: int, max_columns: int) -> list[int]:
    """At most max_columns indices of 0..total-1, evenly spread, always keeping the first and last."""
    if total <= max_columns:
        return list(range(total))
    return sorted(set(np.round(np.linspace(0, total - 1, max_columns)).astype(int).tolist()))


def choose_scale(image_size: int, columns: int, max_width: int = 960, lo: int = 1, hi: int = 6) -> int:
    """Nearest-neighbour enlargement so `columns` cells fit in max_width pixels."""
    cell = (max_width - MARGIN) // max(columns, 1) - GAP - 2 * BORDER
    return int(min(hi, max(lo, cell // image_size)))


def _cell(top: torch.Tensor, bottom: torch.Tensor | None, label: int | None, scale: int) -> Image.Image:
    """One framed cell: top image, optionally the bottom image under it."""
    pics = [to_pil(top, scale).convert("RGB")] + ([to_pil(bottom, scale).convert("RGB")] if bottom is not None else [])
    w, h = pics[0].width, sum(p.height for p in pics) + (len(pics) - 1) * 2
    frame = _rgb(class_color(label)) if label is not None else (200, 200, 200)
    cell = Image.new("RGB", (w + 2 * BORDER, h + 2 * BORDER), frame)
    y = BORDER
    for p in pics:
        cell.paste(p, (BORDER, y))
        y += p.height + 2
    return cell


def trajectory_grid(
    x_t: Sequence[torch.Tensor],
    x0: Sequence[torch.Tensor],
    timesteps: Sequence[int],
    step_labels: Sequence[Sequence[int]] | None = None,
    final: torch.Tensor | None = None,
    final_labels: Sequence[int] | None = None,
    label_names: Sequence[str] | None = None,
    scale: int = 3,
) -> Image.Image:
    """K rows (seeds) by the given steps: x_t above x0_hat per cell, then the purified images.

    x_t, x0: one (K, C, H, W) tensor in [0, 1] per column; timesteps: the t of each column;
    step_labels: per column, the K labels of x0_hat (frame colours); final/final_labels: the purified
    images (K, C, H, W) and their labels, drawn as a last column when given.
    """
    if len(x_t) != len(x0) or len(x_t) != len(timesteps) or not x_t:
        raise ValueError("x_t, x0 and timesteps must be non-empty and of equal length")
    k = x_t[0].shape[0]
    names = list(label_names) if label_names is not None else None
    cells = [
        [_cell(x_t[j][i], x0[j][i], None if step_labels is None else int(step_labels[j][i]), scale) for j in range(len(x_t))]
        for i in range(k)
    ]
    titles = [f"t={t}" for t in timesteps]
    if final is not None:
        for i in range(k):
            cells[i].append(_cell(final[i], None, None if final_labels is None else int(final_labels[i]), scale))
        titles.append("result")
    cw = max(c.width for row in cells for c in row)
    ch = max(c.height for row in cells for c in row)
    size = text_size(MARGIN + len(titles) * (cw + GAP))
    font = _font(size)
    margin = max(MARGIN, _text_width("k=00 ", font), _text_width(f"-> {max(names or ['00'], key=len)} ", font))
    header = max(HEADER, int(1.5 * size))
    width = margin + len(titles) * (cw + GAP)
    shown = [int(c) for col in ([] if step_labels is None else step_labels) for c in col]
    shown += [] if final_labels is None else [int(c) for c in final_labels]
    band = legend_band(shown, names, width, size) if shown else Image.new("RGB", (width, 0), BACKGROUND)
    top = band.height + header
    grid = Image.new("RGB", (width, top + k * (ch + GAP)), BACKGROUND)
    grid.paste(band, (0, 0))
    draw = ImageDraw.Draw(grid)
    for j, title in enumerate(titles):
        draw.text((margin + j * (cw + GAP) + 2, band.height + 2), title, fill=TEXT, font=font)
    for i, row in enumerate(cells):
        y = top + i * (ch + GAP)
        row_title = f"k={i}"
        if final_labels is not None:
            label = int(final_labels[i])
            row_title += f"\n-> {names[label] if names else label}"
        draw.multiline_text((2, y + 2), row_title, fill=TEXT, font=font)
        for j, c in enumerate(row):
            grid.paste(c, (margin + j * (cw + GAP), y))
    return grid


def image_row(
    images: torch.Tensor,
    labels: Sequence[int] | None = None,
    captions: Sequence[str] | None = None,
    scale: int = 4,
) -> Image.Image:
    """One row of framed images (M, C, H, W) in [0, 1], with optional captions under each."""
    cells = [_cell(img, None, None if labels is None else int(labels[i]), scale) for i, img in enumerate(images)]
    cw, ch = cells[0].width, cells[0].height
    text_h = HEADER if captions else 0
    row = Image.new("RGB", (len(cells) * (cw + GAP), ch + text_h), BACKGROUND)
    draw, font = ImageDraw.Draw(row), _font()
    for j, c in enumerate(cells):
        row.paste(c, (j * (cw + GAP), 0))
        if captions:
            draw.text((j * (cw + GAP) + 2, ch + 2), captions[j], fill=TEXT, font=font)
    return row


def step_view(x_t: torch.Tensor, x0: torch.Tensor, labels: Sequence[int] | None, t: int, scale: int = 4,
              label_names: Sequence[str] | None = None) -> Image.Image:
    """All K seeds at one timestep: x_t in the first row, x0_hat (framed by its label) in the second, under the
    trajectory grid's legend band (the labels shown; label_names names them, else their numbers)."""
    top = image_row(x_t, None, None, scale)
    bottom = image_row(x0, labels, None, scale)
    size = text_size(MARGIN + max(top.width, bottom.width))
    font = _font(size)
    margin = max(MARGIN, _text_width("x0_hat ", font) + 6)
    header = max(HEADER, int(1.5 * size))
    width = margin + max(top.width, bottom.width)
    shown = [] if labels is None else [int(c) for c in labels]
    band = legend_band(shown, label_names, width, size) if shown else Image.new("RGB", (width, 0), BACKGROUND)
    y = band.height
    out = Image.new("RGB", (width, y + header + top.height + GAP + bottom.height), BACKGROUND)
    out.paste(band, (0, 0))
    draw = ImageDraw.Draw(out)
    draw.text((margin, y + 2), f"t = {t}", fill=TEXT, font=font)
    draw.text((2, y + header + 4), "x_t", fill=TEXT, font=font)
    draw.text((2, y + header + top.height + GAP + 4), "x0_hat", fill=TEXT, font=font)
    out.paste(top, (margin, y + header))
    out.paste(bottom, (margin, y + header + top.height + GAP))
    return out
