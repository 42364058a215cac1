"""Command line: `python -m densepure_viz {purify,certify,attack,evaluate,study} ...` (tqdm progress on stderr).

purify   K seeded reverse trajectories from one smoothing draw, and their majority vote;
certify  randomized-smoothing CERTIFY with DensePure as the base classifier (an image, or a folder -> TSV);
attack   FGSM/PGD against the bare classifier or, adaptively, through the purifier;
evaluate the certified- and empirical-accuracy tables on the held-out digits or a folder of labelled images
         (resumable; under torchrun, the images are shared among the ranks: `torchrun --nproc-per-node 2 -m
         densepure_viz evaluate ...`);
study    per-draw accuracy of one-shot, one sample and the K-seed vote against the ideal posterior (resumable).

Arguments become frozen configs at this edge; their defaults are the configs' own defaults, and the
configs validate them. Each command imports what it needs only when it runs, so `--help` is quick.
With --json, stdout carries exactly one JSON object. An `InputError` (a bad parameter, file or model)
exits with status 2 and one line on stderr; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from densepure_viz.errors import InputError

if TYPE_CHECKING:
    import torch
    from tqdm.auto import tqdm

    from densepure_viz.smoothing.certify import CertifyConfig, CertifyResult
    from densepure_viz.experiments.distributed import Rank
    from densepure_viz.models.registry import DensePureModels
    from densepure_viz.engine.purify import PurifyConfig
    from densepure_viz.smoothing.sequential import SequentialConfig, SequentialResult


DIGITS_IMAGES = 50  # evaluate's default count of held-out digits

# --- arguments ------------------------------------------------------------------------------------


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model / --diffusion / --classifier / --labels (as `python app.py`) and --device, shared by every command."""
    from densepure_viz.serving.options import add_model_options

    add_model_options(parser)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if present)")


def add_purify_arguments(parser: argparse.ArgumentParser, defaults: PurifyConfig) -> None:
    """DensePure's own knobs (sigma, K, sampler, b) with `defaults`' values, and the base seed."""
    from densepure_viz.engine.diffusion import SAMPLERS

    parser.add_argument("--sigma", type=float, default=defaults.sigma, help="smoothing std on [0,1] pixels")
    parser.add_argument("--seeds", type=int, default=defaults.seeds, help="K reverse seeds per noise draw")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="b: UNet steps of the fast sampler")
    parser.add_argument("--sampler", choices=SAMPLERS, default=defaults.sampler)
    add_seed_and_json(parser)


def add_seed_and_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="base seed of every random draw")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def add_certify_arguments(parser: argparse.ArgumentParser, defaults: CertifyConfig) -> None:
    """CERTIFY's sample sizes and confidence, with `defaults`' values (--draws is --n, for torchrun)."""
    parser.add_argument("--n0", type=int, default=defaults.n0, help="selection draws")
    parser.add_argument("--n", "--draws", dest="n", type=int, default=defaults.n, help="estimation draws")
    parser.add_argument("--alpha", type=float, default=defaults.alpha, help="failure probability, in (0, 0.5]")


def add_attack_arguments(parser: argparse.ArgumentParser, norm: str, eot: int, sampler: str, steps: int) -> None:
    """--norm and the adaptive threat's knobs, shared by attack and evaluate (each with its config's defaults)."""
    from densepure_viz.attacks.pgd import ADAPTIVE_SAMPLERS, NORMS

    parser.add_argument("--norm", choices=NORMS, default=norm, help="attack norm")
    parser.add_argument("--eot", type=int, default=eot, help="adaptive: noise draws averaged per gradient")
    parser.add_argument("--adaptive-sampler", choices=ADAPTIVE_SAMPLERS, default=sampler,
                        help="adaptive: differentiate the one-shot x0 prediction or a short reverse chain")
    parser.add_argument("--adaptive-steps", type=int, default=steps, help="adaptive fast: UNet steps differentiated")


