"""View 2, Certify: randomized-smoothing CERTIFY (Cohen et al. 2019) with DensePure as the base classifier.

As draws accumulate the view shows the running vote counts and the running Clopper-Pearson bound
and radius, labelled as a preview: only the final numbers are a certificate. The result card puts
DensePure next to one-shot denoising (Carlini et al. 2023) and the bare smoothed classifier, all on
the same seeded noise draws. DensePure's certificate is computed exactly as the CLI's `certify`.
"""

from __future__ import annotations

import time

import gradio as gr

from densepure_viz.certify import CertifyConfig, CertifyProgress, CertifyResult, certify_stream, max_certified_radius
from densepure_viz.diffusion import SAMPLERS
from densepure_viz.inputs import load_input
from densepure_viz.plots.images import certify_progress_figure
from densepure_viz.purify import CERTIFY_PURIFIER, PurifyConfig, bare_base, densepure_base
from densepure_viz.reports import certificate_json
from densepure_viz.runtime import auto_batch
from densepure_viz.seeding import Stream
from densepure_viz.ui.components import image_input, seed_input, sigma_slider
from densepure_viz.ui.requests import check_budget, parse_certify, parse_purify
from densepure_viz.ui.session import LONG, AppContext, gpu
from densepure_viz.ui.validation import LIMITS, model_id, user_errors

CLASSROOM = CertifyConfig(n0=10, n=100)  # the view's preset: seconds on a laptop CPU (the CLI's default n is 1000)
PROGRESS_CHUNK = 64  # draws per progress report (results do not depend on it: every draw has its own stream)


def _row(name: str, r: CertifyResult | None, labels: tuple[str, ...]) -> str:
    if r is None:
        return f"| {name} | ... | | | |"
    verdict = f"**{labels[r.label]}**" if r.label is not None else f"abstain (top class {labels[r.guess]})"
    return f"| {name} | {verdict} | {r.p_lower:.4f} | {r.radius:.4f} | {r.count}/{r.n} |"


def card(rows: list[tuple[str, CertifyResult | None]], labels: tuple[str, ...], alpha: float) -> str:
    """The result card: label or abstain, p_lower, radius and count per smoothed classifier, and what n buys."""
    head = ["| smoothed classifier | label | p_lower | certified L2 radius | count of the top class |", "|---|---|---|---|---|"]
    body = [_row(name, r, labels) for name, r in rows]
    note = (f"\n\nWith probability at least 1 - {alpha:g}, every input within the radius (L2, on [0, 1] pixels) "
            "gets the same label from the smoothed classifier. *Abstain* means p_lower <= 1/2.")
    done = [r for _, r in rows if r is not None]
    if done:
        r = done[0]
        bigger = 10 * r.n
        note += (f" With n = {r.n} draws no radius above {max_certified_radius(r.n, alpha, r.sigma):.3f} can be certified "
                 f"(every draw agreeing); n = {bigger} would allow {max_certified_radius(bigger, alpha, r.sigma):.3f}, "
                 "at ten times the time.")
    return "\n".join(head + body) + note


