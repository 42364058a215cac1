"""View 4, High-density points: the image world told like the 2D world (densepure_viz.experiments.projections).

For the Purify view's image and attack, with this view's own sigma, K, sampler and b: the training images
on PCA axes, coloured by class,
with x0, x_a, n noised inputs and their K x n reversed samples (coloured by label), and the exact
highest-density point of the finite training set under sigma - what an ideal diffusion model trained
on that set would return - with its label masses next to DensePure's vote shares.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from densepure_viz.engine.diffusion import SAMPLERS
from densepure_viz.errors import InputError
from densepure_viz.viz.grids import image_row
from densepure_viz.viz.plots.images import label_mass_figure, projection_figure
from densepure_viz.experiments.projections import high_density
from densepure_viz.serving.ui.components import follow_model, new_input_note, seed_input, sigma_slider, written_whole
from densepure_viz.attacks.prepare import run_prepare
from densepure_viz.serving.api import DensityRequest, arguments, in_order
from densepure_viz.serving.ui.requests import check_budget, endpoint, input_name, parse_purify_view
from densepure_viz.serving.ui.session import INTERACTIVE, AppContext
from densepure_viz.serving.ui.validation import LIMITS, capped, choice, limits_for, user_errors

NEW_INPUT = new_input_note("Compute", "projections")


def make_handler(ctx: AppContext):
    """The `density` endpoint."""

    @ctx.gpu
    @user_errors
    def density(req: DensityRequest, progress: Any):
        inputs = parse_purify_view(req, ctx.pool.names)
        model, path, cfg, seed, attack_cfg = inputs.model, inputs.path, inputs.cfg, inputs.seed, inputs.attack
        limits = limits_for(model)
        draws = capped(req.draws, "n (noise draws)", "density_draws", model)
        dims = parse_dims(req.dims)
        models = ctx.pool.get(model)
        check_budget(models, cfg, draws, limits.purify_evals, "this projection", model)
        progress(0.05, desc="training set and PCA")
        train, pca = ctx.caches.training(model, models.image_size)
        if tuple(train.images.shape[1:]) != (models.channels, models.image_size, models.image_size):
            raise InputError(f"the training images do not match the model's {models.channels}x{models.image_size}x{models.image_size} inputs")
        progress(0.2, desc="input (and attack)")
        prep = run_prepare(models, path, attack_cfg)
        progress(0.4, desc=f"{draws} x {cfg.seeds} reverse trajectories")
        with ctx.engine(models) as engine_models:  # its network calls computed with concurrent requests' (batching)
            view = high_density(engine_models, train, pca, prep.clean, prep.clean_label, prep.purifier_input,
                                prep.attack is not None, cfg, seed, draws)
        post, labels = view.posterior, models.labels
        fig = projection_figure(view.scene, labels, dims)
        mass = label_mass_figure(post.label_mass.tolist(), labels, view.shares,
                                 title="Ideal denoiser of the training set<br>vs DensePure's K votes (draw 0)")
        pictures = image_row(view.pictures, view.picture_labels,
                             ["x0", "x_a" if prep.attack is not None else "input", "x + delta", "highest density", "posterior mean"],
                             scale=max(1, 96 // models.image_size))
        whose = "its attacked version x_a" if prep.attack is not None else "no attack"
        text = "\n".join([
            f"**Image: {input_name(path)}**, the Purify view's input ({whose}), at sigma {cfg.sigma:g}.",
            "",
            f"- **Highest-density point** of the {view.train_size} training images under sigma = {cfg.sigma:g} "
            f"(model-space std {post.model_std:g}): training image #{post.index}, label **{labels[post.label]}**, "
            f"weight {float(post.weights[post.index]):.3f} (effective number of images {post.effective_size:.1f}).",
            f"- **Label mass** (the ideal vote): {labels[post.vote_label]} with {float(post.label_mass.max()):.3f}; "
            f"the posterior mean (ideal one-shot denoiser) is classified **{labels[view.picture_labels[-1]]}**.",
            f"- **DensePure** on the same draw: votes {view.votes} -> **{labels[view.majority[0]]}**; over {draws} "
            f"draws its votes are {view.majority}.",
        ])
        return fig, pictures, mass, text, {"scene": view.scene, "labels": labels}

    return endpoint(DensityRequest, density)


def parse_dims(dims) -> int:
    """The projection's number of axes, 2 or 3 (the radio sends an int, the API may send a string)."""
    return int(choice(int(dims) if str(dims) in ("2", "3") else dims, "dims", (2, 3)))