def writable(path: str) -> Path:
    """An output file path whose folder exists (checked before any long work)."""
    out = Path(path)
    if not out.parent.is_dir():
        raise InputError(f"cannot write {out}: folder {out.parent} does not exist")
    return out


# --- shared steps ---------------------------------------------------------------------------------


def models_from_args(args: argparse.Namespace, device: torch.device | str | None = None) -> DensePureModels:
    """The models of --model, --diffusion/--classifier and --labels, on `device` (default: --device)."""
    from densepure_viz.models.registry import load_models
    from densepure_viz.serving.options import model_from_options

    return load_models(model_from_options(args), device=device or args.device)


def label_name(models: DensePureModels, label: int | None) -> str | None:
    """The model's name of class `label` (None for an abstention), as JSON's label_name fields give it."""
    return None if label is None else models.labels[label]


def purify_config(args: argparse.Namespace) -> PurifyConfig:
    from densepure_viz.engine.purify import PurifyConfig

    return PurifyConfig(sigma=args.sigma, seeds=args.seeds, sampler=args.sampler, steps=args.steps)


def progress_bar(**kwargs) -> tqdm:
    """A tqdm bar on stderr (hidden when stderr is not a terminal)."""
    from tqdm.auto import tqdm

    return tqdm(disable=None, file=sys.stderr, **kwargs)


# --- purify ---------------------------------------------------------------------------------------


def _purify_arguments(parser: argparse.ArgumentParser) -> None:
    from densepure_viz.engine.purify import PurifyConfig

    parser.add_argument("image", help="image file")
    add_model_arguments(parser)
    add_purify_arguments(parser, PurifyConfig())


def run_purify(args: argparse.Namespace) -> None:
    from densepure_viz.models.inputs import load_input
    from densepure_viz.engine.purify import PurifyResult, purify_stream
    from densepure_viz.serving.reports import purify_json

    cfg = purify_config(args)
    models = models_from_args(args)
    x = load_input(args.image, models)
    result: PurifyResult | None = None
    with progress_bar(desc="reverse steps", unit="step") as bar:
        for item in purify_stream(models, x, cfg, args.seed):
            if isinstance(item, PurifyResult):
                result = item
            else:
                bar.total = item.total
                bar.update()
    assert result is not None
    out = purify_json(result, cfg, args.seed, models)
    if args.json:
        print(json.dumps(out))
        return
    print(f"DensePure label: {result.label} ({models.labels[result.label]})  votes {out['votes']}")
    print(f"per-seed labels: {result.per_seed}   t* = {result.t_star}, steps {result.timesteps}")
    print(f"bare classifier: input {result.input_label}, noisy input {result.noisy_label}; "
          f"one-shot denoising {result.one_shot_label}")


# --- certify --------------------------------------------------------------------------------------


def _certify_arguments(parser: argparse.ArgumentParser) -> None:
    from densepure_viz.smoothing.certify import CertifyConfig
    from densepure_viz.engine.purify import CERTIFY_PURIFIER
    from densepure_viz.smoothing.sequential import SequentialConfig

    fixed, sequential = CertifyConfig(), SequentialConfig()
    parser.add_argument("image", help="image file, or a folder: certify every image, write a TSV")
    add_model_arguments(parser)
    add_purify_arguments(parser, CERTIFY_PURIFIER)
    add_certify_arguments(parser, fixed)
    parser.set_defaults(n0=None)  # resolved per mode: fixed-n or sequential
    parser.add_argument("--sequential", action="store_true",
                        help="anytime-valid sequential CERTIFY: stop as soon as the confidence sequence decides, "
                             "with --n the budget")
    parser.add_argument("--radius", type=float, default=sequential.radius,
                        help="with --sequential: decide whether the input is certified at this L2 radius")
    parser.add_argument("--out", help="TSV file for a folder (default: stdout, unless --json)")
    parser.epilog = (f"--n0 defaults to {fixed.n0} (fixed-n) or {sequential.n0} (sequential: the bounds then "
                     "cover every class, and no draw is spent on choosing it)")


