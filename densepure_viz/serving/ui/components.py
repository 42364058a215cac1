"""Small Gradio component helpers shared by the tabs."""

from __future__ import annotations

import io
import math
import os
import tempfile
import types
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr
from gradio_client import handle_file
from gradio import processing_utils
from gradio.data_classes import ImageData
from PIL import Image as PILImage

from densepure_viz.errors import InputError
from densepure_viz.serving.api import REQUESTS
from densepure_viz.teaching.glossary import glossary_markdown
from densepure_viz.serving.ui.validation import LIMITS, limits_for, number

PIXELATED = "pixelated"  # CSS class: nearest-neighbour display of small images
BIG = "big-image"  # CSS class: small images fill their box
LEGEND = "has-legend"  # CSS class: the picture draws a colour legend at its top-left (grids.legend_band)
PNG_LEVEL = 1  # zlib level of output PNGs (encode_image)
CSS = f"""
.{PIXELATED} img, .{PIXELATED} canvas {{ image-rendering: pixelated; image-rendering: crisp-edges; }}
.verdict {{ font-size: 1.05rem; }}
.{BIG} img {{ width: 100% !important; height: 100% !important; object-fit: contain; }}
"""
# The page layouts, served as a <style> in the page's head: Gradio rewrites launch(css=...) by prefixing every
# selector with its container, which breaks selector lists inside :is()/:has() and rules keyed on <body>.
LAYOUT_CSS = """
/* An image's label wraps before its buttons (download, full screen) rather than sliding under them. */
body .gradio-container .block:has(.icon-button-wrapper) > [data-testid=block-label] {
  max-width: calc(100% - 5rem); white-space: normal; height: auto;
}
/* An image shown without a label keeps its top edge (a grid's column titles) clear of those buttons. */
body .gradio-container .block:has(> [data-testid=block-label].hide) .image-container:has(> .icon-button-wrapper) {
  padding-top: 2.25rem;
}
/* A picture with a colour legend at its top-left (a trajectory grid, the scrub view): its label goes above the
   picture, in the page's flow, instead of floating over the legend ("...he colour = label" was all one saw). */
body .gradio-container .block.has-legend > [data-testid=block-label]:not(.hide) {
  position: static; display: inline-flex; margin-bottom: var(--spacing-sm);
}
/* High-density's row of pictures has each caption drawn under its image: its label goes above, not over the first. */
body .gradio-container #density-pictures > [data-testid=block-label] { position: static; display: inline-flex; }
/* The samples gallery: its columns share the width it has (Gradio's are at least 100 px each, so 5 columns ran past
   a 480 px column and past presentation mode's pane, which cut the last one off). */
body .gradio-container #purify-samples .grid-container {
  grid-template-columns: repeat(var(--grid-cols), minmax(0, 1fr)); grid-template-rows: none; grid-auto-rows: auto;
}
body .gradio-container #purify-samples .gallery-item { aspect-ratio: 1 / 1; height: auto; }

/* A compact header on a wide screen (the projector's 1280x720 included): the title, then the model, the device and
   the presentation checkbox on one line beside it (stacked, they left ~300 px of blank page under the title and
   pushed Run below the bottom of a 720 px screen). Narrower, they would be squeezed: they stay stacked. */
@media (min-width: 1000px) {
  body:not(.dp-present) .row:has(> #title) { align-items: center; }
  body:not(.dp-present) #title h1 { font-size: 1.75rem; margin: 0 0 0.25rem; }
  body:not(.dp-present) .row:has(> #title) > .column {
    flex-direction: row; flex-wrap: nowrap; align-items: center; min-width: min(46rem, 60%) !important;
  }
  body:not(.dp-present) .row:has(> #title) > .column > .form:has(#model) { flex: 3 1 0; }
  body:not(.dp-present) .row:has(> #title) > .column > #model-status { flex: 0 1 auto; width: auto; }
  body:not(.dp-present) .row:has(> #title) > .column > .form:has(#present-toggle) { flex: 2 1 0; }
}

/* Purify on a wide screen (normal layout): the input and its gallery on the left; on the right the three images of
   the result (x, x_a, x_a + delta), then the Run row, then the settings; everything else below, full width. At
   1280x720 the input, Run and the result's images are all on the first screen (before, Run was at y = 774). */
@media (min-width: 1000px) {
  body:not(.dp-present) .tabitem > .column:has(#purify-run) {
    display: grid; grid-template-columns: minmax(0, 2fr) minmax(0, 3fr); align-items: start;
    grid-template-rows: auto auto auto 1fr;  /* the last row takes what the left column needs beyond the right one */
  }
  body:not(.dp-present) .tabitem > .column:has(#purify-run) > * { grid-column: 1 / -1; }
  body:not(.dp-present) .tabitem > .column:has(#purify-run) > .row:has(#purify-run) { display: contents; }
  body:not(.dp-present) .tabitem > .column > .row > .column:has(#purify-image) { grid-column: 1; grid-row: 2 / 5; }
  body:not(.dp-present) .tabitem > .column > .row:has(> #purify-clean) { grid-column: 2; grid-row: 2; }
  body:not(.dp-present) .tabitem > .column > .row > .column:has(#purify-run) { grid-column: 2; grid-row: 3; }
  body:not(.dp-present) .tabitem .row:has(> #purify-run) { order: -1; }  /* Run above the settings */
}

/* A figure in a row (alone or in a column) keeps the width its titles need: a narrower row puts it on its own line. */
body .gradio-container .row > :is(.block:has(.js-plotly-plot), .column:has(> .block .js-plotly-plot)) {
  min-width: min(600px, 100%) !important;
}

/* Phone (390 px wide and the like): one column, a smaller title, nothing wider than the screen. */
@media (max-width: 640px) {
  #title h1 { font-size: 1.6rem; }
  body .gradio-container .row { flex-direction: column; flex-wrap: nowrap; }
  body .gradio-container .row > * { min-width: 0 !important; width: 100%; }
  body .gradio-container :is(.block, .block img) { max-width: 100%; }
  body #present-toggle { display: none; }
  /* a story button is a finger's tap target (44 px, Apple's and WCAG's), not Gradio's 26 px small button */
  body .gradio-container button[id^="story-"] { min-height: 44px; }
  /* a view's stories come right after its intro, before the controls (below them they were ~2000 px down) */
  body .gradio-container .tabitem > .column > .column:has(> .story-look) { order: -1; }
  body .gradio-container .tabitem > .column:has(.story-look) > .block:first-child { order: -2; }
  /* the 2D view's stories sit in the column beside its controls: that row and column dissolve into the view's
     column, so its stories come right after the intro too (they came after every control, ~1900 px down) */
  body .gradio-container .tabitem > .column > .row:has(> .column > .column > .story-look),
  body .gradio-container .tabitem > .column > .row > .column:has(> .column > .story-look) { display: contents; }
  body .gradio-container .tabitem > .column > .row > .column > .column:has(> .story-look) { order: -1; }
  /* wide figures and tables keep their titles and words whole and scroll sideways inside their box */
  body .gradio-container .block:has(.js-plotly-plot) { overflow-x: auto !important; }
  body .gradio-container .js-plotly-plot { min-width: 600px; }
  /* ... except the 2D view's map, which takes the screen's width (cut at the right of its box, it hid x_a and the
     regions there); its two-line title would be cut (Plotly does not wrap it): the summary under the map gives the
     same areas, and "map shown" above names the map */
  body .gradio-container #regions-scene .js-plotly-plot { min-width: 0; }
  body .gradio-container #regions-scene .gtitle { display: none; }
  /* a stacked row's images keep their height (Gradio's flex-basis 0 squeezed x, x_a and x_a + delta to 2 px) */
  body .gradio-container .row > .block:has(.image-container) { flex: 0 0 auto; }
  body .gradio-container .prose table { display: block; overflow-x: auto; }
  body .gradio-container .prose :is(th, td) { overflow-wrap: normal; word-break: normal; }
  body .gradio-container .block.pixelated:not(.big-image) .image-container { overflow-x: auto; }
  body .gradio-container .block.pixelated:not(.big-image) .image-container :is(button, .image-frame) { width: max-content; }
  body .gradio-container .block.pixelated:not(.big-image) .image-container img {
    width: auto !important; height: auto !important; max-width: none !important;
  }
}

/* Presentation mode (body.dp-present; a projector at 1280x720): bigger type; on each view the controls sit in a left pane
   with the Run button on top (scrolling on their own) and the result fills the right, the answer first. */
body.dp-present .gradio-container {
  --text-xs: 13px; --text-sm: 16px; --text-md: 19px; --text-lg: 21px; --text-xl: 26px; --text-xxl: 30px;
  --body-text-size: var(--text-md); --prose-text-size: var(--text-md); --input-text-size: var(--text-md);
  --block-label-text-size: var(--text-sm); --block-info-text-size: var(--text-sm);
  --block-title-text-size: var(--text-md); --section-header-text-size: var(--text-md);
  --checkbox-label-text-size: var(--text-md); --button-small-text-size: var(--text-sm);
  --button-medium-text-size: var(--text-md); --button-large-text-size: var(--text-lg);
}
body.dp-present .verdict { font-size: var(--text-md); }
body.dp-present #title h1 { font-size: var(--text-xxl); margin: 0; }
body.dp-present :is(#title p, #model-status, #model .info-text, #model [data-testid=block-info], #present-toggle .info-text) {
  display: none;
}
body.dp-present .row:has(> #title) { align-items: center; }
body.dp-present .row:has(> #title) :is(.column, .form) { flex-direction: row; align-items: center; flex-wrap: nowrap; }
body.dp-present .row:has(> #title) > .column { min-width: min(36rem, 60%) !important; }
body.dp-present .row:has(> #title) > .column > * { flex: 1 1 0; }
body.dp-present .row:has(> #title) .block { padding-top: 4px; padding-bottom: 4px; }  /* a shorter header */
@media (min-width: 900px) {
  body.dp-present .tabitem > .column:has(#purify-run, #certify-run, #regions-run, #density-run) {
    display: grid; grid-template-columns: 24rem minmax(0, 1fr) minmax(0, 20rem);
    grid-template-rows: repeat(12, auto) 1fr; grid-auto-flow: row dense;
    column-gap: var(--layout-gap); row-gap: 0; align-items: start;
    --answer: 1; --below: 3;  /* the rows of the answer (two) and of what follows it */
  }
  /* a view's story buttons (when it has them) go across the top of the result, what to look at beside the answer */
  body.dp-present .tabitem > .column:has(#purify-run, #certify-run, #regions-run, #density-run):has(.story-look) {
    --answer: 2; --below: 4;
  }
  body.dp-present .tabitem .column:has(> .story-look) { display: contents; }
  body.dp-present .tabitem .row:has(> button[id^="story-"]) { grid-column: 2 / 4; grid-row: 1; }
  /* compact: the row's label without its explanation (buttons on one line where they fit), the line in smaller type
     (beside the answer it is a caption: in the body's type it ran below the bottom of a 720 px screen) */
  body.dp-present .tabitem .story-how { display: none; }
  body.dp-present .tabitem .row:has(> button[id^="story-"]) { flex-wrap: nowrap; align-items: center; }
  body.dp-present .tabitem .row:has(> button[id^="story-"]) > .block { flex: 0 0 auto; width: max-content; min-width: 0 !important; }
  body.dp-present .tabitem .story-look :is(.md, p) { font-size: var(--text-sm); line-height: 1.4; }
  body.dp-present .tabitem :is(#purify-story-look, #regions-story-look) { grid-column: 3; grid-row: 3; }
  body.dp-present .tabitem #certify-story-look { grid-column: 2 / 4; order: -1; }
  body.dp-present .tabitem > .column:has(#purify-run, #certify-run, #regions-run, #density-run) > * {
    grid-column: 2 / 4; margin-bottom: var(--layout-gap);
  }
  /* the intro paragraph goes below the result */
  body.dp-present .tabitem > .column:has(#purify-run, #certify-run, #regions-run, #density-run) > .block:first-child { order: 50; }
  /* the left pane: the controls, their Run row first, scrolling on their own */
  body.dp-present .tabitem > .column > :is(.row:has(#purify-run), .row:has(#certify-run), #density-controls),
  body.dp-present .tabitem > .column > .row > .column:has(> #regions-run) {
    grid-column: 1; grid-row: 1 / -1; position: sticky; top: 0.5rem; align-self: start;
    max-height: calc(100vh - 1rem); overflow-y: auto; flex-wrap: nowrap;
  }
  body.dp-present .tabitem > .column > :is(.row:has(#purify-run), .row:has(#certify-run), #density-controls) > *,
  body.dp-present .tabitem > .column > .row > .column:has(> #regions-run) > * { flex-shrink: 0; }
  body.dp-present .tabitem > .column > :is(.row:has(#purify-run), .row:has(#certify-run)) { flex-direction: column; }
  body.dp-present .tabitem > .column > .row > .column:is(:has(#purify-run), :has(#certify-run)) { order: -1; }
  body.dp-present .tabitem > .column > :is(.row:has(#purify-run), .row:has(#certify-run)) > .column { min-width: 0 !important; }
  body.dp-present .tabitem > .column > :is(.row:has(#purify-run), .row:has(#certify-run), #density-controls) .row:not(:has(> button)) {
    flex-direction: column;
  }
  body.dp-present .tabitem > .column:has(#regions-run) { grid-template-columns: 18rem minmax(0, 1fr) 18rem; }
  body.dp-present #certify-card :is(th, td) { font-size: var(--text-sm); overflow-wrap: normal; word-break: normal; }
  body.dp-present :is(.row:has(> #purify-run), .row:has(> #certify-run), #regions-run, .row:has(> #density-run)) { order: -1; }
  /* the answer first: Purify's verdict beside its votes, Certify's status and card, the 2D scene beside its
     summary, the density projection beside its pictures and summary */
  body.dp-present .tabitem > .column > :is(.row:has(#purify-votes), .row:has(#regions-run), .row:has(#density-projection)),
  body.dp-present .tabitem > .column > .row > .column:has(> #regions-scene) { display: contents; }
  body.dp-present .tabitem > .column > #purify-verdict { grid-column: 2; grid-row: var(--answer) / span 2; }
  body.dp-present .tabitem > .column > .row > .column:has(> #purify-votes) { grid-column: 3; grid-row: var(--answer); }
  body.dp-present .tabitem > .column > .row > .column:has(> #purify-grid) { grid-column: 2 / 4; grid-row: var(--below); }
  body.dp-present .tabitem > .column > :is(#certify-status, #certify-card) { order: -1; }
  body.dp-present .tabitem > .column > .row > .column > #regions-scene { grid-column: 2; grid-row: var(--answer) / span 2; }
  body.dp-present .tabitem > .column > .row > .column > #regions-summary { grid-column: 3; grid-row: var(--answer); }
  body.dp-present .tabitem > .column > .row > #density-projection { grid-column: 2; grid-row: var(--answer) / span 2; }
  body.dp-present .tabitem > .column > .row > .column:has(> #density-summary) { grid-column: 3; grid-row: var(--answer); }

  /* Purify: a narrower pane (the verdict gets the width, so it and the story's line end above y = 720); in it the
     Run row, then the samples gallery at the pane's full width (it sat at the bottom, cut to 384 of its 550 px),
     the input image, then the settings */
  body.dp-present .tabitem > .column:has(#purify-run) { grid-template-columns: 20rem minmax(0, 1fr) minmax(0, 20rem); }
  body.dp-present .tabitem > .column > .row:has(#purify-run) { align-items: stretch; }
  body.dp-present .tabitem > .column > .row:has(#purify-run) > .column:has(#purify-run) { display: contents; }
  body.dp-present .tabitem > .column > .row:has(#purify-run) > .column:has(#purify-run) > * { flex-shrink: 0; }
  body.dp-present .tabitem .row:has(> #purify-run) { order: -2; }
  body.dp-present .tabitem > .column > .row > .column:has(> #purify-image) { order: -1; width: 100%; }
  body.dp-present .tabitem .column:has(> #purify-image) > .tabs { order: -1; }
  body.dp-present #purify-samples .caption-label { display: none; }  /* "label 3" covered most of a 56 px thumbnail */
  /* ... and the answer: the verdict (slightly smaller type), beside it x, x_a and x_a + delta over the vote
     histogram (they came after the trajectory grid, at y ~ 1950), the story's line under the verdict */
  body.dp-present .tabitem > .column > #purify-verdict .prose { font-size: 18px; }
  body.dp-present .tabitem > .column > .row:has(> #purify-clean) {
    grid-column: 3; grid-row: var(--answer); flex-wrap: nowrap; gap: var(--spacing-md);
  }
  body.dp-present .tabitem > .column > .row > .column:has(> #purify-votes) { grid-row: calc(var(--answer) + 1) / span 2; }
  body.dp-present .tabitem #purify-story-look { grid-column: 2; grid-row: calc(var(--answer) + 2); }
  body.dp-present .tabitem > .column > .row > .column:has(> #purify-grid) { grid-row: calc(var(--answer) + 3); }
  /* the three images: square, their label one line under the picture (cut with an ellipsis), no buttons */
  body.dp-present .tabitem > .column > .row:has(> #purify-clean) > .block {
    height: auto !important; min-width: 0 !important; display: flex; flex-direction: column; padding: 0;
  }
  body.dp-present .tabitem > .column > .row:has(> #purify-clean) > .block > [data-testid=block-label] {
    position: static; order: 1; display: block; max-width: 100%; border: none; font-size: var(--text-xs);
    white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
  }
  body.dp-present .tabitem > .column > .row:has(> #purify-clean) > .block > [data-testid=block-label] > span { display: none; }
  body.dp-present .tabitem > .column > .row:has(> #purify-clean) .icon-button-wrapper { display: none; }
  body.dp-present .tabitem > .column > .row:has(> #purify-clean) .image-container { height: auto; aspect-ratio: 1 / 1; }

  /* High-density: x0, x_a, x + delta, the highest-density image and the posterior mean get the result's full width
     under the projection (in the 20rem column they were a sliver beside their label); the label mass and the
     summary stay beside the projection */
  body.dp-present .tabitem > .column > .row > .column:has(> #density-summary) { display: contents; }
  body.dp-present .tabitem .column:has(> #density-summary) > .block:has(.js-plotly-plot) { grid-column: 3; grid-row: var(--answer); }
  body.dp-present .tabitem .column > #density-summary { grid-column: 3; grid-row: calc(var(--answer) + 1); }
  body.dp-present .tabitem .column > #density-pictures { grid-column: 2 / 4; grid-row: var(--below); margin-bottom: var(--layout-gap); }
  body.dp-present #density-pictures .image-container { height: 11rem; }
  body.dp-present #density-pictures img { width: 100%; height: 100%; object-fit: contain; }
}
"""

