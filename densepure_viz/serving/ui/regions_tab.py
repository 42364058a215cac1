"""View 3, Robust regions: DensePure's argument in an exact 2D world (densepure_viz.toy2d).

A Gaussian-mixture preset, a clean point x0 and an attacked point x_a (typed, or placed by clicking the
map: a small script forwards Plotly's click to a hidden input), K exact reverse trajectories from
x~ = x_a + sigma * eps, the four region maps (base classifier, one-shot, highest-density point, vote),
x0's robust region and the certified circles of the smoothed vote at x0 and x_a.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from densepure_viz.smoothing.certify import CertifyConfig
from densepure_viz.viz.plots.toy2d import MAP_TITLES, region_maps_figure, scene_figure, vote_histogram_figure
from densepure_viz.toy2d import LABELERS, PRESETS, reverse_trajectories, robust_region, smoothed_input
from densepure_viz.serving.api import RegionsRequest, arguments, in_order
from densepure_viz.serving.ui.requests import endpoint
from densepure_viz.serving.ui.session import AppContext
from densepure_viz.serving.ui.story_buttons import story_row
from densepure_viz.serving.ui.validation import LIMITS, choice, integer, number, positive, user_errors
from densepure_viz.teaching.glossary import VIEW_STEPS

CERTIFY_N0 = 100
CLICK_TARGETS = ("x0", "x_a")

# Forwards a click on the scene plot to the hidden textbox #regions-click as "x,y" (Gradio picks it up
# through the input event). Installed once in the page head; it re-attaches when Gradio redraws the plot.
CLICK_JS = """
<script>
(() => {
  const attach = () => {
    const host = document.getElementById("regions-scene");
    if (!host) return;
    const plot = host.querySelector(".js-plotly-plot");
    if (!plot || plot.dataset.dpClick === "1" || typeof plot.on !== "function") return;
    plot.dataset.dpClick = "1";
    plot.on("plotly_click", (ev) => {
      if (!ev || !ev.points || !ev.points.length) return;
      const p = ev.points[0];
      const box = document.querySelector("#regions-click textarea, #regions-click input");
      if (!box) return;
      box.value = `${Number(p.x).toFixed(3)},${Number(p.y).toFixed(3)},${Date.now()}`;
      box.dispatchEvent(new Event("input", { bubbles: true }));
    });
  };
  new MutationObserver(attach).observe(document.documentElement, { childList: true, subtree: true });
})();
</script>
"""


def _point(x, y, name: str, preset: str) -> np.ndarray:
    g = PRESETS[preset].grid
    return np.array([number(x, f"{name} x", *g.x_range), number(y, f"{name} y", *g.y_range)], dtype=np.float64)


def make_handler(ctx: AppContext):
    """The `regions` endpoint (its maps and cells from the app's caches)."""

    @user_errors
    def regions(req: RegionsRequest, progress: Any):
        """Scene, four maps, vote histogram, summary and JSON."""
        preset = choice(req.preset, "preset", tuple(PRESETS))
        sigma = round(positive(req.sigma, "sigma", LIMITS.toy_sigma_max), 4)
        x0, x_a = _point(req.x0_x, req.x0_y, "x0", preset), _point(req.xa_x, req.xa_y, "x_a", preset)
        k = integer(req.seeds, "K (trajectories)", 1, LIMITS.toy_seeds)
        steps = integer(req.steps, "steps (0 = full chain)", 0, LIMITS.toy_steps)
        method = choice(req.method, "method", ("ddpm", "ddim"))
        labeler = choice(req.labeler, "map", LABELERS)
        seed = integer(req.seed, "seed", 0, LIMITS.seed)
        n = integer(req.n, "n (certification draws)", 10, LIMITS.toy_n)
        p = PRESETS[preset]
        maps, cells = ctx.caches.regions(preset, sigma)
        robust = robust_region(p.mixture, maps, x0, x_a, np.random.default_rng([seed, 2]), CertifyConfig(n0=CERTIFY_N0, n=n))
        x_tilde = smoothed_input(x_a, sigma, np.random.default_rng([seed, 1]))
        trajectory_seeds = np.random.SeedSequence(seed).generate_state(k).tolist()  # one stream per trajectory
        traj = reverse_trajectories(p.mixture, x_tilde, sigma, trajectory_seeds, steps=steps or None, method=method)
        scene = scene_figure(maps, labeler, robust, traj, cells)
        # narrow side margins: on a phone the map (equal axes) takes the screen's width, not a third of it
        scene.update_layout(height=620, clickmode="event", margin={"l": 50, "r": 20})
        cert, cert_a = robust.certificate, robust.certificate_x_a
        vote = traj.vote
        tally = (f"a tie of {' and '.join(map(str, traj.tied))} ({int(traj.votes[vote])}/{k} each), broken towards **{vote}**"
                 if len(traj.tied) > 1 else f"vote **{vote}** ({int(traj.votes[vote])}/{k})")

        def lab(c):
            return "abstain" if c is None else str(c)

        summary = "\n".join([
            f"**{p.description}**",
            f"- x0 lies in the robust region of label **{robust.label}**: the connected region of map (c), where the "
            f"posterior's highest-density point has that label; its area is {robust.area:.2f}"
            f"{' or more (the plotted window clips it)' if robust.clipped else ''}, and it changes only when x0 moves "
            f"into another region.",
            f"- The smoothed vote (map (d), randomized smoothing of the majority vote) certifies a ball of radius "
            f"**{cert.radius:.3f}** around x0 for label {lab(cert.label)} (area {robust.ball_area:.2f})"
            + ("." if cert.label in (None, robust.label) else
               f": a different classifier, so near a boundary its label can differ from the region's."),
            f"- x_a is {'inside' if robust.x_a_in_region else 'outside'} the robust region and "
            f"{'inside' if robust.x_a_in_ball else 'outside'} the certified ball (|x_a - x0| = {np.linalg.norm(x_a - x0):.3f}); "
            f"smoothed vote at x_a: {lab(cert_a.label)}, radius {cert_a.radius:.3f}.",
            f"- {k} {method} trajectories from x~ = x_a + sigma * eps ({len(traj.timesteps)} steps): {tally}; "
            f"exact label masses {np.round(traj.exact_probabilities, 3).tolist()}.",
        ])
        data = {
            "preset": preset, "sigma": sigma, "sigma_effective": traj.sigma, "x0": x0.tolist(), "x_a": x_a.tolist(),
            "x_tilde": traj.x_tilde.tolist(), "votes": traj.votes.tolist(), "vote": vote, "tie": len(traj.tied) > 1,
            "exact_probabilities": traj.exact_probabilities.tolist(),
            "labels_x0": {m: int(maps.labels(m)[maps.cell_of(x0)]) for m in LABELERS},
            "labels_x_a": {m: int(maps.labels(m)[maps.cell_of(x_a)]) for m in LABELERS},
            "robust_region": {"label": robust.label, "area": robust.area, "clipped": robust.clipped, "x_a_inside": robust.x_a_in_region},
            "certificate_x0": {"label": cert.label, "radius": cert.radius, "p_lower": cert.p_lower, "x_a_inside": robust.x_a_in_ball},
            "certificate_x_a": {"label": cert_a.label, "radius": cert_a.radius, "p_lower": cert_a.p_lower},
            "seed": seed, "n": n, "K": k, "steps": len(traj.timesteps), "method": method,
        }
        return scene, region_maps_figure(maps), vote_histogram_figure(traj), summary, data

    return endpoint(RegionsRequest, regions, progress=False)


def preset_defaults(preset):
    """Sigma, x0 and x_a of a preset (when the preset changes)."""
    p = PRESETS[choice(preset, "preset", tuple(PRESETS))]
    return p.sigma, p.x0[0], p.x0[1], p.x_a[0], p.x_a[1]


def place(click, target, x0_x, x0_y, xa_x, xa_y):
    """A click 'x,y,stamp' on the map moves x0 or x_a there."""
    try:
        x, y = (float(v) for v in str(click).split(",")[:2])
    except ValueError:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    if target == "x0":
        return x, y, xa_x, xa_y
    return x0_x, x0_y, x, y


def build(ctx: AppContext) -> tuple:
    """Lay out the Robust-regions view; returns (inputs, outputs, load function) for the first view."""
    d = RegionsRequest()  # the page opens with the endpoint's defaults
    gr.Markdown(VIEW_STEPS["regions"])
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            preset = gr.Dropdown(list(PRESETS), value=d.preset, label="preset")
            sigma = gr.Slider(0.05, LIMITS.toy_sigma_max, value=d.sigma, step=0.05, label="sigma (model-space std)")
            labeler = gr.Radio([(MAP_TITLES[m], m) for m in LABELERS], value=d.labeler, label="map shown")
            target = gr.Radio(list(CLICK_TARGETS), value="x_a", label="a click on the map moves")
            with gr.Row():
                x0_x = gr.Number(d.x0_x, label="x0 x", step=0.05)
                x0_y = gr.Number(d.x0_y, label="x0 y", step=0.05)
            with gr.Row():
                xa_x = gr.Number(d.xa_x, label="x_a x", step=0.05)
                xa_y = gr.Number(d.xa_y, label="x_a y", step=0.05)
            with gr.Row():
                seeds = gr.Slider(1, LIMITS.toy_seeds, value=d.seeds, step=1, label="K trajectories")
                steps = gr.Slider(0, 200, value=d.steps, step=1, label="steps (0 = full chain)")
            with gr.Row():
                method = gr.Radio(["ddpm", "ddim"], value=d.method, label="reverse process")
                seed = gr.Number(d.seed, precision=0, minimum=0, label="seed")
            n = gr.Slider(100, 10_000, value=d.n, step=100, label="n (certification draws)")
            run = gr.Button("Update", variant="primary", elem_id="regions-run")
            click = gr.Textbox(visible="hidden", elem_id="regions-click")
        with gr.Column(scale=3):
            stories = gr.Column()  # filled below, once the outputs exist
            scene = gr.Plot(label="robust regions", elem_id="regions-scene")
            summary = gr.Markdown(elem_id="regions-summary")
    with gr.Row():
        maps = gr.Plot(label="the four classifiers of x~", elem_id="regions-maps")
        votes = gr.Plot(label="votes vs exact label masses")
    with gr.Accordion("Result as JSON", open=False):
        data = gr.JSON(label="regions")
    inputs = in_order(RegionsRequest, {"preset": preset, "sigma": sigma, "x0_x": x0_x, "x0_y": x0_y, "xa_x": xa_x,
                                       "xa_y": xa_y, "seeds": seeds, "steps": steps, "method": method,
                                       "labeler": labeler, "seed": seed, "n": n})
    outputs = [scene, maps, votes, summary, data]
    regions = make_handler(ctx)
    run.click(regions, inputs, outputs, api_name="regions", concurrency_id="toy2d", concurrency_limit=2)
    with stories:
        story_row("regions", inputs,
                  {"fn": regions, "inputs": inputs, "outputs": outputs, "concurrency_id": "toy2d"}, run)
    # .input, not .change: a story sets the preset together with its own sigma and points
    preset.input(preset_defaults, preset, [sigma, x0_x, x0_y, xa_x, xa_y], api_visibility="private").then(
        regions, inputs, outputs, api_visibility="private", concurrency_id="toy2d")
    update = {"fn": regions, "inputs": inputs, "outputs": outputs, "api_visibility": "private", "concurrency_id": "toy2d"}
    sigma.release(**update)
    labeler.input(**update)
    method.input(**update)
    click.change(place, [click, target, x0_x, x0_y, xa_x, xa_y], [x0_x, x0_y, xa_x, xa_y], api_visibility="private").then(
        regions, inputs, outputs, api_visibility="private", concurrency_id="toy2d")

    def first_view():
        return regions(**arguments(d))

    return outputs, first_view