def certify_config(args: argparse.Namespace) -> CertifyConfig | SequentialConfig:
    """The fixed-n or sequential CERTIFY config of the arguments (--n0's default depends on the mode)."""
    from densepure_viz.smoothing.certify import CertifyConfig
    from densepure_viz.smoothing.sequential import SequentialConfig

    if not args.sequential:
        if args.radius is not None:
            raise InputError("--radius decides at a radius, which needs --sequential")
        return CertifyConfig(n0=CertifyConfig.n0 if args.n0 is None else args.n0, n=args.n, alpha=args.alpha)
    n0 = SequentialConfig.n0 if args.n0 is None else args.n0
    return SequentialConfig(alpha=args.alpha, n=args.n, radius=args.radius, n0=n0)


def certify_one(models: DensePureModels, x: torch.Tensor, cfg: PurifyConfig, ccfg: CertifyConfig | SequentialConfig,
                seed: int, bar: tqdm) -> tuple[CertifyResult | SequentialResult, float]:
    """CERTIFY (fixed-n or sequential) one image with DensePure as the base classifier; (result, seconds).

    `bar` advances by draws; a sequential run that stops early moves it on by the draws it did not need.
    """
    from densepure_viz.smoothing.certify import CertifyProgress, CertifyResult, certify_stream
    from densepure_viz.engine.seeding import Stream
    from densepure_viz.smoothing.base import smoothed
    from densepure_viz.smoothing.sequential import SequentialConfig, SequentialResult, sequential_certify_stream

    start = time.perf_counter()
    run = sequential_certify_stream if isinstance(ccfg, SequentialConfig) else certify_stream
    densepure = smoothed(models, x, "densepure", cfg, seed)
    done = 0  # draws of this image on the bar
    for item in run(densepure.base, models.num_classes, cfg.sigma, ccfg, densepure.chunk):
        if isinstance(item, (CertifyResult, SequentialResult)):
            bar.update(ccfg.n0 + ccfg.n - done)
            return item, time.perf_counter() - start
        if isinstance(item, CertifyProgress):
            now = item.done + (ccfg.n0 if item.phase == Stream.ESTIMATE else 0)
        else:
            now = ccfg.n0 + item.draws
        bar.update(now - done)
        done = now
    raise AssertionError("the certification stream ended without a result")


def run_certify(args: argparse.Namespace) -> None:
    from densepure_viz.models.inputs import folder_images, load_input
    from densepure_viz.serving.reports import certificate_json, sequential_json

    cfg = purify_config(args)
    ccfg = certify_config(args)
    source = Path(args.image)
    folder = source.is_dir()
    out = writable(args.out) if args.out else None
    models = models_from_args(args)
    t_star, _ = cfg.plan(models)
    paths = folder_images(source) if folder else [source]
    inputs = [load_input(p, models) for p in paths]  # fail before any long work
    rows = []
    with progress_bar(total=len(paths) * (ccfg.n0 + ccfg.n), desc="certify", unit="draw") as bar:
        for idx, (path, x) in enumerate(zip(paths, inputs)):
            result, seconds = certify_one(models, x, cfg, ccfg, args.seed, bar)
            rows.append((idx, path, result, seconds))
    if folder and (out or not args.json):  # one format per stream: with --json, stdout is the JSON alone
        write_tsv(rows, out)
    if args.json:
        to_json = sequential_json if args.sequential else certificate_json
        objects = [{"image": str(p), **to_json(r, cfg, t_star, s), "label_name": label_name(models, r.label)}
                   for _, p, r, s in rows]
        print(json.dumps({"results": objects} if folder else objects[0]))
    elif not folder or out:
        for _, path, r, s in rows:
            verdict = f"label {r.label} ({models.labels[r.label]})" if r.label is not None else "abstain"
            drawn = (f"{r.decision} at R = {r.target_radius}, {r.draws_used}/{r.n} draws" if args.sequential
                     else f"count {r.count}/{r.n}")
            print(f"{path.name}: {verdict}, radius {r.radius:.4f}, p_lower {r.p_lower:.4f}, {drawn}, t* {t_star}, {s:.1f}s")