# Presentation mode: the checkbox's value sets body.dp-present (the CSS above) and the page's ?mode=present, so
# the address can be bookmarked; Plotly redraws its figures at their new widths on the resize event.
PRESENT_TOGGLE_JS = """(on) => {
  document.body.classList.toggle("dp-present", on);
  const url = new URL(window.location.href);
  if (on) url.searchParams.set("mode", "present"); else url.searchParams.delete("mode");
  window.history.replaceState(null, "", url);
  window.dispatchEvent(new Event("resize"));
}"""
PRESENT_FROM_URL_JS = """() => new URLSearchParams(window.location.search).get("mode") === 'present'"""
# Gradio's Sketchpad opens on its image tool, which ignores strokes until the brush is chosen (and has no
# parameter for the starting tool): select the brush (the first tool of its toolbar) of every sketchpad as soon as
# it is on the page.
BRUSH_JS = """
<script>
(() => {
  const pick = () => {
    for (const pad of document.querySelectorAll(".block:has(.toolbar-wrap)")) {
      const brush = pad.querySelector(".toolbar-wrap button");
      if (!brush || brush.dataset.dpBrush === "1") continue;
      brush.dataset.dpBrush = "1";
      brush.click();
    }
  };
  new MutationObserver(pick).observe(document.documentElement, { childList: true, subtree: true });
})();
</script>
"""
PAGE_HEAD = f"<style>{LAYOUT_CSS}</style>{BRUSH_JS}"  # what the page's <head> gets besides the views' own scripts


