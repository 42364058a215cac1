"""Run the vote study (densepure_viz.study) on the held-out digits and write its tables and figure.

Resumable: records go to OUT/records.jsonl and a rerun computes only what is missing. Several runs
with different sigmas or draws may share one OUT; `--report-only` rebuilds results.{md,json} and
study.html from the records of the given config without computing anything. Example (the shipped run):

    OMP_NUM_THREADS=1 python scripts/run_study.py --sigma 1.0 --draws 3
    OMP_NUM_THREADS=1 python scripts/run_study.py --sigma 0.25 0.5 0.75 --draws 1
    python scripts/run_study.py --sigma 0.25 0.5 0.75 1.0 --draws 3 --report-only
    python scripts/run_study.py --toy2d moons "finite dataset"   # the exact 2D control (seconds)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from anywhere

from densepure_viz.data import split_digits  # noqa: E402
from densepure_viz.models import load_models  # noqa: E402
from densepure_viz.plots.study import study_figure  # noqa: E402
from densepure_viz.projections import training_set  # noqa: E402
from densepure_viz.study import (  # noqa: E402
    Chain, StudyConfig, StudyResult, Toy2dStudyConfig, load_study, read_records, run_study, save_study, study_toy2d, summarize,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigma", type=float, nargs="+", default=list(StudyConfig.sigmas))
    parser.add_argument("--draws", type=int, default=StudyConfig.draws)
    parser.add_argument("--ks", type=int, nargs="+", default=list(StudyConfig.ks))
    parser.add_argument("--steps", type=int, nargs="+", default=[10], help="b of each fast sampler compared")
    parser.add_argument("--images", type=int, default=None, help="first N held-out images (default: all 360)")
    parser.add_argument("--seed", type=int, default=StudyConfig.seed)
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "results" / "study")
    parser.add_argument("--name", default="results", help="stem of the written tables (results.md, results.json)")
    parser.add_argument("--report-only", action="store_true", help="summarise the existing records, compute nothing")
    parser.add_argument("--no-page", action="store_true", help="write the tables only, no HTML figure page")
    parser.add_argument("--toy2d", nargs="+", metavar="PRESET", help="run the exact 2D control on these presets instead")
    parser.add_argument("--points", type=int, default=Toy2dStudyConfig.points, help="2D points per sigma")
    args = parser.parse_args(argv)
    if args.toy2d:
        for preset in args.toy2d:
            cfg2d = Toy2dStudyConfig(preset=preset, sigmas=tuple(args.sigma), points=args.points, ks=tuple(args.ks),
                                     seed=args.seed)
            print(*save_study(study_toy2d(cfg2d), args.out, "toy2d_" + preset.replace(" ", "_")), sep="\n")
        return
    cfg = StudyConfig(sigmas=tuple(args.sigma), draws=args.draws, ks=tuple(args.ks),
                      chains=tuple(Chain("fast", b) for b in args.steps), seed=args.seed)
    split = split_digits()
    images, labels = split.test_images[: args.images], split.test_labels[: args.images]
    models = load_models("digits", device="cpu")
    if args.report_only:
        records = read_records(args.out / "records.jsonl", cfg, models.name)
    else:
        records = run_study(models, training_set("digits"), images, labels, cfg, args.out)
    result = summarize(records, cfg, models.name, len(images), models.num_classes)
    page = args.out / ("study.html" if args.name == "results" else f"{args.name}.html")
    print(*save_study(result, args.out, args.name), sep="\n")
    if not args.no_page:
        print(write_page([result, *[load_study(p) for p in sorted(args.out.glob("toy2d_*.json"))]], page))


def write_page(results: list[StudyResult], page: Path) -> Path:
    """One HTML page with a figure per result (the digits study, then the 2D controls), plotly.js embedded once."""
    parts = [study_figure(r).to_html(full_html=False, include_plotlyjs=i == 0) for i, r in enumerate(results)]
    page.write_text("<html><head><meta charset='utf-8'></head><body>" + "".join(parts) + "</body></html>\n")
    return page


if __name__ == "__main__":
    main()
