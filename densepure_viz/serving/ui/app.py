"""The explorer: five views in the method's order, composed from one builder per tab.

`build_app()` lays out the page and wires the events; it loads no model and launches nothing (models
load on first use; the first view's preset is computed on the first page load and then cached).
`main()` is `python app.py`: its command line chooses the model (a preset, or local folders / hub ids) and
where to serve, then it launches with the page options (CSS, the map-click script, what may be served). On a
Hugging Face Space (SPACE_ID set) it first fetches the hub models' weights, printing its progress, so that no
request (and no ZeroGPU call) waits for a download.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TextIO

import gradio as gr
import torch

from densepure_viz.errors import InputError
from densepure_viz.models.images import MAX_BYTES
from densepure_viz.models.registry import REGISTRY, ModelSpec, default_dtype, is_hub_id, resolve_source
from densepure_viz.serving.api import PurifyRequest, arguments
from densepure_viz.serving.options import add_model_options, model_from_options
from densepure_viz.paths import ASSETS, PACKAGE
from densepure_viz.serving.ui import about_tab, certify_tab, density_tab, machine, purify_tab, regions_tab
from densepure_viz.serving.ui.components import CSS, PAGE_HEAD, PRESENT_FROM_URL_JS, PRESENT_TOGGLE_JS, guard_numbers
from densepure_viz.serving.ui.purify_tab import PurifyOutputs, shown_after
from densepure_viz.serving.ui.session import SAMPLES, AppContext, Loader, ModelPool, list_samples, zero_gpu_space
from densepure_viz.serving.ui.validation import model_id

log = logging.getLogger(__name__)
TITLE = "DensePure explorer"
BLOCKED_PATHS = (PACKAGE, PACKAGE.parent / "app.py", ASSETS / "digits")  # source and weights: never served
QUEUE_SIZE = 64  # requests waiting beyond this are refused with a "queue full" message
CACHE_CLEANUP = (3600, 3600)  # delete Gradio's cached files older than an hour, checked hourly
# Gradio keeps every visitor's session (a copy of the page's component values, ~1 MB here) until this
# many newer sessions exist, least recently used first; its default of 10,000 would let a public demo
# grow by gigabytes. 500 keeps the memory bounded (~0.5-1 GB) and is far more than a classroom uses.
SESSION_CAPACITY = 500


def _device_line(pool: ModelPool) -> str:
    """Where requests compute and in which precision (models.default_dtype: a GPU's bfloat16 labels can differ from
    float32's); on ZeroGPU said without touching CUDA (the main process must not initialise it)."""
    if pool.zero_gpu:
        return "ZeroGPU: a GPU is attached to each request; networks in bfloat16 (float16 where unsupported)"
    precision = str(default_dtype(pool.device)).removeprefix("torch.")
    if pool.device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(pool.device)}, networks in {precision}"
    return f"CPU (no GPU found), networks in {precision}"


def _digits_only_note(models) -> str:
    """What a model other than the digits one cannot use on the page, in one line (empty for a 1-channel model)."""
    if models.channels == 1:
        return ""
    return ("\n\nThe samples, the drawing pad and the stories are handwritten digits (a story switches back to "
            f"**digits**): upload a {models.image_size}x{models.image_size} colour image to try this model. High-density "
            "points need the model's training set, which only the embedded digits model ships.")


def build_app(
    loader: Loader | None = None,
    names: tuple[str, ...] | None = None,
    device: torch.device | str | None = None,
    specs: Mapping[str, ModelSpec] | None = None,
) -> gr.Blocks:
    """The Blocks of the explorer, with its queue configured; nothing is loaded or launched.

    loader(name, device) -> DensePureModels replaces the registry loader (tests pass tiny models);
    names restricts the model choices (default: the registry); device defaults to CUDA when present;
    specs add models beside the registry's (the command line's), offered first and opened with.
    """
    pool = ModelPool(loader, names, device, specs, zero_gpu=zero_gpu_space())
    ctx = AppContext(pool=pool, samples=list_samples(SAMPLES), engine_concurrency=2 if pool.device.type == "cuda" else 1)
    first_view_cache: dict[str, tuple] = {}
    first_view_lock = threading.Lock()

    with gr.Blocks(title=TITLE, delete_cache=CACHE_CLEANUP) as demo:
        with gr.Row(equal_height=True):
            gr.Markdown(f"# {TITLE}\nDiffusion purification with K seeded reverse trajectories and a majority vote, "
                        "and the certificate it earns (Xiao et al., ICLR 2023).", elem_id="title")
            with gr.Column(scale=0, min_width=320):
                model = gr.Dropdown([(f"{n}", n) for n in pool.names], value=pool.default, label="model",
                                    info=pool.describe(pool.default), elem_id="model")
                model_status = gr.Markdown(_device_line(pool), elem_id="model-status")
                present = gr.Checkbox(False, label="presentation mode", elem_id="present-toggle",
                                      info="bigger type, the result beside the controls (or open the page with ?mode=present)")
        with gr.Tabs(selected="purify", overflow_behavior="wrap", elem_id="views"):  # wrap: every view reachable on a phone
            with gr.Tab("1. Purify", id="purify"):
                purify = purify_tab.build(ctx, model)
            with gr.Tab("2. Certify", id="certify"):
                certify_tab.build(ctx, model, purify.controls["image"])
            with gr.Tab("3. Robust regions (2D)", id="regions", elem_id="tab-regions"):
                regions_outputs, regions_first = regions_tab.build(ctx)
            with gr.Tab("4. High-density points", id="density"):
                density_outputs, density_first = density_tab.build(ctx, model, purify)
            with gr.Tab("5. About", id="about"):
                about_tab.build()

        def check_model(name):
            """Load the chosen model now; on failure, say why and fall back to the embedded one."""
            try:
                name = model_id(name, pool.names)
                models = pool.get(name)
            except Exception as exc:  # noqa: BLE001 - whatever failed, the page stays on a working model
                if not isinstance(exc, InputError):
                    log.exception("loading model %r failed", name)
                    exc = InputError(f"could not load {name!r} ({type(exc).__name__}); the error was logged on the server")
                message = f"⚠️ {exc}\n\nUsing the embedded model **{pool.embedded}** instead."  # said once, here
                return gr.update(value=pool.embedded, info=pool.describe(pool.embedded)), message
            info = f"{models.image_size}x{models.image_size}, {models.channels} channel(s), {models.num_classes} classes"
            return (gr.update(info=pool.describe(name)),
                    f"{_device_line(pool)} - **{name}** loaded ({info})" + _digits_only_note(models))

        present.change(None, present, None, js=PRESENT_TOGGLE_JS)
        demo.load(None, None, present, js=PRESENT_FROM_URL_JS)
        model.input(check_model, model, [model, model_status], api_visibility="private", concurrency_limit=None)

        purify_handler = purify_tab.make_handler(ctx)

        def first_view():
            """The Purify and High-density views' presets (first sample, the configs' defaults) and the 2D preset;
            computed once.

            Each load gets fresh copies of the cached update dicts: Gradio pops their "value" while sending
            them, and a reused dict would leave later visitors with the scrub slider at 0.
            """
            with first_view_lock:
                if "view" not in first_view_cache:
                    first_view_cache["view"] = [*_first_view(ctx, purify_handler), *regions_first(), *density_first()]
                return [dict(v) if isinstance(v, dict) else v for v in first_view_cache["view"]]

        # its own unlimited group: a visitor never waits behind someone's long certification (it is cached)
        demo.load(first_view, None, purify.outputs.as_list() + regions_outputs + density_outputs, api_visibility="private",
                  concurrency_limit=None, show_progress="minimal")
    guard_numbers(demo)  # API callers can send anything where the page sends numbers
    demo.queue(default_concurrency_limit=2, max_size=QUEUE_SIZE)
    return demo


