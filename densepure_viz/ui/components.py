"""Small Gradio component helpers shared by the tabs."""

from __future__ import annotations

import math
import os
import tempfile
import types
from pathlib import Path
from typing import Any

import gradio as gr
from gradio_client import handle_file
from gradio import processing_utils
from gradio.data_classes import ImageData
from gradio.profiling import traced_sync
from packaging.version import Version

from densepure_viz.errors import InputError
from densepure_viz.glossary import glossary_markdown
from densepure_viz.ui.validation import LIMITS, number

GRADIO_REWRITES_IN_PLACE_UP_TO = "6.31.0"  # the pinned Gradio: still truncates cached images while serving them
GRADIO_SAVE_PIL_TO_CACHE = processing_utils.save_pil_to_cache  # Gradio's own, before atomic_image_cache
PIXELATED = "pixelated"  # CSS class: nearest-neighbour display of small images
BIG = "big-image"  # CSS class: small images fill their box
CSS = f"""
.{PIXELATED} img, .{PIXELATED} canvas {{ image-rendering: pixelated; image-rendering: crisp-edges; }}
.verdict {{ font-size: 1.05rem; }}
.{BIG} img {{ width: 100% !important; height: 100% !important; object-fit: contain; }}
"""


def _file_preprocess(self: gr.Image, payload: ImageData | None) -> str | None:
    """gr.Image preprocessing that hands the handler the uploaded file's path, untouched.

    gr.Image opens the upload with Pillow before the handler runs, and a file it cannot read becomes
    a generic error; this leaves decoding to densepure_viz.images.to_tensor, which is bounded and
    reports bad files in one line.
    """
    if payload is None:
        return None
    if payload.path is None:  # a data: URL (clipboard paste): let Gradio write it to its cache
        return gr.Image.preprocess(self, payload)
    return str(payload.path)


def _numeric_preprocess(self: gr.Slider | gr.Number, payload: Any) -> float | int | None:
    """Slider/Number preprocessing that refuses what is not a finite number with one clear line.

    An API caller can send anything where the page sends numbers. Gradio's own check answers a string
    or a list with a generic "could not preprocess" error and lets NaN through; `validation.number`
    names the input and says what was wrong, then Gradio's range check and rounding take over.
    """
    name = self.label or "a number input"
    if payload is None and isinstance(self, gr.Number):
        return None  # the handler's validator says the value is missing
    try:
        value = number(payload, name, -math.inf, math.inf)
    except InputError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    try:
        return type(self).preprocess(self, value)
    except gr.Error as exc:  # Gradio's range check: say which input
        raise gr.Error(f"{name}: {exc.message}", print_exception=False) from None


def guard_numbers(blocks: gr.Blocks) -> None:
    """Give every Slider and Number of `blocks` the checked preprocessing above (set on the instances)."""
    for block in blocks.blocks.values():
        if isinstance(block, (gr.Slider, gr.Number)):
            block.preprocess = types.MethodType(_numeric_preprocess, block)


def _atomic_save_pil_to_cache(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    """gradio.processing_utils.save_pil_to_cache, but the file appears whole: written aside, then renamed.

    Gradio names a cached image by the hash of its bytes and rewrites the file in place each time it is
    produced. When several visitors get the same picture at once (a class purifying the same sample),
    one request truncates the file while another's browser downloads it, which then receives nothing.
    With a rename a reader sees the old file or the new one, both complete.
    """
    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    path = (folder / f"{name}.{format}").resolve()
    fd, partial = tempfile.mkstemp(dir=folder, prefix=".partial-", suffix=f".{format}")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(partial, path)
    return str(path)


def atomic_image_cache() -> None:
    """Make Gradio write output images atomically (see _atomic_save_pil_to_cache); idempotent.

    Gradio's image, gallery and annotated-image components all save through this module function. The
    replacement keeps Gradio's profiling wrapper, and is installed only on the Gradio versions known to
    rewrite in place (up to GRADIO_REWRITES_IN_PLACE_UP_TO, the pinned one); a test fails as soon as the
    installed Gradio writes atomically itself, so this patch is then removed.
    """
    if Version(gr.__version__) > Version(GRADIO_REWRITES_IN_PLACE_UP_TO):
        return
    if processing_utils.save_pil_to_cache is GRADIO_SAVE_PIL_TO_CACHE:
        processing_utils.save_pil_to_cache = traced_sync("postprocess_save_pil_to_cache")(_atomic_save_pil_to_cache)


def image_input(label: str, value: str | None = None, height: int = 256, elem_id: str | None = None) -> gr.Image:
    """A file image input (the handler gets a path, see _file_preprocess), shown large and crisp.

    The overrides are set on the instance, not by subclassing: a gr.Image subclass would make Gradio
    write a .pyi stub next to this module at import time. With a `value` (a shipped sample), the API
    page's example uses it instead of Gradio's remote bus.png (offline, and not a digit).
    """
    image = gr.Image(
        value=value, type="filepath", image_mode=None, format="png", label=label, height=height,
        sources=["upload", "clipboard"], elem_classes=[PIXELATED, BIG], elem_id=elem_id,
    )
    image.preprocess = types.MethodType(_file_preprocess, image)
    if value is not None:
        example = os.path.relpath(value) if Path(value).is_relative_to(Path.cwd()) else str(value)
        image.example_payload = lambda: {**handle_file(example), "url": example}  # Gradio's API page reads the url
        image.example_value = lambda: example
    return image


def image_output(label: str, height: int | None = 200, elem_id: str | None = None, big: bool = True,
                 show_label: bool = True) -> gr.Image:
    """A PNG (lossless) image output shown with nearest-neighbour scaling (filling its box when `big`)."""
    return gr.Image(label=label, type="pil", format="png", height=height, interactive=False, show_label=show_label,
                    elem_classes=[PIXELATED, BIG] if big else [PIXELATED], elem_id=elem_id, buttons=["download", "fullscreen"])


def sigma_slider(value: float, label: str = "sigma (smoothing std on [0, 1] pixels)") -> gr.Slider:
    return gr.Slider(0.05, LIMITS.sigma_max, value=value, step=0.05, label=label)


def seed_input(value: int = 0) -> gr.Number:
    return gr.Number(value=value, precision=0, minimum=0, maximum=LIMITS.seed, label="base seed",
                     info="same seed, same noise, same answer (as the CLI's --seed)")


def glossary_accordion() -> gr.Accordion:
    """The glossary (densepure_viz.glossary), closed until opened."""
    with gr.Accordion("Glossary: p_lower, radius, abstain, t*, K, b, ...", open=False) as accordion:
        gr.Markdown(glossary_markdown(), elem_classes=["glossary"])
    return accordion