def write_tsv(rows: list[tuple[int, Path, CertifyResult | SequentialResult, float]], out: Path | None) -> None:
    """The reference code's TSV (Cohen et al. certify.py): idx label predict radius correct time, and for
    sequential CERTIFY also decision and draws_used."""
    from densepure_viz.models.inputs import true_label

    sequential = bool(rows) and hasattr(rows[0][2], "decision")
    lines = ["idx\tlabel\tpredict\tradius\tcorrect\ttime" + ("\tdecision\tdraws_used" if sequential else "")]
    for idx, path, r, seconds in rows:
        label = true_label(path)
        predict = -1 if r.label is None else r.label
        extra = f"\t{r.decision}\t{r.draws_used}" if sequential else ""
        lines.append(f"{idx}\t{label}\t{predict}\t{r.radius:.3}\t{int(predict == label)}\t{seconds:.4f}{extra}")
    text = "\n".join(lines) + "\n"
    if out:
        out.write_text(text)
    else:
        sys.stdout.write(text)


# --- attack ---------------------------------------------------------------------------------------


def _attack_arguments(parser: argparse.ArgumentParser) -> None:
    from densepure_viz.attacks.pgd import THREATS, AttackConfig

    d = AttackConfig()
    parser.add_argument("image", help="image file")
    add_model_arguments(parser)
    parser.add_argument("--eps", type=float, required=True, help="perturbation budget on [0,1] pixels")
    add_attack_arguments(parser, d.norm, d.eot_samples, d.adaptive_sampler, d.adaptive_steps)
    parser.add_argument("--threat", choices=THREATS, default=d.threat,
                        help="classifier: attack the bare classifier; adaptive: PGD+EOT through the purifier")
    parser.add_argument("--out", required=True, help="PNG file for the adversarial image")
    parser.add_argument("--steps", type=int, default=d.steps, help="PGD steps (1 with --no-random-start is FGSM)")
    parser.add_argument("--step-size", type=float, default=d.step_size, help="default 2.5 * eps / steps")
    parser.add_argument("--no-random-start", action="store_true", help="start PGD at the image itself")
    parser.add_argument("--target", type=int, default=d.target, help="targeted attack toward this class")
    parser.add_argument("--label", type=int, default=None,
                        help="true class (default: from a '..._label3' file name, else the classifier's answer)")
    parser.add_argument("--sigma", type=float, default=d.sigma, help="adaptive: the purifier's smoothing std")
    add_seed_and_json(parser)