def _first_view(ctx: AppContext, handler) -> list:
    """What the default purification (the configs' defaults, no attack) shows once streamed; on failure, a message."""
    if ctx.default_image is None:
        return PurifyOutputs(verdict="No sample images found: run `python scripts/export_samples.py`.").as_list()
    try:
        return shown_after(handler(**arguments(PurifyRequest(image=ctx.default_image, model=ctx.pool.default))))
    except Exception as exc:  # noqa: BLE001 - the page must open even without a model
        message = getattr(exc, "message", None) or str(exc)
        return PurifyOutputs(verdict=f"⚠️ The first view could not be computed: {message}").as_list()


def launch_options() -> dict:
    """Options Gradio 6 takes at launch: CSS, the page's scripts, and what the file routes may serve.

    Gradio serves its own upload and cache folders; beyond them only the shipped sample digits (the
    gallery hands their paths to the image input). The package source, app.py and the model weights
    are blocked outright (blocked_paths wins over every allowed path), uploads are capped at the
    image loader's own file-size limit, and the sessions kept in memory at SESSION_CAPACITY.
    """
    return {
        "css": CSS,
        "head": regions_tab.CLICK_JS + PAGE_HEAD,
        "allowed_paths": [str(SAMPLES)] if SAMPLES.is_dir() else [],
        "blocked_paths": [str(p) for p in BLOCKED_PATHS],
        "max_file_size": MAX_BYTES,
        "state_session_capacity": SESSION_CAPACITY,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """`python app.py`'s options: the model (as every `python -m densepure_viz` command takes it) and the server."""
    parser = argparse.ArgumentParser(prog="python app.py", description="Serve the DensePure explorer (Gradio).")
    add_model_options(parser)
    parser.add_argument("--host", default=None, help="address to listen on (default: Gradio's, 127.0.0.1 or "
                        "GRADIO_SERVER_NAME; 0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or GRADIO_SERVER_PORT)")
    parser.add_argument("--share", action="store_true", help="also serve through a temporary public Gradio link")
    return parser.parse_args(argv)


def fetch_weights(specs: Iterable[ModelSpec], out: TextIO | None = None) -> None:
    """Download (or find in the cache) every hub source of `specs` now, two lines per repository on `out` (default
    stdout); a failure is printed and the model then says why when chosen (the app still serves)."""
    out = out or sys.stdout
    for source in dict.fromkeys(s for spec in specs for s in (spec.diffusion, spec.classifier) if is_hub_id(s)):
        print(f"fetching {source} ...", file=out, flush=True)
        start = time.perf_counter()
        try:
            folder = resolve_source(source)
        except InputError as exc:
            print(f"  could not fetch {source}: {exc}", file=out, flush=True)
            continue
        print(f"  {source}: ready in {time.perf_counter() - start:.1f} s ({folder})", file=out, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, then build and serve the explorer; a bad model option is one line and status 2.
    On a Hugging Face Space (SPACE_ID set) the hub models' weights are fetched before launching."""
    args = parse_args(argv)
    try:
        spec = model_from_options(args)
    except InputError as exc:
        print(f"python app.py: error: {exc}", file=sys.stderr)
        return 2
    if os.environ.get("SPACE_ID"):
        fetch_weights({**REGISTRY, spec.name: spec}.values())
    machine.size_torch_threads()  # the CPUs this process may use (a container's share, not the host's), one kept free
    build_app(specs={spec.name: spec}).launch(server_name=args.host, server_port=args.port, share=args.share,
                                              **launch_options())
    return 0


__all__ = ["build_app", "fetch_weights", "launch_options", "main", "parse_args"]
