"""The evaluation's results files: results.md (the tables of certified and empirical accuracy) and results.json.

markdown_table writes Cohen et al.'s (2019) certified-accuracy table (one row per sigma and smoothed
classifier, one column per L2 radius) and, when attacks ran, the empirical table; save_results writes
it and the result's JSON next to the records, and load_results reads that JSON back (what the app's
About view shows, with densepure_viz.viz.plots.evaluation's figure).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from densepure_viz.experiments.evaluate import EvaluationResult

METHOD_NAMES: dict[str, str] = {
    "bare": "bare classifier (Cohen et al.)",
    "one-shot": "one-shot denoising (Carlini et al.)",
    "densepure": "DensePure (Xiao et al.)",
}


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def markdown_table(result: EvaluationResult) -> str:
    """The certified-accuracy table (and the empirical one, when attacks ran) in Markdown."""
    cfg = result.config
    lines = [
        f"### Certified accuracy (%) at L2 radius, {result.model}, {result.images} held-out images",
        "",
        f"CERTIFY with n0 = {cfg.n0}, n = {cfg.n}, alpha = {cfg.alpha}; DensePure K = {cfg.seeds} seeds, "
        f"b = {cfg.steps} steps. Abstentions count as errors.",
        "",
        "| sigma | method | " + " | ".join(f"r = {r:g}" for r in cfg.radii) + " | abstain | s / image |",
        "|---|---|" + "---:|" * (len(cfg.radii) + 2),
    ]
    for c in result.certified:
        cells = " | ".join(_pct(c.accuracy(r)) for r in cfg.radii)
        lines.append(f"| {c.sigma:g} | {METHOD_NAMES[c.method]} | {cells} | {_pct(c.abstained / max(c.images, 1))} "
                     f"| {c.seconds:.2f} |")
    if result.sequential:
        lines += ["", *sequential_table(result)]
    if result.robust:
        lines += [
            "",
            f"### Empirical accuracy (%) under {cfg.norm.upper()} PGD-{cfg.attack_steps}",
            "",
            f"classifier: PGD on the bare classifier, then defended; adaptive: PGD with EOT over "
            f"{cfg.eot_samples} noise draws through the {cfg.adaptive_sampler} purifier. DensePure votes K = "
            f"{cfg.seeds} seeds on one fresh noise draw. Attack success is on the attack's own target.",
            "",
            "| threat | eps | sigma | images | bare classifier | DensePure (1 draw) | attack success "
            "| draws complying |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in result.robust:
            lines.append(f"| {r.threat} | {r.eps:g} | {r.sigma:g} | {r.images} | {_pct(r.bare_accuracy)} | "
                         f"{_pct(r.densepure_accuracy)} | {_pct(r.attack_success)} | {_pct(r.target_label_rate)} |")
    return "\n".join(lines) + "\n"


def sequential_table(result: EvaluationResult) -> list[str]:
    """Lines of the sequential-vs-fixed-n table: per sigma, method and R, certified accuracy and draws used by each."""
    cfg = result.config
    fixed = {(c.sigma, c.method): c for c in result.certified}
    lines = [
        "### Sequential CERTIFY (anytime-valid) vs fixed-n CERTIFY, on the same images and draws",
        "",
        f"Sequential: a Clopper-Pearson confidence sequence at geometric looks, budget n = {cfg.n}, alpha = "
        f"{cfg.alpha}, no selection draws; it stops at the first look that decides at R (one pass decides every R; "
        f"its wall time is that pass's). Fixed-n: n0 + n = {cfg.n0 + cfg.n} draws on every image. Certified "
        "accuracy (%) counts images certified at R with their true label.",
        "",
        "| sigma | method | R | fixed-n certified | sequential certified | mean draws | median draws | max draws "
        "| fixed-n draws | fixed-n s / image | sequential s / image |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for seq in result.sequential:
        ref = fixed[(seq.sigma, seq.method)]
        for j, radius in enumerate(seq.radii):
            draws = seq.draws[j] or [0]
            lines.append(
                f"| {seq.sigma:g} | {METHOD_NAMES[seq.method]} | {radius:g} | {_pct(ref.accuracy(radius))} | "
                f"{_pct(seq.accuracy(radius))} | {statistics.mean(draws):.1f} | {statistics.median(draws):g} | "
                f"{max(draws)} | {cfg.n0 + cfg.n} | {ref.seconds:.2f} | {seq.seconds:.2f} |")
    return lines


def write_tables(out_dir: str | Path, name: str, markdown: str, data: dict) -> tuple[Path, Path]:
    """Write out_dir/{name}.md and out_dir/{name}.json (indented, one trailing newline); return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / f"{name}.md", out / f"{name}.json"
    md.write_text(markdown)
    js.write_text(json.dumps(data, indent=1) + "\n")
    return md, js


def read_json(path: str | Path) -> dict:
    """The object of a JSON file written by write_tables."""
    return json.loads(Path(path).read_text())


def save_results(result: EvaluationResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Write out_dir/results.md and out_dir/results.json; return their paths."""
    return write_tables(out_dir, "results", markdown_table(result), result.to_json())


def load_results(path: str | Path) -> EvaluationResult:
    """An EvaluationResult from a results.json written by save_results (what the app shows)."""
    return EvaluationResult.from_json(read_json(path))