def run_attack(args: argparse.Namespace) -> None:
    import torch

    from densepure_viz.attacks.pgd import AttackConfig, AttackResult, attack_stream
    from densepure_viz.models.images import save_image
    from densepure_viz.models.inputs import load_input, true_label
    from densepure_viz.serving.reports import attack_json

    cfg = AttackConfig(
        norm=args.norm, eps=args.eps, steps=args.steps, step_size=args.step_size,
        random_start=not args.no_random_start, target=args.target, threat=args.threat, eot_samples=args.eot,
        sigma=args.sigma, adaptive_sampler=args.adaptive_sampler, adaptive_steps=args.adaptive_steps, seed=args.seed,
    )
    out_path = writable(args.out)
    models = models_from_args(args)
    x = load_input(args.image, models)
    if args.label is not None:
        label, label_source = args.label, "--label"
    elif true_label(args.image) >= 0:
        label, label_source = true_label(args.image), "file name"
    else:
        with torch.inference_mode():
            label, label_source = int(models.predict(x[None])[0]), "classifier"
    result: AttackResult | None = None
    with progress_bar(total=cfg.steps, desc=f"PGD ({cfg.threat})", unit="step") as bar:
        for item in attack_stream(models, x, label, cfg):
            if isinstance(item, AttackResult):
                result = item
            else:
                bar.set_postfix(loss=f"{item.loss:.3f}")
                bar.update()
    assert result is not None
    save_image(result.adversarial, out_path)
    if args.json:
        names = {"label_name": label_name(models, label), "clean_label_name": label_name(models, result.clean_label),
                 "adversarial_label_name": label_name(models, result.adversarial_label)}
        print(json.dumps({**attack_json(result, cfg, label, label_source), **names, "out": str(out_path),
                          "model": models.name}))
        return
    goal = f"target {cfg.target}" if cfg.target is not None else f"leave label {label} (from {label_source})"
    print(f"bare classifier: {result.clean_label} ({models.labels[result.clean_label]}) -> "
          f"{result.adversarial_label} ({models.labels[result.adversarial_label]})")
    print(f"{cfg.threat} attack, {cfg.norm} eps {cfg.eps:g}, goal: {goal}: "
          f"{'succeeded' if result.success else 'failed'} ({100 * result.target_label_rate:.0f}% of draws comply); "
          f"applied linf {result.linf:.4f}, l2 {result.l2:.4f}; wrote {out_path}")


# --- evaluate -------------------------------------------------------------------------------------


def _evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    from densepure_viz.smoothing.certify import CertifyConfig
    from densepure_viz.experiments.evaluate import EvaluationConfig

    d = EvaluationConfig()
    add_model_arguments(parser)
    parser.add_argument("--sigma", type=float, nargs="+", default=list(d.sigmas), help="smoothing stds")
    add_certify_arguments(parser, CertifyConfig(n0=d.n0, n=d.n, alpha=d.alpha))
    parser.add_argument("--seeds", type=int, default=d.seeds, help="DensePure's K reverse seeds")
    parser.add_argument("--steps", type=int, default=d.steps, help="DensePure's b fast-sampler steps")
    parser.add_argument("--folder", help="labelled images <name>_label<k>.png (as certify FOLDER reads them) instead "
                                         "of the held-out digits, e.g. a CIFAR-10 export (scripts/export_cifar10.py)")
    parser.add_argument("--images", type=int, default=None,
                        help=f"the first N images (default: {DIGITS_IMAGES} of the held-out digits, every image of --folder)")
    parser.add_argument("--radii", type=float, nargs="+", default=list(d.radii),
                        help="L2 radii of the certified-accuracy table (with --sequential: the radii it decides at)")
    parser.add_argument("--sequential", action="store_true",
                        help="also run sequential CERTIFY (anytime-valid, budget --n) at each radius, beside fixed-n")
    parser.add_argument("--out", required=True,
                        help="output folder (resumes from its records; under torchrun, on storage all ranks share)")
    parser.add_argument("--eps", type=float, nargs="*", default=list(d.eps), help="attack budgets of the empirical table")
    add_attack_arguments(parser, d.norm, d.eot_samples, d.adaptive_sampler, d.adaptive_steps)
    parser.add_argument("--attack-steps", type=int, default=d.attack_steps, help="PGD steps")
    add_seed_and_json(parser)


def run_evaluate(args: argparse.Namespace) -> None:
    """The tables on the held-out digits or a labelled folder; under torchrun, one rank per process (see
    densepure_viz.experiments.distributed)."""
    from densepure_viz.experiments.distributed import process_group, rank_device, rank_from_env

    rank = rank_from_env()
    device = rank_device(rank, args.device)
    with process_group(rank, device):
        _evaluate_on(args, rank, device)


