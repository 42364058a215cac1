"""View 2, Certify: randomized-smoothing CERTIFY (Cohen et al. 2019) with DensePure as the base classifier.

DensePure is certified with the anytime-valid confidence sequence of `sequential` (exactly the CLI's
`certify --sequential`): at every look the view shows the lower and upper bounds on p_A and the
radius they certify, which is a real certificate at that moment, next to the fixed-n Clopper-Pearson
bound on the same draws (valid only had n been fixed in advance: the gap is the price of validity).
With a target radius and "stop when decided" the run stops as soon as it decides. The result card
puts DensePure next to one-shot denoising (Carlini et al. 2023) and the bare smoothed classifier,
certified with fixed-n CERTIFY on the same seeded noise draws.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gradio as gr
from scipy.stats import norm

from densepure_viz.smoothing.certify import (
    CertifyConfig,
    CertifyProgress,
    CertifyResult,
    RadiusPicture,
    certified_radius,
    certify_stream,
    max_certified_radius,
    perturb_by_radius,
)
from densepure_viz.engine.diffusion import SAMPLERS
from densepure_viz.models.inputs import load_input
from densepure_viz.models.images import to_pil
from densepure_viz.viz.plots.images import confidence_sequence_figure, lower_bound_figure
from densepure_viz.smoothing.base import smoothed
from densepure_viz.serving.reports import certificate_json, sequential_json
from densepure_viz.engine.seeding import Stream, make_generator
from densepure_viz.smoothing.sequential import (
    SequentialConfig,
    SequentialResult,
    fixed_n_lower,
    lower_bound_curve,
    sequential_certify_stream,
)
from densepure_viz.serving.ui.components import (follow_model, glossary_accordion, image_input, image_output, new_input_note,
                                         seed_input, sigma_slider, view_defaults)
from densepure_viz.serving.api import CertifyRequest, in_order
from densepure_viz.serving.ui.requests import check_budget, endpoint, parse_certify, parse_purify
from densepure_viz.serving.ui.session import LONG, AppContext
from densepure_viz.serving.ui.story_buttons import story_row
from densepure_viz.serving.ui.validation import LIMITS, image_file, integer, limits_for, model_id, number, user_errors
from densepure_viz.teaching.glossary import VIEW_STEPS

PROGRESS_CHUNK = 64  # draws per progress report (results do not depend on it: every draw has its own stream)


@dataclass
class CardRow:
    """One line of the result card: a certificate (or an abstention) of one smoothed classifier."""

    name: str  # which smoothed classifier
    label: int | None  # certified class, None when abstaining
    top_class: int  # the class the count is of
    p_lower: float  # lower bound on its probability
    radius: float  # certified L2 radius
    count: int  # draws voting for the top class
    draws: int  # estimation draws used
    how: str  # "anytime-valid", "fixed n", ...


def fixed_row(name: str, r: CertifyResult) -> CardRow:
    return CardRow(name, r.label, r.guess, r.p_lower, r.radius, r.count, r.n, "fixed n")


def sequential_rows(name: str, r: SequentialResult) -> list[CardRow]:
    """The anytime-valid certificate, and the fixed-n Clopper-Pearson bound on the same draws beside it."""
    count = r.counts[r.top_class]
    fixed = fixed_n_lower(r.counts, r.top_class, r.draws_used, r.alpha)
    decided = f"anytime-valid: {r.decision.replace('_', ' ')}" + (f" at R = {r.target_radius:g}" if r.target_radius else "")
    return [CardRow(name, r.label, r.top_class, r.p_lower, r.radius, count, r.draws_used, decided),
            CardRow("... the same draws, had n been fixed in advance", r.top_class if fixed > 0.5 else None, r.top_class,
                    fixed, certified_radius(fixed, r.sigma), count, r.draws_used, "fixed n (not valid when peeking)")]


def _line(row: CardRow | str, labels: tuple[str, ...]) -> str:
    if isinstance(row, str):  # not computed yet
        return f"| {row} | ... | | | | |"
    verdict = f"**{labels[row.label]}**" if row.label is not None else f"abstain (top class {labels[row.top_class]})"
    return f"| {row.name} | {verdict} | {row.p_lower:.4f} | {row.radius:.4f} | {row.count}/{row.draws} | {row.how} |"


def card(rows: list[CardRow | str], labels: tuple[str, ...], alpha: float, sigma: float, n: int) -> str:
    """The result card: label or abstain, p_lower, radius and count per smoothed classifier, and what n buys."""
    head = ["| smoothed classifier | label | p_lower | certified L2 radius | count of the top class | bound |",
            "|---|---|---|---|---|---|"]
    note = (f"\n\nWith probability at least 1 - {alpha:g}, every input within the radius (L2, on [0, 1] pixels) "
            "gets the same label from the smoothed classifier. *Abstain* means p_lower <= 1/2. "
            f"With n = {n} draws no radius above {max_certified_radius(n, alpha, sigma):.3f} can be certified "
            f"(every draw agreeing); n = {10 * n} would allow {max_certified_radius(10 * n, alpha, sigma):.3f}, "
            "at up to ten times the time.")
    return "\n".join(head + [_line(r, labels) for r in rows]) + note


def make_handler(ctx: AppContext):
    """The `certify` endpoint: a generator yielding the growing certificate, then the certificates."""

    @ctx.gpu
    @user_errors
    def certify(req: CertifyRequest, progress: Any):
        model = model_id(req.model, ctx.pool.names)
        path, cfg, seed = parse_purify(req, "certify")
        ccfg = parse_certify(req)
        target = float(number(req.target, "target radius", 0.0, LIMITS.radius))
        scfg = SequentialConfig(alpha=ccfg.alpha, n=ccfg.n, n0=ccfg.n0,
                                radius=target if target > 0 and req.stop_early else None)
        compare = bool(req.compare)
        models = ctx.pool.get(model)
        t_star, _ = check_budget(models, cfg, ccfg.n0 + ccfg.n, limits_for(model).certify_evals, "this certification", model)
        x = load_input(path, models)  # the CLI's loader: same tensor, same certificate
        labels = models.labels
        densepure = smoothed(models, x, "densepure", cfg, seed)
        chunk = min(densepure.chunk, PROGRESS_CHUNK)  # every method reports progress at DensePure's pace
        name = f"DensePure (K={cfg.seeds}, {cfg.sampler}{f' b={cfg.steps}' if cfg.sampler == 'fast' else ''})"
        rows: list[CardRow | str] = [name]
        total = (3 if compare else 1) * (ccfg.n0 + ccfg.n)
        out: dict = {"model": model, "t_star": t_star}
        threshold = float(norm.cdf(target / cfg.sigma)) if target > 0 else None
        looks: dict[str, list] = {"draws": [], "lower": [], "upper": [], "fixed": []}
        start = time.perf_counter()
        for item in sequential_certify_stream(densepure.base, models.num_classes, cfg.sigma, scfg, chunk):
            if isinstance(item, SequentialResult):
                result = item
                break
            progress((ccfg.n0 + item.draws, total), desc=f"{name}: draws", unit="draws")
            for key, value in zip(looks, (item.draws, item.p_lower, item.p_upper,
                                          fixed_n_lower(item.counts, item.top_class, item.draws, ccfg.alpha))):
                looks[key].append(value)
            fig = confidence_sequence_figure(*looks.values(), threshold=threshold)
            status = (f"**{name}**, {item.draws}/{ccfg.n} draws: certified radius **{item.radius:.4f}** for class "
                      f"{labels[item.top_class]} (p_lower {item.p_lower:.4f}, p_upper {item.p_upper:.4f}). Anytime-valid: "
                      "this is a certificate now, whenever the run stops.")
            yield fig, status, card(rows, labels, ccfg.alpha, cfg.sigma, ccfg.n), gr.skip()
        rows = sequential_rows(name, result)
        out["densepure"] = {**sequential_json(result, cfg, t_star, time.perf_counter() - start),
                            "label_name": None if result.label is None else labels[result.label],
                            "fixed_n_p_lower": rows[1].p_lower, "fixed_n_radius": rows[1].radius}
        fig = confidence_sequence_figure(*looks.values(), threshold=threshold,
                                         title=f"DensePure: {result.decision.replace('_', ' ')} after {result.draws_used} draws")
        if compare:  # fixed-n CERTIFY on the same draws: its bound exists only once all n are in
            for runs_before, (key, label, method) in enumerate([
                ("one_shot", "one-shot denoising (Carlini et al.)", "one-shot"),
                ("bare", "bare classifier (Cohen et al.)", "bare"),
            ], start=1):  # DensePure's run came first
                start, done_before = time.perf_counter(), runs_before * (ccfg.n0 + ccfg.n)
                other = smoothed(models, x, method, cfg, seed)
                for item in certify_stream(other.base, models.num_classes, cfg.sigma, ccfg, chunk):
                    if isinstance(item, CertifyProgress):
                        done = done_before + item.done + (ccfg.n0 if item.phase == Stream.ESTIMATE else 0)
                        progress((done, total), desc=f"{label}: draws", unit="draws")
                    else:
                        rows.append(fixed_row(label, item))
                        out[key] = certificate_json(item, other.purifier, t_star, time.perf_counter() - start)
                yield fig, f"**{label}** certified (fixed n)...", card(rows, labels, ccfg.alpha, cfg.sigma, ccfg.n), gr.skip()
        status = (f"**Certified** label {labels[result.label]} within L2 radius {result.radius:.4f} "
                  f"(anytime-valid, {result.draws_used} draws)" if result.label is not None else
                  f"**DensePure does not certify** ({result.decision.replace('_', ' ')}; top class {labels[result.top_class]})")
        yield fig, status, card(rows, labels, ccfg.alpha, cfg.sigma, ccfg.n), out

    return endpoint(CertifyRequest, certify)


def scale_line(picture: RadiusPicture, size: int, channels: int) -> str:
    """The certified radius in pixels: its per-value RMS, and what the picture beside it shows."""
    r = picture.radius
    if r <= 0:
        return ("**No radius to picture:** DensePure abstained (p_lower <= 1/2), so nothing around this input is "
                "certified. The plot shows how many of the draws would have had to vote for the top class.")
    shape = f"{size}x{size}" + ("" if channels == 1 else f"x{channels}")
    text = (f"**How big is {r:.2f}?** An L2 radius of {r:.2f} on {shape} = {picture.values} values in [0, 1] is "
            f"**{picture.rms:.3f} per value (RMS)**, {100 * picture.rms:.1f}% of the pixel range, were the change spread "
            f"evenly. Right: the input moved by exactly {picture.reached:.2f} in L2 along a seeded random direction "
            f"(largest change of one value {picture.max_change:.2f}). Every image this close gets the certified label.")
    if picture.stretch > r * 1.0001:
        text += (f" Clipping to [0, 1] shortens such a move where pixels are already 0 or 1, so the direction was "
                 f"scaled to {picture.stretch:.2f} before clipping to land at exactly {picture.reached:.2f}.")
    if picture.reached < r - 1e-6:
        text += f" (The [0, 1] box cannot hold a move of {r:.2f} in this direction: it reaches {picture.reached:.2f}.)"
    return text


def make_explainer(ctx: AppContext):
    """After a certification: the radius in pixels (text, input, input moved by the radius) and p_lower vs nA."""

    @user_errors
    def explain(out, image, model, seed):
        if not out or "densepure" not in out:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        d = out["densepure"]
        models = ctx.pool.get(model_id(model, ctx.pool.names))
        x = load_input(image_file(image), models)
        picture = perturb_by_radius(x, float(d["radius"]), make_generator(integer(seed, "seed", 0, LIMITS.seed), Stream.RADIUS))
        curve = lower_bound_curve(int(d["draws_used"]), float(d["alpha"]), float(d["sigma"]))
        scale = max(1, 128 // models.image_size)
        moved = to_pil(picture.perturbed.cpu(), scale) if picture.radius > 0 else None  # abstained: nothing to move
        return (scale_line(picture, models.image_size, models.channels), to_pil(x.cpu(), scale), moved,
                lower_bound_figure(curve, int(d["count"]), float(d["p_lower"])))

    return explain


NEW_INPUT = new_input_note("Certify", "certificates")


def stopped_note() -> str:
    """What Stop leaves on screen: which running numbers are a certificate and which are not."""
    return ("**Stopped.** DensePure's last radius above is anytime-valid: it stands as a certificate for the draws "
            "made. A fixed-n comparison that was still running is not a certificate. Press Certify to run again.")


def build(ctx: AppContext, model: gr.Dropdown, purify_image) -> tuple:
    """Lay out the Certify view and wire its events; returns (run event, image input)."""
    d = view_defaults("certify", ctx.pool.default)  # the endpoint's defaults, the opening model's own (its K and b)
    gr.Markdown(VIEW_STEPS["certify"])
    with gr.Row():
        with gr.Column(scale=2, min_width=260):
            image = image_input("Image to certify (follows the Purify view's input)", ctx.default_image, height=220,
                                elem_id="certify-image")
        with gr.Column(scale=3, min_width=320):
            sigma = sigma_slider(d.sigma)
            with gr.Row():
                n0 = gr.Slider(1, LIMITS.n0, value=d.n0, step=1, label="n0 (selection draws)", elem_id="certify-n0")
                n = gr.Slider(10, LIMITS.n, value=d.n, step=10, label="n (estimation draws)", elem_id="certify-n",
                              info="more draws certify larger radii, at proportionally more time")
                alpha = gr.Number(value=d.alpha, label="alpha (failure probability)", minimum=1e-10, maximum=0.49)
            with gr.Row():
                seeds = gr.Slider(1, LIMITS.certify_seeds, value=d.seeds, step=1, label="K (seeds per draw)")
                sampler = gr.Radio(list(SAMPLERS), value=d.sampler, label="sampler")
                steps = gr.Slider(1, LIMITS.steps, value=d.steps, step=1, label="b (fast sampler steps)")
            with gr.Row():
                target = gr.Number(value=d.target, minimum=0, maximum=LIMITS.radius, label="target radius R (0: none)",
                                   info="decide whether DensePure is certified at R", elem_id="certify-target")
                stop_early = gr.Checkbox(d.stop_early, label="stop when decided", info="at R, as soon as the bounds decide")
            with gr.Row():
                seed = seed_input(d.seed)
                compare = gr.Checkbox(d.compare, label="also certify one-shot denoising and the bare classifier")
            with gr.Row():
                run = gr.Button("Certify", variant="primary", elem_id="certify-run")
                stop = gr.Button("Stop", variant="stop")
    stories = gr.Column()  # filled below, once the outputs exist
    status = gr.Markdown(label="status", elem_id="certify-status")
    result_card = gr.Markdown(label="certificates", elem_id="certify-card")
    counts = gr.Plot(label="bounds on p_A against draws", elem_id="certify-counts")
    with gr.Row():
        with gr.Column(scale=2, min_width=280):
            scale_md = gr.Markdown(elem_id="certify-scale")
            with gr.Row():
                scale_input = image_output("x", height=160, elem_id="certify-scale-input")
                scale_moved = image_output("x moved by the radius", height=160, elem_id="certify-scale-moved")
        with gr.Column(scale=3, min_width=320):
            lower_plot = gr.Plot(label="p_lower against the count", elem_id="certify-lower-bound")
    with gr.Accordion("Certificates as JSON (DensePure's is the CLI's certify --sequential --json)", open=False):
        result = gr.JSON(label="certificates")
    glossary_accordion()
    follow_model(model, "certify", {"seeds": (seeds, "certify_seeds"), "steps": (steps, "steps"), "n0": (n0, "n0"),
                                    "n": (n, "n")})
    handler = make_handler(ctx)
    inputs = in_order(CertifyRequest, {"image": image, "model": model, "sigma": sigma, "seeds": seeds, "sampler": sampler,
                                       "steps": steps, "seed": seed, "n0": n0, "n": n, "alpha": alpha, "compare": compare,
                                       "target": target, "stop_early": stop_early})
    run_event = {"fn": handler, "inputs": inputs, "outputs": [counts, status, result_card, result],
                 "concurrency_id": LONG, "concurrency_limit": 1}
    explain = {"fn": make_explainer(ctx), "inputs": [result, image, model, seed],
               "outputs": [scale_md, scale_input, scale_moved, lower_plot], "show_progress": "hidden"}
    event = run.click(**run_event, api_name="certify")
    event.success(**explain, api_visibility="private")
    with stories:
        story_events = story_row("certify", inputs, run_event, run, after=explain)
    stop.click(stopped_note, None, status, cancels=[event, *story_events], api_visibility="private")
    # certificates belong to the image they were computed for: a new one (uploaded here, or following the Purify
    # view's) clears them
    results = [counts, status, result_card, result, *explain["outputs"]]
    new_input = {"fn": lambda: [None, NEW_INPUT, *[None] * (len(results) - 2)], "inputs": None, "outputs": results,
                 "queue": False, "api_visibility": "private", "show_progress": "hidden"}
    image.input(**new_input)
    purify_image.change(lambda v: v, purify_image, image, api_visibility="private", show_progress="hidden").then(**new_input)
    return event, image