def replot(state, dims):
    """The stored scene on 2 or 3 axes (the projection radio): no recomputation."""
    if not state:
        return gr.skip()
    return projection_figure(state["scene"], state["labels"], parse_dims(dims))


def build(ctx: AppContext, model: gr.Dropdown, purify) -> tuple[list, Callable[[], tuple]]:
    """Lay out the High-density view (the Purify view's image and attack, its own DensePure settings).

    Returns the outputs and a function computing the first view (the configs' defaults), for the page load.
    """
    gr.Markdown(
        "**Step 4 - the same story on images.** DensePure's reverse process samples p(x0 | x + delta). For the "
        "finite training set the exact posterior puts weight exp(-|x~ - x_i|^2 / (2 s^2)) on each training image: "
        "its **highest-density point** is the training image an ideal diffusion model would return, and its label "
        "mass is what the majority vote estimates. Uses the Purify view's image and attack, with the settings below."
    )
    d = DensityRequest()  # the page opens with the endpoint's defaults
    with gr.Column(elem_id="density-controls"):
        with gr.Row():
            sigma = sigma_slider(d.sigma)
            seeds = gr.Slider(1, LIMITS.purify_seeds, value=d.seeds, step=1, label="K (reverse seeds)")
            steps = gr.Slider(1, LIMITS.steps, value=d.steps, step=1, label="b (steps of the fast sampler)")
        with gr.Row():
            sampler = gr.Radio(list(SAMPLERS), value=d.sampler, label="sampler")
            seed = seed_input(d.seed)
            draws = gr.Slider(1, LIMITS.density_draws, value=d.draws, step=1, label="n (noise draws, K samples each)")
            dims = gr.Radio([("2D", 2), ("3D", 3)], value=d.dims, label="projection (switches without recomputing)")
            run = gr.Button("Compute", variant="primary", elem_id="density-run")
    with gr.Row():
        fig = gr.Plot(label="PCA of the training images", elem_id="density-projection")
        with gr.Column():
            pictures = written_whole(gr.Image(label="x0, x_a, x + delta, highest-density training image, posterior mean",
                                              type="pil", format="png", interactive=False, elem_classes=["pixelated"],
                                              elem_id="density-pictures"))
            mass = gr.Plot(label="label mass")
            text = gr.Markdown(elem_id="density-summary")
    scene = gr.State(None)
    mine = {"model": model, "sigma": sigma, "seeds": seeds, "sampler": sampler, "steps": steps, "seed": seed,
            "draws": draws, "dims": dims}
    follow_model(model, "density", {"seeds": (seeds, "purify_seeds"), "steps": (steps, "steps"),
                                    "draws": (draws, "density_draws")})
    inputs = in_order(DensityRequest, {**purify.controls, **mine})  # the Purify view's image and attack
    outputs = [fig, pictures, mass, text, scene]
    handler = make_handler(ctx)
    run.click(handler, inputs, outputs, api_name="density", concurrency_id=INTERACTIVE,
              concurrency_limit=ctx.interactive_limit)
    dims.change(replot, [scene, dims], fig, api_visibility="private", show_progress="hidden")
    # a new image in the Purify view: what is shown here belonged to the previous one
    purify.controls["image"].change(lambda: [None, None, None, NEW_INPUT, None], None, outputs, queue=False,
                        api_visibility="private", show_progress="hidden")

    def first_view() -> tuple:
        """The view for the first sample at the defaults, no attack (a message instead when it fails)."""
        try:
            return handler(**arguments(DensityRequest(image=ctx.default_image, model=ctx.pool.default)))
        except Exception as exc:  # noqa: BLE001 - the page must open even without a model
            message = getattr(exc, "message", None) or str(exc)
            return gr.skip(), gr.skip(), gr.skip(), f"⚠️ The first view could not be computed: {message}", None

    return outputs, first_view