def _evaluate_on(args: argparse.Namespace, rank: Rank, device: torch.device) -> None:
    """Evaluate as `rank` on `device`; rank 0 writes the outputs and prints."""
    from densepure_viz.experiments.evaluate import EvaluationConfig, evaluate
    from densepure_viz.viz.plots.evaluation import certified_accuracy_figure, sequential_draws_figure
    from densepure_viz.experiments.records import RECORDS
    from densepure_viz.experiments.results import save_results

    cfg = EvaluationConfig(
        sigmas=tuple(args.sigma), n0=args.n0, n=args.n, alpha=args.alpha, seeds=args.seeds, steps=args.steps,
        radii=tuple(args.radii), sequential=args.sequential, eps=tuple(args.eps), norm=args.norm, attack_steps=args.attack_steps, eot_samples=args.eot,
        adaptive_sampler=args.adaptive_sampler, adaptive_steps=args.adaptive_steps, seed=args.seed,
        data=str(Path(args.folder).resolve()) if args.folder else "",
    )
    models = models_from_args(args, device)
    images, labels = evaluation_images(args.folder, args.images, models)
    start = time.perf_counter()
    result = evaluate(models, images, labels, cfg, args.out, rank=rank)
    if not rank.main:
        return
    markdown, results_json = save_results(result, args.out)
    figure = Path(args.out) / "certified_accuracy.html"
    certified_accuracy_figure(result).write_html(figure, include_plotlyjs=True)  # embedded: renders offline
    files = {"markdown": str(markdown), "json": str(results_json), "figure": str(figure),
             "records": str(Path(args.out) / RECORDS)}
    if result.sequential:
        draws_figure = Path(args.out) / "sequential_draws.html"
        sequential_draws_figure(result).write_html(draws_figure, include_plotlyjs=True)
        files["draws_figure"] = str(draws_figure)
    if args.json:
        print(json.dumps({**result.to_json(), "files": files, "seconds": round(time.perf_counter() - start, 3)}))
        return
    print(markdown.read_text())
    print("wrote " + ", ".join(files.values()))