def make_handler(ctx: AppContext):
    """The `certify` endpoint: a generator yielding running counts, then the certificates."""

    @gpu
    @user_errors
    def certify(image, model, sigma, seeds, sampler, steps, seed, n0, n, alpha, compare, progress=gr.Progress()):
        model = model_id(model, ctx.pool.names)
        path, cfg, seed = parse_purify(image, sigma, seeds, sampler, steps, seed, max_seeds=LIMITS.certify_seeds)
        ccfg = parse_certify(n0, n, alpha)
        compare = bool(compare)
        models = ctx.pool.get(model)
        t_star, _ = check_budget(models, cfg, ccfg.n0 + ccfg.n, LIMITS.certify_evals, "this certification")
        x = load_input(path, models)  # the CLI's loader: same tensor, same certificate
        labels = models.labels
        chunk = max(1, min(auto_batch(models) // cfg.seeds, PROGRESS_CHUNK))
        one_shot = PurifyConfig(sigma=cfg.sigma, seeds=1, sampler="one-shot", steps=cfg.steps)
        methods = [(f"DensePure (K={cfg.seeds}, {cfg.sampler}{f' b={cfg.steps}' if cfg.sampler == 'fast' else ''})",
                    "densepure", cfg, densepure_base(models, x, cfg, seed))]
        if compare:
            methods += [("one-shot denoising (Carlini et al.)", "one_shot", one_shot, densepure_base(models, x, one_shot, seed)),
                        ("bare classifier (Cohen et al.)", "bare", None, bare_base(models, x, cfg.sigma, seed))]
        rows: list[tuple[str, CertifyResult | None]] = [(name, None) for name, *_ in methods]
        out: dict = {"model": model, "t_star": t_star}
        total = len(methods) * (ccfg.n0 + ccfg.n)
        done_before, last = 0, 0.0
        for i, (name, key, purifier, base) in enumerate(methods):
            start = time.perf_counter()
            for item in certify_stream(base, models.num_classes, cfg.sigma, ccfg, chunk):
                if isinstance(item, CertifyProgress):
                    phase = "selection" if item.phase == Stream.SELECT else "estimation"
                    done = done_before + item.done + (ccfg.n0 if item.phase == Stream.ESTIMATE else 0)
                    progress((done, total), desc=f"{name}: {phase} draws", unit="draws")
                    if time.monotonic() - last < 0.25 and item.done < item.total:
                        continue
                    last = time.monotonic()
                    estimating = item.phase == Stream.ESTIMATE
                    fig = certify_progress_figure(
                        item.counts, labels, f"{name} - {phase}", item.done, item.total,
                        p_lower=item.preview_p_lower if estimating else None,
                        radius=item.preview_radius if estimating else None,
                    )
                    status = (f"**{name}**: {phase} draws {item.done}/{item.total}" +
                              (f"; running p_lower {item.preview_p_lower:.4f}, radius {item.preview_radius:.4f} "
                               "(*preview - the certificate is the final one*)" if estimating else ""))
                    yield fig, status, card(rows, labels, ccfg.alpha), gr.skip()
                else:
                    rows[i] = (name, item)
                    out[key] = certificate_json(item, purifier, t_star, time.perf_counter() - start)
            done_before += ccfg.n0 + ccfg.n
        first = rows[0][1]
        assert first is not None
        fig = certify_progress_figure(first.counts, labels, "DensePure", first.n, first.n, guess=first.guess,
                                      p_lower=first.p_lower, radius=first.radius, final=True)
        status = ("**Certified** label " + labels[first.label] + f" within L2 radius {first.radius:.4f}"
                  if first.label is not None else "**DensePure abstains** (p_lower <= 1/2)")
        yield fig, status, card(rows, labels, ccfg.alpha), out

    return certify


def stopped_note() -> str:
    """What Stop leaves on screen: the running numbers are not a certificate."""
    return ("**Stopped.** The counts and the running p_lower above come from the draws made so far; they are not a "
            "certificate. Press Certify to run it to the end.")


def build(ctx: AppContext, model: gr.Dropdown, purify_image) -> tuple:
    """Lay out the Certify view and wire its events; returns (run event, image input)."""
    d, c = CERTIFY_PURIFIER, CLASSROOM
    gr.Markdown(
        "**Step 2 - certify.** Randomized smoothing turns DensePure into a classifier with a guarantee: draw "
        "n0 noisy copies to guess the top class, n more to bound its probability p_lower from below "
        "(Clopper-Pearson, confidence 1 - alpha), and certify the L2 radius sigma * Phi^-1(p_lower)."
    )
    with gr.Row():
        with gr.Column(scale=2, min_width=260):
            image = image_input("Image to certify (follows the Purify view's input)", ctx.default_image, height=220,
                                elem_id="certify-image")
        with gr.Column(scale=3, min_width=320):
            sigma = sigma_slider(d.sigma)
            with gr.Row():
                n0 = gr.Slider(1, LIMITS.n0, value=c.n0, step=1, label="n0 (selection draws)", elem_id="certify-n0")
                n = gr.Slider(10, LIMITS.n, value=c.n, step=10, label="n (estimation draws)", elem_id="certify-n",
                              info="more draws certify larger radii, at proportionally more time")
                alpha = gr.Number(value=c.alpha, label="alpha (failure probability)", minimum=1e-10, maximum=0.49)
            with gr.Row():
                seeds = gr.Slider(1, LIMITS.certify_seeds, value=d.seeds, step=1, label="K (seeds per draw)")
                sampler = gr.Radio(list(SAMPLERS), value=d.sampler, label="sampler")
                steps = gr.Slider(1, LIMITS.steps, value=d.steps, step=1, label="b (fast sampler steps)")
            with gr.Row():
                seed = seed_input()
                compare = gr.Checkbox(True, label="also certify one-shot denoising and the bare classifier")
            with gr.Row():
                run = gr.Button("Certify", variant="primary", elem_id="certify-run")
                stop = gr.Button("Stop", variant="stop")
    status = gr.Markdown(label="status", elem_id="certify-status")
    result_card = gr.Markdown(label="certificates", elem_id="certify-card")
    counts = gr.Plot(label="vote counts", elem_id="certify-counts")
    with gr.Accordion("Certificates as JSON (DensePure's is the CLI's certify --json)", open=False):
        result = gr.JSON(label="certificates")
    handler = make_handler(ctx)
    inputs = [image, model, sigma, seeds, sampler, steps, seed, n0, n, alpha, compare]
    event = run.click(handler, inputs, [counts, status, result_card, result], api_name="certify",
                      concurrency_id=LONG, concurrency_limit=1)
    stop.click(stopped_note, None, status, cancels=[event], api_visibility="private")
    purify_image.change(lambda v: v, purify_image, image, api_visibility="private", show_progress="hidden")
    return event, image
