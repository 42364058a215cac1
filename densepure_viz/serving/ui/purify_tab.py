"""View 1, Purify: perturb an input, watch K seeded reverse trajectories purify it live, and vote.

The handler is a generator: it yields a frame after the attack and after each reverse step (x_t and
the predicted x0 of every seed, framed by the classifier's label), then the final grid, the vote
histogram and a verdict comparing the bare classifier (clean and adversarial input), one-shot
denoising and DensePure's vote. Afterwards a slider scrubs through the stored reverse steps.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

import gradio as gr
import torch

from densepure_viz.attacks.pgd import AttackConfig, AttackProgress
from densepure_viz.engine.diffusion import SAMPLERS
from densepure_viz.errors import InputError
from densepure_viz.viz.grids import choose_scale, column_indices, step_view, trajectory_grid
from densepure_viz.models.images import to_pil
from densepure_viz.models.inputs import true_label
from densepure_viz.viz.plots.images import vote_histogram_figure
from densepure_viz.models.registry import DensePureModels
from densepure_viz.engine.purify import PurifyConfig, PurifyFrame, PurifyResult, purify_stream
from densepure_viz.engine.votes import tied_labels
from densepure_viz.serving.reports import attack_json, purify_json
from densepure_viz.serving.sharing import file_digest
from densepure_viz.serving.ui.components import (PIXELATED, follow_model, glossary_accordion, image_input, image_output,
                                         new_input_note, seed_input, sigma_slider)
from densepure_viz.attacks.prepare import PreparedInput, prepare_input
from densepure_viz.serving.api import PurifyRequest, in_order
from densepure_viz.serving.ui.requests import ATTACKS, check_budget, endpoint, parse_purify_view
from densepure_viz.serving.ui.session import INTERACTIVE, AppContext
from densepure_viz.serving.ui.shared_answers import answer_once
from densepure_viz.serving.ui.story_buttons import story_row
from densepure_viz.serving.ui.validation import LIMITS, choice, limits_for, user_errors

MAX_GRID_COLUMNS = 12  # reverse steps shown in the grid (evenly spread for long chains)
MAX_SCRUB_FRAMES = 100  # reverse steps kept for the scrub slider
STREAM_INTERVAL = 0.5  # seconds before the first streamed frame and between frames (the final frame always goes out):
# a run shorter than this (the defaults on a CPU) sends only its final frame, sparing the server a grid, a figure and
# their encoding per frame. With n requests computed together each streams every n x STREAM_INTERVAL (stream_interval),
# so the server draws and encodes about two live frames a second however many requests run
DISPLAY_SCALE = 8  # nearest-neighbour enlargement of single images (16x16 -> 128x128)


@dataclass
class PurifyOutputs:
    """The purify event's outputs by name, in the event's order: components when building, values when yielding.

    A value left out stays gr.skip(): its component keeps what it shows.
    """

    clean: Any = field(default_factory=gr.skip)  # clean x0
    adversarial: Any = field(default_factory=gr.skip)  # the purifier's input
    noisy: Any = field(default_factory=gr.skip)  # the smoothed input
    grid: Any = field(default_factory=gr.skip)  # the reverse trajectories
    votes: Any = field(default_factory=gr.skip)  # the vote histogram
    verdict: Any = field(default_factory=gr.skip)  # the text under the images
    result: Any = field(default_factory=gr.skip)  # the JSON (the endpoint's result)
    scrub: Any = field(default_factory=gr.skip)  # the scrub slider
    scrub_image: Any = field(default_factory=gr.skip)  # the K seeds at the scrubbed step
    scrub_state: Any = field(default_factory=gr.skip)  # the stored steps the slider scrubs

    def as_list(self) -> list:
        return [getattr(self, f.name) for f in fields(self)]


def shown_after(frames: Iterable[list]) -> list:
    """What the page shows once `frames` have streamed: per output, the last value sent (gr.skip() keeps the one before)."""
    shown = PurifyOutputs().as_list()
    for frame in frames:
        shown = [old if isinstance(new, dict) and new == gr.skip() else new for old, new in zip(shown, frame)]
    return shown


@dataclass
class PurifyView:
    """The components other views reuse."""

    controls: dict[str, Any]  # the purify endpoint's input components by parameter name (PurifyRequest)
    outputs: PurifyOutputs  # the purify event's output components
    run_event: Any  # the click event (for Stop)


def _display(x: torch.Tensor, image_size: int) -> Any:
    return to_pil(x.cpu(), max(1, (DISPLAY_SCALE * 16) // image_size))


def _name(labels: tuple[str, ...], c: int | None) -> str:
    return "-" if c is None else (labels[c] if labels[c] == str(c) else f"{c} ({labels[c]})")


def verdict(prep: PreparedInput, result: PurifyResult, labels: tuple[str, ...], k: int) -> str:
    """One line per classifier, each naming the input it saw; ✓/✗ only against a known true label."""
    x = "x_a" if prep.attack is not None else "x"  # what the smoothing noise delta is added to
    known = prep.true_label >= 0

    def said(c: int) -> str:
        mark = (" ✓" if c == prep.true_label else " ✗ (wrong)") if known else ""
        return f"**{_name(labels, c)}**{mark}"

    lines = [f"**True label: {_name(labels, prep.true_label)}** (from the sample's file name)" if known else
             "**True label unknown** (an upload or a drawing): each line says what a classifier answers, not whether "
             "it is right."]
    lines.append(f"- bare classifier on the clean input x: {said(prep.clean_label)}")
    if prep.attack is not None:
        lines.append(f"- bare classifier on the attacked input x_a: {said(result.input_label)}")
    lines.append(f"- bare classifier on {x} + delta (the smoothing noise shown, no purification): {said(result.noisy_label)}")
    lines.append(f"- one-shot denoising of {x} + delta (x0 predicted at t\\* = {result.t_star}): {said(result.one_shot_label)}")
    tied = tied_labels(result.votes)
    if len(tied) > 1:
        lines.append(f"- **DensePure vote over K = {k} trajectories from {x} + delta: a tie** between "
                     f"{' and '.join(_name(labels, c) for c in tied)} ({result.votes[tied[0]]}/{k} seeds each); ties go "
                     f"to the smallest label, so the vote is {said(result.label)}")
    else:
        lines.append(f"- **DensePure vote over K = {k} trajectories from {x} + delta:** {said(result.label)} "
                     f"({result.votes[result.label]}/{k} seeds)")
    return "\n".join(lines)


def input_line(prep: PreparedInput, image_size: int, channels: int) -> str:
    """What the model sees of the file: its own size and channels, and what the conversion changed."""
    seen = f"The model sees the input as {image_size}x{image_size}, {'grey' if channels == 1 else 'colour'}"
    return seen + (f" ({'; '.join(prep.notes)})." if prep.notes else ", as the file is.")


def attack_line(prep: PreparedInput, name: str, cfg: AttackConfig | None) -> str:
    """The attack's settings and outcome, saying which model it fooled or not, on how many draws."""
    if prep.attack is None or cfg is None:
        return "No attack: the purifier starts from the clean input x."
    a = prep.attack
    head = (f"{name} ({cfg.norm}, eps {cfg.eps:g}, {cfg.steps} step{'s' if cfg.steps > 1 else ''}): "
            f"x_a = x + perturbation (L-inf {a.linf:.3f}, L2 {a.l2:.3f}). ")
    if cfg.threat == "classifier":
        goal = "leave its label" if cfg.target is None else f"reach class {cfg.target}"
        return head + (f"The bare classifier was **fooled** (the attack's goal: {goal})." if a.success else
                       f"The bare classifier **held** (the attack's goal was to {goal}).")
    # the adaptive attack is judged on noise draws of its own, not on the draw delta the view then purifies
    purifier = "one-shot denoising" if cfg.adaptive_sampler == "one-shot" else f"a {cfg.adaptive_steps}-step reverse chain"
    outcome = f"a label other than {prep.attack_label}" if cfg.target is None else f"class {cfg.target}"
    judged = (f"Adaptive, through the purifier ({purifier} at sigma {cfg.sigma:g}): on {cfg.eot_samples} fresh noise "
              f"draws of its own (not the draw shown below) it answered {outcome} on {100 * a.target_label_rate:.0f}%")
    held = ", a majority: **fooled** on those draws." if a.success else ", not a majority: it **held** on those draws."
    return head + judged + held + " DensePure's vote below is on another draw."