def evaluation_images(folder: str | None, count: int | None, models: DensePureModels) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `count` images (N, C, H, W) and labels (N,) of a labelled folder, else of the held-out digits."""
    from densepure_viz.models.data import split_digits
    from densepure_viz.models.inputs import folder_images, load_labelled

    if folder:
        paths = folder_images(folder)
        count = image_count(count, len(paths), len(paths), f"the images of {folder}")
        data = load_labelled(paths[:count], models, models.num_classes)
        return data.images, data.labels
    if models.channels != 1:
        raise InputError(f"without --folder, evaluate uses the held-out digits (grey); this model takes "
                         f"{models.channels}-channel images: give --folder DIR of labelled images <name>_label<k>.png")
    split = split_digits(size=models.image_size)
    count = image_count(count, DIGITS_IMAGES, len(split.test_labels), "the held-out split")
    return split.test_images[:count], split.test_labels[:count]


def image_count(count: int | None, default: int, available: int, source: str) -> int:
    """--images, or its default, checked against the images `source` holds."""
    count = default if count is None else count
    if not 1 <= count <= available:
        raise InputError(f"--images must be in 1..{available} ({source}), got {count}")
    return count


# --- study ----------------------------------------------------------------------------------------


def _study_arguments(parser: argparse.ArgumentParser) -> None:
    from densepure_viz.experiments.study import StudyConfig, Toy2dStudyConfig

    d = StudyConfig()
    add_model_arguments(parser)
    parser.add_argument("--sigma", type=float, nargs="+", default=list(d.sigmas), help="smoothing stds, one panel each")
    parser.add_argument("--draws", type=int, default=d.draws, help="smoothing draws per image, shared by every method")
    parser.add_argument("--ks", type=int, nargs="+", default=list(d.ks), help="vote sizes K (the largest is run)")
    parser.add_argument("--steps", type=int, nargs="+", default=[c.steps for c in d.chains],
                        help="b of each fast sampler compared")
    parser.add_argument("--images", type=int, default=None, help="the first N held-out images (default: all)")
    parser.add_argument("--seed", type=int, default=d.seed, help="base seed of every random draw")
    parser.add_argument("--out", required=True, help="output folder (resumes from its records.jsonl)")
    parser.add_argument("--name", default="results", help="stem of the tables written (results.md, results.json)")
    parser.add_argument("--report-only", action="store_true", help="summarise the existing records, compute nothing")
    parser.add_argument("--no-page", action="store_true", help="write the tables only, no HTML figure page")
    parser.add_argument("--toy2d", nargs="+", metavar="PRESET", help="run the exact 2D control on these presets instead")
    parser.add_argument("--points", type=int, default=Toy2dStudyConfig.points, help="2D control: points per sigma")


def run_study(args: argparse.Namespace) -> None:
    from densepure_viz.models.data import split_digits
    from densepure_viz.viz.plots.study import study_page
    from densepure_viz.experiments.projections import training_set
    from densepure_viz.experiments.study import (
        Chain, StudyConfig, Toy2dStudyConfig, load_study, read_records, run_study, save_study, study_toy2d, summarize,
    )

    out = Path(args.out)
    if args.toy2d:
        for preset in args.toy2d:
            cfg2d = Toy2dStudyConfig(preset=preset, sigmas=tuple(args.sigma), points=args.points, ks=tuple(args.ks),
                                     seed=args.seed)
            print(*save_study(study_toy2d(cfg2d), out, "toy2d_" + preset.replace(" ", "_")), sep="\n")
        return
    cfg = StudyConfig(sigmas=tuple(args.sigma), draws=args.draws, ks=tuple(args.ks),
                      chains=tuple(Chain("fast", b) for b in args.steps), seed=args.seed)
    models = models_from_args(args)
    split = split_digits(size=models.image_size)
    images, labels = split.test_images[: args.images], split.test_labels[: args.images]
    if args.report_only:
        records = read_records(out / "records.jsonl", cfg, models.name)
    else:
        records = run_study(models, training_set(models.name, models.image_size), images, labels, cfg, out)
    result = summarize(records, cfg, models.name, len(images), models.num_classes)
    print(*save_study(result, out, args.name), sep="\n")
    if not args.no_page:
        page = out / ("study.html" if args.name == "results" else f"{args.name}.html")
        page.write_text(study_page([result, *[load_study(p) for p in sorted(out.glob("toy2d_*.json"))]]))
        print(page)


# --- the parser -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A subcommand: how to declare its arguments and how to run it (both import their modules lazily)."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], None]


COMMANDS: dict[str, Command] = {
    "purify": Command("purify an image with K seeded reverse trajectories and vote", _purify_arguments, run_purify),
    "certify": Command("certify an image (or folder) with randomized smoothing", _certify_arguments, run_certify),
    "attack": Command("adversarially perturb an image (FGSM/PGD, bare classifier or adaptive EOT)", _attack_arguments,
                      run_attack),
    "evaluate": Command("certified and empirical robust accuracy on the held-out digits or a folder of labelled images",
                        _evaluate_arguments, run_evaluate),
    "study": Command("where the vote matters: per-draw accuracy of one-shot, one sample, the K-vote, the ideal",
                     _study_arguments, run_study),
}


def build_parser(commands: Iterable[str] = tuple(COMMANDS)) -> argparse.ArgumentParser:
    """The parser, declaring the arguments of `commands` only (the others import nothing)."""
    parser = argparse.ArgumentParser(prog="python -m densepure_viz", description="DensePure from the command line")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, cmd in COMMANDS.items():
        subparser = sub.add_parser(name, help=cmd.help, description=cmd.help)
        if name in commands:
            cmd.add_arguments(subparser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = argv[:1] if argv and argv[0] in COMMANDS else []  # the command is always the first word
    try:
        args = build_parser(commands).parse_args(argv)
        COMMANDS[args.command].run(args)
    except InputError as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
