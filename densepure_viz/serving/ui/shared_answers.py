"""A streaming handler's answers shared between identical requests, their images sent as files encoded once.

The first request for a key runs the handler and streams its frames as usual; its frames are kept
(densepure_viz.serving.sharing) and every later request for that key, or one made while it runs, receives
the same frames at once: a shared answer streams exactly what the computed one did (an earlier frame
may carry what a later one leaves out, such as the input images, which the first frame sends once).
Kept images are written once as PNG files (components.encode_image) and
handed to Gradio as paths, so nothing is computed, drawn or encoded again.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from densepure_viz.serving.sharing import SharedResults
from densepure_viz.serving.ui.components import save_pil_atomically


@functools.cache
def _png_folder() -> Path:
    """Where kept answers' images live: in the system temp folder, which Gradio serves from, but outside
    Gradio's cache, whose hourly cleanup would leave an answer kept for good (the first view) pointing nowhere."""
    folder = Path(tempfile.mkdtemp(prefix="densepure-viz-shared-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@dataclass
class Png:
    """An output image written once as a PNG file, named by its bytes."""

    image: Image.Image
    path: str = ""

    def file(self) -> str:
        """The PNG's path, written (atomically, named by its bytes) on first use and again if it is gone."""
        if not (self.path and Path(self.path).is_file()):
            self.path = save_pil_atomically(self.image, str(_png_folder()), format="png")
        return self.path


def _keep(value: Any) -> Any:
    """An output value to keep: its PIL image, bare or in an update dict, as a Png; dicts copied (Gradio pops their "value")."""
    if isinstance(value, Image.Image):
        return Png(value)
    if isinstance(value, dict):
        return {**value, "value": _keep(value["value"])} if "value" in value else dict(value)
    return value


def _send(value: Any) -> Any:
    """A kept value as Gradio takes it: Pngs as their files, update dicts fresh (Gradio pops their "value")."""
    if isinstance(value, Png):
        return value.file()
    if isinstance(value, dict) and isinstance(value.get("value"), Png):
        return {**value, "value": value["value"].file()}
    return dict(value) if isinstance(value, dict) else value


def answer_once(store: SharedResults, key: Hashable | None, run: Callable[[], Iterator[list]]) -> Iterator[list]:
    """The frames of run() (lists of output values), or the kept frames of the same key; key None: run() as is."""
    if key is None:
        yield from run()
        return
    claim = store.claim(key)
    if claim.value is not None:
        for frame in claim.value:
            yield [_send(v) for v in frame]
        return
    try:
        frames = []
        for outputs in run():
            frames.append([_keep(v) for v in outputs])  # before Gradio pops the update dicts' values
            yield outputs
        if frames:
            claim.publish(frames)
    finally:
        claim.release()
