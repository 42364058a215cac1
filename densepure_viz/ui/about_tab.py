"""View 5, About: the method in three layers, what each view shows, and the evaluation's figure."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from densepure_viz.models import ASSETS

log = logging.getLogger(__name__)
RESULTS = ASSETS / "results" / "digits"  # written by `python -m densepure_viz evaluate --out ...`

ONE_LINE = (
    "**DensePure** (Xiao et al., ICLR 2023, [arXiv 2211.00322](https://arxiv.org/abs/2211.00322)) makes a "
    "classifier certifiably robust by purifying each noisy input with several reverse-diffusion runs and "
    "taking the majority vote of the classifier's labels."
)
PARAGRAPH = (
    "Randomized smoothing (Cohen et al., 2019) certifies a radius around x when a base classifier keeps "
    "its label with high probability under Gaussian noise x + delta. DensePure's base classifier reads "
    "x + delta as a diffusion sample at the step t\\* whose noise level matches sigma, runs the reverse "
    "process K times with different seeds, classifies each clean result and votes. The reverse process "
    "samples the posterior p(x0 | x + delta), so the vote estimates the label with the most posterior mass; "
    "the paper shows that the label of the posterior's highest-density point is constant on whole "
    "*robust regions* that can be much larger than an L2 ball. One-shot denoising (Carlini et al., 2023) "
    "is the special case K = 1 with a single x0 prediction at t\\*."
)
FORMULAS = r"""
- noise level to timestep (images in [0, 1], model space [-1, 1] doubles distances):
  $\bar\alpha_{t^*} = 1 / (1 + (2\sigma)^2)$, start $x_{t^*} = \sqrt{\bar\alpha_{t^*}}\,(2(x+\delta) - 1)$
- base classifier: $f(x+\delta) = \mathrm{mode}_{k=1..K}\, h\big(\mathrm{reverse}_k(x_{t^*})\big)$
- smoothed classifier: $g(x) = \arg\max_c P_\delta[f(x+\delta) = c]$, $\delta \sim N(0, \sigma^2 I)$
- certificate (CERTIFY): $\underline{p_A}$ = one-sided $(1-\alpha)$ Clopper-Pearson lower bound from $n$ draws,
  radius $R = \sigma\, \Phi^{-1}(\underline{p_A})$ when $\underline{p_A} > 1/2$, else abstain
- robust region: the highest-density point of $p(x_0 \mid \tilde x) \propto p(x_0)\, N(\tilde x; x_0, \sigma^2 I)$
  keeps its label on a region around $x_0$ (Sec. 3)
"""
VIEWS = """
1. **Purify** - pick, draw or upload a digit, optionally attack it (FGSM / PGD, L-inf or L2, against the
   bare classifier or adaptively through the purifier), and watch K seeded reverse trajectories purify it,
   step by step; the vote histogram and a verdict compare the bare classifier, one-shot denoising and DensePure.
2. **Certify** - DensePure as the base classifier of a sequential CERTIFY: lower and upper bounds valid at
   every moment, growing draw by draw, and the radius they certify now; then fixed-n CERTIFY's bound on the
   same draws, one-shot denoising and the bare smoothed classifier beside it.
3. **Robust regions (2D)** - an exact 2D world: the four classifiers' region maps, K exact reverse trajectories,
   x0's robust region and the certified circles.
4. **High-density points** - the same story on images: PCA of the training digits, the K x n reversed samples,
   and the exact highest-density training image under sigma with its label mass.
"""
API = """
Every run is also an API endpoint (`gradio_client`): `/purify`, `/certify`, `/regions` and `/density`. See
"Use via API" at the bottom of the page for their parameters.
"""


def shipped_figure(path: Path, draw: Callable[[Path], Any]):
    """draw(path), a figure of shipped results, or None when the file is missing or from another version."""
    if not path.is_file():
        return None
    try:
        return draw(path)
    except Exception:  # a results file from another version: skip the figure
        log.warning("could not show %s", path, exc_info=True)
        return None


def results_figure():
    """The evaluation's certified-accuracy figure, or None when it has not been computed."""
    from densepure_viz.plots.evaluation import certified_accuracy_figure
    from densepure_viz.results import load_results

    return shipped_figure(RESULTS / "results.json", lambda path: certified_accuracy_figure(load_results(path)))


STUDY = ASSETS / "results" / "study"  # the vote study (python -m densepure_viz study)
STUDY_READING = """
**Reading.** One reverse trajectory is one *sample* of the posterior p(x0 | x + delta); one-shot denoising
classifies its *mean*. At high sigma the posterior spans several digits, so a single sample lands in the
wrong class more often than the blurry mean does (sigma = 1.0: 60% vs 66%, and the same for the exact
posterior of the training set, "ideal"). The vote's label shares estimate the posterior's *class mass*;
its argmax (the ideal vote, 71%) beats the mean. K buys the approach to it: K = 2 is below one-shot, K = 4
ties, K = 8-32 pass it, most of the gain by K = 8. At sigma <= 0.5 every method is at 96-100% and there is
nothing to win. The Purify view's story *Where the vote wins* runs an input where the vote is right while the
bare classifier on the same noisy input and one-shot are wrong; the grid's per-seed labels show why. Details:
`assets/results/study/README.md`.
"""


def study_figure_or_none():
    """The vote study's accuracy-vs-K figure, or None when it has not been computed."""
    from densepure_viz.plots.study import study_figure
    from densepure_viz.study import load_study

    return shipped_figure(STUDY / "results.json", lambda path: study_figure(load_study(path)))


def results_table() -> str:
    path = RESULTS / "results.md"
    return path.read_text() if path.is_file() else "*No evaluation results yet: run `python -m densepure_viz evaluate --out assets/results/digits`.*"


def build() -> None:
    """Lay out the About view, with the evaluation's figure and table when they exist."""
    gr.Markdown(ONE_LINE)
    with gr.Accordion("In one paragraph", open=True):
        gr.Markdown(PARAGRAPH)
    with gr.Accordion("The formulas", open=False):
        gr.Markdown(FORMULAS, latex_delimiters=[{"left": "$", "right": "$", "display": False}])
    gr.Markdown("### The views\n" + VIEWS + API)
    gr.Markdown("### Results on the held-out digits")
    figure = results_figure()  # read when the app is built (restart the app to show a new evaluation)
    if figure is not None:
        gr.Plot(value=figure, label="certified accuracy vs radius", elem_id="about-results")
    gr.Markdown(results_table())
    gr.Markdown("### Where the vote matters: per-draw accuracy against K")
    study = study_figure_or_none()
    if study is not None:
        gr.Plot(value=study, label="per-draw accuracy vs K", elem_id="about-study")
    gr.Markdown(STUDY_READING)
    gr.Markdown(
        "References: C. Xiao, Z. Chen, K. Jin, J. Wang, W. Nie, M. Liu, A. Anandkumar, B. Li, D. Song, *DensePure: Understanding Diffusion Models towards "
        "Adversarial Robustness*, ICLR 2023. Cohen, Rosenfeld, Kolter, *Certified Adversarial Robustness via "
        "Randomized Smoothing*, ICML 2019. Carlini, Tramer, Dvijotham, Rice, Sun, Kolter, *(Certified!!) "
        "Adversarial Robustness for Free!*, ICLR 2023."
    )