def _file_preprocess(self: gr.Image, payload: ImageData | None) -> str | None:
    """gr.Image preprocessing that hands the handler the uploaded file's path, untouched.

    gr.Image opens the upload with Pillow before the handler runs, and a file it cannot read becomes
    a generic error; this leaves decoding to densepure_viz.models.images.to_tensor, which is bounded and
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


def encode_image(img: PILImage.Image, format: str) -> bytes:
    """The file's bytes: PNG at zlib level PNG_LEVEL (lossless, as every level is), other formats as Gradio encodes them.

    Gradio's encoder leaves PNGs at Pillow's level 6. Our pictures are drawn, mostly flat colour: level 1
    encodes the trajectory grid (~1 megapixel) in 13 ms instead of 19 for 15% more bytes, on every request.
    """
    if format.lower() != "png":
        return processing_utils.encode_pil_to_bytes(img, format)
    with io.BytesIO() as out:
        img.save(out, "png", compress_level=PNG_LEVEL, pnginfo=processing_utils.get_pil_metadata(img))
        return out.getvalue()


def save_pil_atomically(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    """gradio.processing_utils.save_pil_to_cache, but the file appears whole: written aside, then renamed.

    Gradio names a cached image by the hash of its bytes and rewrites the file in place each time it is
    produced. When several visitors get the same picture at once (a class purifying the same sample),
    one request truncates the file while another's browser downloads it, which then receives nothing.
    With a rename a reader sees the old file or the new one, both complete. Encoded by encode_image.
    """
    data = encode_image(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    path = (folder / f"{name}.{format}").resolve()
    fd, partial = tempfile.mkstemp(dir=folder, prefix=".partial-", suffix=f".{format}")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(partial, path)
    return str(path)


def _written_whole(self: gr.Image, value: Any) -> ImageData | None:
    """gr.Image postprocessing that writes a PIL picture into the component's cache with save_pil_atomically, then
    hands Gradio the file (already in its cache: served as is). Gradio's own writer rewrites a cached picture in
    place, so a visitor downloading it while another request produces the same picture could receive nothing."""
    if isinstance(value, PILImage.Image):
        value = save_pil_atomically(value, self.GRADIO_CACHE, format=self.format)
    return gr.Image.postprocess(self, value)


def written_whole(image: gr.Image) -> gr.Image:
    """`image` with its output pictures written atomically (set on the instance: nothing process-wide changes)."""
    image.postprocess = types.MethodType(_written_whole, image)
    return image


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
    written_whole(image)  # a drawing arrives here as a picture
    if value is not None:
        example = os.path.relpath(value) if Path(value).is_relative_to(Path.cwd()) else str(value)
        image.example_payload = lambda: {**handle_file(example), "url": example}  # Gradio's API page reads the url
        image.example_value = lambda: example
    return image


def image_output(label: str, height: int | None = 200, elem_id: str | None = None, big: bool = True,
                 show_label: bool = True, legend: bool = False) -> gr.Image:
    """A PNG (lossless) image output shown with nearest-neighbour scaling (filling its box when `big`).

    `legend`: the picture draws a colour legend band at its top-left (grids.legend_band), so its label sits
    above the picture instead of over that corner (LAYOUT_CSS).
    """
    classes = [PIXELATED] + ([BIG] if big else []) + ([LEGEND] if legend else [])
    return written_whole(gr.Image(label=label, type="pil", format="png", height=height, interactive=False,
                                  show_label=show_label, elem_classes=classes, elem_id=elem_id,
                                  buttons=["download", "fullscreen"]))


def sigma_slider(value: float, label: str = "sigma (smoothing std on [0, 1] pixels)") -> gr.Slider:
    return gr.Slider(0.05, LIMITS.sigma_max, value=value, step=0.05, label=label)


def seed_input(value: int = 0) -> gr.Number:
    return gr.Number(value=value, precision=0, minimum=0, maximum=LIMITS.seed, label="base seed",
                     info="same seed, same noise, same answer (as the CLI's --seed)")


def view_defaults(view: str, model: str):
    """The request `view` opens with for `model`: the endpoint's defaults, with the model's own (validation.Limits)."""
    return replace(REQUESTS[view](), model=model, **limits_for(model).defaults.get(view, {}))


def follow_model(model: gr.Dropdown, view: str, sliders: dict[str, tuple[gr.Slider, str]]) -> None:
    """When a visitor picks a model, `view`'s sliders (request field -> (slider, its cap's Limits field)) stop at that
    model's caps and go to its defaults for the view (validation.limits_for); the handlers enforce the same caps.

    Only a visitor's pick (`input`): a story sets the model and every control at once and must keep its values.
    """
    def update(name):
        limits, start = limits_for(name), view_defaults(view, name)
        return [gr.update(maximum=getattr(limits, cap), value=min(getattr(start, field), getattr(limits, cap)))
                for field, (_, cap) in sliders.items()]

    model.input(update, model, [slider for slider, _ in sliders.values()], queue=False, api_visibility="private",
                show_progress="hidden")


def new_input_note(run: str, shown: str) -> str:
    """What a view says in place of results it cleared because its input image changed (they were another's)."""
    return (f"**New input.** Press **{run}** for this image: the {shown} shown before belonged to the previous one, "
            "so they were cleared.")


def glossary_accordion() -> gr.Accordion:
    """The glossary (densepure_viz.teaching.glossary), closed until opened."""
    with gr.Accordion("Glossary: p_lower, radius, abstain, t*, K, b, ...", open=False) as accordion:
        gr.Markdown(glossary_markdown(), elem_classes=["glossary"])
    return accordion