def result_json(prep: PreparedInput, result: PurifyResult, models: DensePureModels, cfg: PurifyConfig, seed: int,
                attack_name: str, attack_cfg: AttackConfig | None) -> dict:
    """The CLI's purify JSON (same keys), plus the clean and true labels and the attack (the CLI's attack JSON)."""
    attack = None
    if prep.attack is not None and attack_cfg is not None:
        source = "file name" if prep.true_label >= 0 else "classifier"
        attack = {"name": attack_name, **attack_json(prep.attack, attack_cfg, prep.attack_label, source)}
    return {**purify_json(result, cfg, seed, models), "clean_label": prep.clean_label, "true_label": prep.true_label,
            "attack": attack}


def stream_interval(ctx: AppContext) -> float:
    """Seconds between one request's live frames: STREAM_INTERVAL times the requests now computed together."""
    return STREAM_INTERVAL * max(1, ctx.batcher.sessions if ctx.batcher is not None else 1)


def make_handler(ctx: AppContext):
    """The `purify` endpoint: a generator of frames (see the module docstring)."""

    @ctx.gpu
    @user_errors
    def purify(req: PurifyRequest, progress: Any):
        inputs = parse_purify_view(req, ctx.pool.names)
        model, path, cfg, seed, attack_cfg = inputs.model, inputs.path, inputs.cfg, inputs.seed, inputs.attack
        models = ctx.pool.get(model)
        t_star, timesteps = check_budget(models, cfg, 1, limits_for(model).purify_evals, "this purification", model)
        size, labels = models.image_size, models.labels

        prep = None
        for item in prepare_input(models, path, attack_cfg):
            if isinstance(item, AttackProgress):
                progress((item.step, item.total), desc=f"attack: step {item.step}/{item.total}", unit="steps")
            else:
                prep = item
        assert prep is not None
        x = "x_a" if prep.attack is not None else "x"
        clean_img = gr.update(value=_display(prep.clean, size), label=f"clean x, as the model sees it ({size}x{size})")
        adv_img = gr.update(value=_display(prep.purifier_input, size),
                            label="attacked x_a (the purifier's input)" if prep.attack else "x (no attack: the purifier's input)")
        intro = input_line(prep, size, models.channels) + "\n\n" + attack_line(prep, req.attack, attack_cfg)
        status = intro + f"\n\nPurifying: t\\* = {t_star}, {len(timesteps)} reverse steps x {cfg.seeds} seeds..."
        yield replace(cleared(status), clean=clean_img, adversarial=adv_img).as_list()

        shown = set(column_indices(len(timesteps), MAX_GRID_COLUMNS))
        keep = column_indices(len(timesteps), MAX_SCRUB_FRAMES)
        scale = choose_scale(size, len(shown) + 1)
        cols_t, cols_x0, cols_lab, cols_ts = [], [], [], []
        last, result = time.monotonic(), None
        with ctx.engine(models) as engine_models:  # its network calls computed with concurrent requests' (batching)
            for item in purify_stream(engine_models, prep.purifier_input, cfg, seed, label_steps=shown | set(keep)):
                if isinstance(item, PurifyResult):
                    result = item
                    break
                frame: PurifyFrame = item
                progress((frame.step + 1, frame.total), desc=f"reverse step t = {frame.t}", unit="steps")
                if frame.step not in shown:
                    continue
                cols_t.append(frame.x_t)
                cols_x0.append(frame.x0)
                cols_lab.append(frame.labels)
                cols_ts.append(frame.t)
                if time.monotonic() - last >= stream_interval(ctx):
                    last = time.monotonic()
                    grid = trajectory_grid(cols_t, cols_x0, cols_ts, cols_lab, label_names=labels, scale=scale)
                    counts = [frame.labels.count(c) for c in range(len(labels))]
                    fig = vote_histogram_figure(counts, labels, title=f"Labels of the predicted x0 at t = {frame.t} (live)")
                    yield PurifyOutputs(grid=grid, votes=fig).as_list()
        assert result is not None

        grid = trajectory_grid(cols_t, cols_x0, cols_ts, cols_lab, result.purified, result.per_seed, labels, scale)
        tied = tied_labels(result.votes)
        title = (f"DensePure's vote: a tie of {' and '.join(labels[c] for c in tied)}, broken towards {labels[result.label]}"
                 if len(tied) > 1 else f"DensePure's vote: {labels[result.label]} ({result.votes[result.label]}/{cfg.seeds} seeds)")
        fig = vote_histogram_figure(result.votes, labels, title=title, winner=result.label,
                                    reference=prep.true_label if prep.true_label >= 0 else None)
        scrub = {
            "t": [result.frames[i].t for i in keep],
            "x_t": [result.frames[i].x_t for i in keep],
            "x0": [result.frames[i].x0 for i in keep],
            "labels": [result.frames[i].labels for i in keep],
            "scale": max(1, min(6, 96 // size)),
            "names": list(labels),
        }
        last_i = len(keep) - 1
        slider = gr.update(visible=True, minimum=0, maximum=max(last_i, 1), value=last_i, step=1, interactive=last_i > 0)
        scrub_img = step_view(scrub["x_t"][-1], scrub["x0"][-1], scrub["labels"][-1], scrub["t"][-1], scrub["scale"],
                              scrub["names"])
        text = intro + "\n\n" + verdict(prep, result, labels, cfg.seeds)
        noisy = gr.update(value=_display(result.noisy, size), label=f"{x} + delta (where the reverse process starts)")
        # the clean and attacked inputs went out with the first frame and stand: not drawn, encoded or fetched again
        yield PurifyOutputs(noisy=noisy, grid=grid, votes=fig, verdict=text,
                            result=result_json(prep, result, models, cfg, seed, req.attack, attack_cfg), scrub=slider,
                            scrub_image=scrub_img, scrub_state=scrub).as_list()

    return endpoint(PurifyRequest, shared(ctx, purify))


def request_key(ctx: AppContext, req: PurifyRequest) -> tuple:
    """What a purification's outputs depend on: the model, the file's bytes and true label, the configs, the seed."""
    p = parse_purify_view(req, ctx.pool.names)
    return "purify", p.model, file_digest(p.path), true_label(p.path), p.cfg, p.seed, choice(req.attack, "attack", ATTACKS), p.attack


def shared(ctx: AppContext, body):
    """`body(request, progress)`, with identical requests computed once (ctx.shared; see ui.shared_answers)."""

    def purify(req: PurifyRequest, progress: Any):
        try:
            key = request_key(ctx, req)
        except Exception:  # noqa: BLE001 - bad input: the handler itself reports it in one line
            key = None
        yield from answer_once(ctx.shared, key, lambda: body(req, progress))

    return purify


NEW_INPUT = new_input_note("Run DensePure", "results")


def cleared(note: str) -> PurifyOutputs:
    """Every result emptied and the verdict saying `note` (a new input, or a run starting over)."""
    return PurifyOutputs(None, None, None, None, None, note, None, gr.update(visible=False), None, None)


def scrub_view(index, scrub):
    """The K seeds at one stored reverse step (slider handler)."""
    if not scrub:
        return gr.skip()
    i = int(min(max(int(index or 0), 0), len(scrub["t"]) - 1))
    return step_view(scrub["x_t"][i], scrub["x0"][i], scrub["labels"][i], scrub["t"][i], scrub["scale"], scrub["names"])


def build(ctx: AppContext, model: gr.Dropdown) -> PurifyView:
    """Lay out the Purify view and wire its events."""
    d, a = PurifyConfig(), AttackConfig()
    gr.Markdown(
        "**Step 1 - purify.** Pick, draw or upload a digit, optionally attack it, then watch DensePure: "
        "add Gaussian noise (sigma), read the noisy image as a diffusion sample at step t\\*, run K seeded "
        "reverse trajectories back to a clean image, classify each and take the majority vote."
    )
    with gr.Row():
        with gr.Column(scale=2, min_width=280):
            image = image_input("Input image (x0)", ctx.default_image, elem_id="purify-image")
            with gr.Tabs():
                with gr.Tab("Samples"):
                    gallery = gr.Gallery(
                        value=[(str(s.path), s.caption) for s in ctx.samples], columns=5, height=220,
                        allow_preview=False, show_label=False, elem_classes=[PIXELATED], elem_id="purify-samples",
                        object_fit="contain", format="png",
                    )
                with gr.Tab("Draw"):
                    sketch = gr.Sketchpad(
                        label="Draw a digit (dark on light)", canvas_size=(224, 224), type="pil", image_mode="RGBA",
                        brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"), height=280,
                        elem_id="purify-sketch",
                    )
                    use_sketch = gr.Button("Use this drawing", size="sm")
        with gr.Column(scale=3, min_width=320):
            with gr.Accordion("Adversarial perturbation (optional)", open=False):
                attack = gr.Radio(list(ATTACKS), value="none", label="attack", info="FGSM: one signed-gradient step; PGD: iterated, projected")
                with gr.Row():
                    norm = gr.Radio([("L-inf", "linf"), ("L2", "l2")], value=a.norm, label="norm")
                    threat = gr.Radio([("bare classifier", "classifier"), ("adaptive (through the purifier)", "adaptive")],
                                      value=a.threat, label="threat model")
                with gr.Row():
                    eps = gr.Slider(0.0, 4.0, value=a.eps, step=0.01, label="epsilon",
                                    info="L-inf: at most 1 (try 0.1-0.3); L2: try 0.5-3")
                    attack_steps = gr.Slider(1, LIMITS.attack_steps, value=a.steps, step=1, label="PGD steps")
            sigma = sigma_slider(d.sigma)
            with gr.Row():
                seeds = gr.Slider(1, LIMITS.purify_seeds, value=d.seeds, step=1, label="K (reverse seeds)")
                steps = gr.Slider(1, LIMITS.steps, value=d.steps, step=1, label="b (steps of the fast sampler)",
                                  elem_id="purify-steps")
            with gr.Row():
                sampler = gr.Radio(list(SAMPLERS), value=d.sampler, label="sampler",
                                   info="one-shot: x0 predicted at t*; fast: b respaced steps; full: every step")
                seed = seed_input()
            with gr.Row():
                run = gr.Button("Run DensePure", variant="primary", elem_id="purify-run")
                stop = gr.Button("Stop", variant="stop")
                # a queued Run shows its place in line here, then its progress: next to the button, above the fold
                run_status = gr.Markdown("", min_height=44, min_width=160, elem_id="purify-run-status")
    stories = gr.Column()  # filled below, once the outputs exist
    with gr.Row():
        clean_img = image_output("clean x, as the model sees it", elem_id="purify-clean")
        adv_img = image_output("the purifier's input (x, or the attacked x_a)")
        noisy_img = image_output("the input + delta (where the reverse process starts)")
    verdict_md = gr.Markdown(label="verdict", elem_id="purify-verdict", elem_classes=["verdict"])
    with gr.Row():
        with gr.Column(scale=3):
            gr.Markdown("**Reverse trajectories** - rows: seeds k; columns: steps t; each cell: x_t above the predicted "
                        "x0, framed in the colour of its label; last column: the purified images (the votes).")
            grid = image_output("reverse trajectories", height=None, elem_id="purify-grid", big=False, show_label=False,
                                legend=True)
        with gr.Column(scale=2):
            votes = gr.Plot(label="Vote histogram", elem_id="purify-votes")
    scrub = gr.Slider(0, 1, value=0, step=1, label="scrub through the reverse steps", visible=False)
    scrub_img = image_output("the K seeds at the chosen step", height=None, elem_id="purify-scrub", big=False, legend=True)
    scrub_state = gr.State(None)
    with gr.Accordion("Result as JSON (as the CLI's --json)", open=False):
        result = gr.JSON(label="result")
    glossary_accordion()
    with gr.Accordion("What am I looking at?", open=False):
        gr.Markdown(
            "Each row is one reverse seed k. A cell shows the sample x_t (scaled back by sqrt(alpha_bar_t)) above "
            "the diffusion model's prediction of the clean image at that step; its frame has the colour of the "
            "classifier's label for that prediction. The last column holds the purified images: their labels are "
            "the votes. With a large sigma the seeds can disagree; the vote picks the label of the region where "
            "the posterior p(x0 | x + delta) has the most mass, which is what DensePure certifies."
        )

    outputs = PurifyOutputs(clean_img, adv_img, noisy_img, grid, votes, verdict_md, result, scrub, scrub_img, scrub_state)
    controls = {"image": image, "model": model, "sigma": sigma, "seeds": seeds, "sampler": sampler, "steps": steps,
                "seed": seed, "attack": attack, "norm": norm, "eps": eps, "attack_steps": attack_steps, "threat": threat}
    inputs = in_order(PurifyRequest, controls)
    follow_model(model, "purify", {"seeds": (seeds, "purify_seeds"), "steps": (steps, "steps"),
                                   "attack_steps": (attack_steps, "attack_steps")})
    handler = make_handler(ctx)
    # queue position and progress beside Run, none over the grid: its columns stream in as the digits emerge
    lane = {"concurrency_id": INTERACTIVE, "concurrency_limit": ctx.interactive_limit, "show_progress_on": [run_status]}
    event = run.click(handler, inputs, outputs.as_list(), api_name="purify", **lane)
    with stories:
        story_events = story_row("purify", inputs,
                                 {"fn": handler, "inputs": inputs, "outputs": outputs.as_list(), **lane}, run)
    stop.click(None, None, None, cancels=[event, *story_events])
    scrub.change(scrub_view, [scrub, scrub_state], scrub_img, api_visibility="private", show_progress="hidden")

    def pick(evt: gr.SelectData):
        return str(ctx.samples[evt.index].path) if 0 <= evt.index < len(ctx.samples) else gr.skip()

    # results belong to the input they were computed for: a new image (picked, uploaded, drawn) clears them
    new_input = {"fn": lambda: cleared(NEW_INPUT).as_list(), "inputs": None, "outputs": outputs.as_list(), "queue": False,
                 "api_visibility": "private", "show_progress": "hidden"}
    image.input(**new_input)
    gallery.select(pick, None, image, api_visibility="private").then(**new_input)
    use_sketch.click(drawing_to_image, sketch, image, api_visibility="private").success(**new_input)
    return PurifyView(controls, outputs, event)


@user_errors
def drawing_to_image(value):
    """The sketchpad's drawing composited onto white (dark strokes on light paper, as to_tensor expects)."""
    from PIL import Image

    composite = (value or {}).get("composite") if isinstance(value, dict) else None
    if composite is None:
        raise InputError("draw something first")
    rgba = composite.convert("RGBA")
    paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    drawing = Image.alpha_composite(paper, rgba).convert("L")
    if drawing.getextrema()[0] > 250:
        raise InputError("the canvas is empty: draw a digit first")
    return drawing
