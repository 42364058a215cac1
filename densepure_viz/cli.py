"""Command line: `python -m densepure_viz {purify,certify} ...` (tqdm progress on stderr).

Arguments become frozen configs at this edge; with --json, stdout carries exactly one JSON object.
Bad input exits with status 2 and a one-line message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from densepure_viz.certify import CertifyConfig, CertifyProgress, CertifyResult, certify_stream
from densepure_viz.diffusion import SAMPLERS
from densepure_viz.images import ImageError, list_images, to_tensor
from densepure_viz.models import REGISTRY, DensePureModels, ModelLoadError, custom_spec, load_models
from densepure_viz.purify import PurifyConfig, PurifyResult, auto_batch, densepure_base, purify_stream

USER_ERRORS = (ValueError, ModelLoadError, ImageError, OSError)  # reported in one line, exit status 2
LABEL_IN_NAME = re.compile(r"label[_-]?(\d+)")  # true label of a sample file, e.g. test_0017_label3.png


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model / --diffusion / --classifier / --device, shared by every command."""
    parser.add_argument("--model", default="digits", help=f"registry model: {', '.join(REGISTRY)} (default digits)")
    parser.add_argument("--diffusion", help="any diffusers DDPM: local folder or hub id (with --classifier)")
    parser.add_argument("--classifier", help="any timm classifier: local folder or hub id (with --diffusion)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if present)")


def add_purify_arguments(parser: argparse.ArgumentParser, seeds: int) -> None:
    """DensePure's own knobs: sigma, K, sampler, b, seed."""
    parser.add_argument("--sigma", type=float, default=0.5, help="smoothing std on [0,1] pixels")
    parser.add_argument("--seeds", type=int, default=seeds, help="K reverse seeds per noise draw")
    parser.add_argument("--steps", type=int, default=10, help="b: UNet steps of the fast sampler")
    parser.add_argument("--sampler", choices=SAMPLERS, default="fast")
    parser.add_argument("--seed", type=int, default=0, help="base seed of every random draw")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def models_from_args(args: argparse.Namespace) -> DensePureModels:
    if bool(args.diffusion) != bool(args.classifier):
        raise ValueError("--diffusion and --classifier go together")
    spec = custom_spec(args.diffusion, args.classifier) if args.diffusion else args.model
    return load_models(spec, device=args.device)


def purify_config(args: argparse.Namespace) -> PurifyConfig:
    return PurifyConfig(sigma=args.sigma, seeds=args.seeds, sampler=args.sampler, steps=args.steps)


def load_input(path: str | Path, models: DensePureModels) -> torch.Tensor:
    """An image file as the model's (C, H, W) input."""
    return to_tensor(path, models.channels, models.image_size, models.dark_background)


def purify_json(result: PurifyResult, cfg: PurifyConfig, seed: int, models: DensePureModels) -> dict:
    """The purify command's JSON object (contract: label, votes, per_seed, t_star)."""
    return {
        "label": result.label,
        "label_name": models.labels[result.label],
        "votes": {str(k): v for k, v in sorted(result.votes.items())},
        "per_seed": result.per_seed,
        "t_star": result.t_star,
        "timesteps": result.timesteps,
        "input_label": result.input_label,
        "noisy_label": result.noisy_label,
        "one_shot_label": result.one_shot_label,
        "sigma": cfg.sigma,
        "seeds": cfg.seeds,
        "sampler": cfg.sampler,
        "steps": cfg.steps,
        "seed": seed,
        "model": models.name,
    }


def run_purify(args: argparse.Namespace) -> None:
    cfg = purify_config(args)
    models = models_from_args(args)
    x = load_input(args.image, models)
    result: PurifyResult | None = None
    with tqdm(desc="reverse steps", unit="step", disable=None, file=sys.stderr) as bar:
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


def certify_one(models: DensePureModels, x: torch.Tensor, cfg: PurifyConfig, ccfg: CertifyConfig, seed: int,
                bar: tqdm) -> tuple[CertifyResult, float]:
    """CERTIFY one image with DensePure as the base classifier, advancing `bar` by draws; (result, seconds)."""
    start = time.perf_counter()
    chunk = max(1, auto_batch(models) // cfg.seeds)
    done_before = {}  # phase -> draws already counted on the bar
    for item in certify_stream(densepure_base(models, x, cfg, seed), models.num_classes, cfg.sigma, ccfg, chunk):
        if isinstance(item, CertifyProgress):
            bar.update(item.done - done_before.get(item.phase, 0))
            done_before[item.phase] = item.done
        else:
            return item, time.perf_counter() - start
    raise AssertionError("certify_stream ended without a result")


def certificate_json(result: CertifyResult, cfg: PurifyConfig, t_star: int, seconds: float) -> dict:
    """The certify command's JSON object (contract: label, radius, p_lower, count, n, alpha, sigma, t_star)."""
    return {
        "label": result.label,
        "radius": result.radius,
        "p_lower": result.p_lower,
        "count": result.count,
        "n": result.n,
        "n0": result.n0,
        "alpha": result.alpha,
        "sigma": result.sigma,
        "t_star": t_star,
        "guess": result.guess,
        "counts": result.counts,
        "seeds": cfg.seeds,
        "sampler": cfg.sampler,
        "steps": cfg.steps,
        "time": round(seconds, 3),
    }


def true_label(path: Path) -> int:
    """The label written in a file name (`..._label3.png`), or -1 when there is none."""
    match = LABEL_IN_NAME.search(path.stem)
    return int(match.group(1)) if match else -1


def run_certify(args: argparse.Namespace) -> None:
    cfg = purify_config(args)
    ccfg = CertifyConfig(n0=args.n0, n=args.n, alpha=args.alpha)
    models = models_from_args(args)
    t_star, _ = cfg.plan(models)
    source = Path(args.image)
    paths = list_images(source) if source.is_dir() else [source]
    if not paths:
        raise ImageError(f"no image files in folder {source}")
    inputs = [load_input(p, models) for p in paths]  # fail before any long work
    rows = []
    with tqdm(total=len(paths) * (ccfg.n0 + ccfg.n), desc="certify", unit="draw", disable=None, file=sys.stderr) as bar:
        for idx, (path, x) in enumerate(zip(paths, inputs)):
            result, seconds = certify_one(models, x, cfg, ccfg, args.seed, bar)
            rows.append((idx, path, result, seconds))
    if source.is_dir():
        write_tsv(rows, args.out)
    if args.json:
        objects = [{"image": str(p), **certificate_json(r, cfg, t_star, s)} for _, p, r, s in rows]
        print(json.dumps(objects[0] if not source.is_dir() else {"results": objects}))
    elif not source.is_dir() or args.out:
        for _, path, r, s in rows:
            verdict = f"label {r.label} ({models.labels[r.label]})" if r.label is not None else "abstain"
            print(f"{path.name}: {verdict}, radius {r.radius:.4f}, p_lower {r.p_lower:.4f}, "
                  f"count {r.count}/{r.n}, t* {t_star}, {s:.1f}s")


def write_tsv(rows: list[tuple[int, Path, CertifyResult, float]], out: str | None) -> None:
    """The reference code's TSV (Cohen et al. certify.py): idx label predict radius correct time."""
    lines = ["idx\tlabel\tpredict\tradius\tcorrect\ttime"]
    for idx, path, r, seconds in rows:
        label = true_label(path)
        predict = -1 if r.label is None else r.label
        lines.append(f"{idx}\t{label}\t{predict}\t{r.radius:.3}\t{int(predict == label)}\t{seconds:.4f}")
    text = "\n".join(lines) + "\n"
    if out:
        Path(out).write_text(text)
    else:
        sys.stdout.write(text)


@dataclass(frozen=True)
class Command:
    """A subcommand: how to declare its arguments and how to run it."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], None]


def _purify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="image file")
    add_model_arguments(parser)
    add_purify_arguments(parser, seeds=8)


def _certify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="image file, or a folder: certify every image, write a TSV")
    add_model_arguments(parser)
    add_purify_arguments(parser, seeds=4)
    parser.add_argument("--n0", type=int, default=100, help="selection draws")
    parser.add_argument("--n", type=int, default=1000, help="estimation draws")
    parser.add_argument("--alpha", type=float, default=0.001, help="failure probability")
    parser.add_argument("--out", help="TSV file for a folder (default: stdout)")


def run_attack(args: argparse.Namespace) -> None:
    from densepure_viz.attacks import AttackConfig, AttackResult, attack_stream
    from densepure_viz.images import save_image

    cfg = AttackConfig(
        norm=args.norm, eps=args.eps, steps=args.steps, step_size=args.step_size,
        random_start=not args.no_random_start, target=args.target, threat=args.threat, eot_samples=args.eot,
        sigma=args.sigma, adaptive_sampler=args.adaptive_sampler, adaptive_steps=args.adaptive_steps, seed=args.seed,
    )
    models = models_from_args(args)
    x = load_input(args.image, models)
    if args.label is not None:
        label, label_source = args.label, "--label"
    elif true_label(Path(args.image)) >= 0:
        label, label_source = true_label(Path(args.image)), "file name"
    else:
        label, label_source = int(models.predict(x[None])[0]), "classifier"
    result: AttackResult | None = None
    with tqdm(total=cfg.steps, desc=f"PGD ({cfg.threat})", unit="step", disable=None, file=sys.stderr) as bar:
        for item in attack_stream(models, x, label, cfg):
            if isinstance(item, AttackResult):
                result = item
            else:
                bar.set_postfix(loss=f"{item.loss:.3f}")
                bar.update()
    assert result is not None
    save_image(result.adversarial, args.out)
    out = {
        "clean_label": result.clean_label,
        "adversarial_label": result.adversarial_label,
        "success": result.success,
        "target_label_rate": result.target_label_rate,
        "linf": result.linf,
        "l2": result.l2,
        "out": str(args.out),
        "threat": cfg.threat,
        "norm": cfg.norm,
        "eps": cfg.eps,
        "steps": cfg.steps,
        "step_size": cfg.alpha,
        "target": cfg.target,
        "label": label,
        "label_source": label_source,
        "seed": cfg.seed,
        "model": models.name,
    }
    if cfg.threat == "adaptive":
        out.update(sigma=cfg.sigma, eot_samples=cfg.eot_samples, adaptive_sampler=cfg.adaptive_sampler,
                   adaptive_steps=cfg.adaptive_steps)
    if args.json:
        print(json.dumps(out))
        return
    goal = f"target {cfg.target}" if cfg.target is not None else f"leave label {label} (from {label_source})"
    print(f"bare classifier: {result.clean_label} ({models.labels[result.clean_label]}) -> "
          f"{result.adversarial_label} ({models.labels[result.adversarial_label]})")
    print(f"{cfg.threat} attack, {cfg.norm} eps {cfg.eps:g}, goal: {goal}: "
          f"{'succeeded' if result.success else 'failed'} ({100 * result.target_label_rate:.0f}% of draws comply); "
          f"applied linf {result.linf:.4f}, l2 {result.l2:.4f}; wrote {args.out}")


def run_evaluate(args: argparse.Namespace) -> None:
    from densepure_viz.data import split_digits
    from densepure_viz.evaluate import EvaluationConfig, evaluate
    from densepure_viz.plots.evaluation import certified_accuracy_figure
    from densepure_viz.records import RECORDS
    from densepure_viz.results import save_results

    cfg = EvaluationConfig(
        sigmas=tuple(args.sigma), n0=args.n0, n=args.n, alpha=args.alpha, seeds=args.seeds, steps=args.steps,
        eps=tuple(args.eps), norm=args.norm, attack_steps=args.attack_steps, eot_samples=args.eot,
        adaptive_sampler=args.adaptive_sampler, adaptive_steps=args.adaptive_steps, seed=args.seed,
    )
    models = models_from_args(args)
    if models.channels != 1:
        raise ValueError(f"evaluate uses the held-out digits split (grayscale); this model takes {models.channels}-channel images")
    split = split_digits(size=models.image_size)
    if not 1 <= args.images <= len(split.test_labels):
        raise ValueError(f"--images must be in 1..{len(split.test_labels)} (the held-out split), got {args.images}")
    start = time.perf_counter()
    result = evaluate(models, split.test_images[: args.images], split.test_labels[: args.images], cfg, args.out)
    markdown, results_json = save_results(result, args.out)
    figure = Path(args.out) / "certified_accuracy.html"
    certified_accuracy_figure(result).write_html(figure, include_plotlyjs=True)  # embedded: renders offline
    files = {"markdown": str(markdown), "json": str(results_json), "figure": str(figure),
             "records": str(Path(args.out) / RECORDS)}
    if args.json:
        print(json.dumps({**result.to_json(), "files": files, "seconds": round(time.perf_counter() - start, 3)}))
        return
    print(markdown.read_text())
    print("wrote " + ", ".join(files.values()))


def add_attack_arguments(parser: argparse.ArgumentParser, norm: str) -> None:
    """--norm and the adaptive threat's knobs, shared by attack and evaluate."""
    parser.add_argument("--norm", choices=("linf", "l2"), default=norm, help="attack norm")
    parser.add_argument("--eot", type=int, default=8, help="adaptive: noise draws averaged per gradient")
    parser.add_argument("--adaptive-sampler", choices=("one-shot", "fast"), default="one-shot",
                        help="adaptive: differentiate the one-shot x0 prediction or a short reverse chain")
    parser.add_argument("--adaptive-steps", type=int, default=2, help="adaptive fast: UNet steps differentiated")


def _attack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="image file")
    add_model_arguments(parser)
    parser.add_argument("--eps", type=float, required=True, help="perturbation budget on [0,1] pixels")
    add_attack_arguments(parser, norm="linf")
    parser.add_argument("--threat", choices=("classifier", "adaptive"), default="classifier",
                        help="classifier: attack the bare classifier; adaptive: PGD+EOT through the purifier")
    parser.add_argument("--out", required=True, help="PNG file for the adversarial image")
    parser.add_argument("--steps", type=int, default=10, help="PGD steps (1 with --no-random-start is FGSM)")
    parser.add_argument("--step-size", type=float, default=None, help="default 2.5 * eps / steps")
    parser.add_argument("--no-random-start", action="store_true", help="start PGD at the image itself")
    parser.add_argument("--target", type=int, default=None, help="targeted attack toward this class")
    parser.add_argument("--label", type=int, default=None,
                        help="true class (default: from a '..._label3' file name, else the classifier's answer)")
    parser.add_argument("--sigma", type=float, default=0.25, help="adaptive: the purifier's smoothing std")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random start and the EOT draws")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--sigma", type=float, nargs="+", default=[0.25, 0.5], help="smoothing stds")
    parser.add_argument("--n0", type=int, default=20, help="selection draws")
    parser.add_argument("--n", type=int, default=100, help="estimation draws")
    parser.add_argument("--alpha", type=float, default=0.001, help="failure probability")
    parser.add_argument("--seeds", type=int, default=4, help="DensePure's K reverse seeds")
    parser.add_argument("--steps", type=int, default=5, help="DensePure's b fast-sampler steps")
    parser.add_argument("--images", type=int, default=50, help="the first N images of the held-out split")
    parser.add_argument("--out", required=True, help="output folder (resumes from its records.jsonl)")
    parser.add_argument("--eps", type=float, nargs="*", default=[], help="attack budgets of the empirical table")
    add_attack_arguments(parser, norm="l2")
    parser.add_argument("--attack-steps", type=int, default=10, help="PGD steps")
    parser.add_argument("--seed", type=int, default=0, help="base seed of every random draw")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


COMMANDS: dict[str, Command] = {
    "purify": Command("purify an image with K seeded reverse trajectories and vote", _purify_arguments, run_purify),
    "certify": Command("certify an image (or folder) with randomized smoothing", _certify_arguments, run_certify),
    "attack": Command("adversarially perturb an image (FGSM/PGD, bare classifier or adaptive EOT)", _attack_arguments,
                      run_attack),
    "evaluate": Command("certified and empirical robust accuracy on the held-out digits", _evaluate_arguments,
                        run_evaluate),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m densepure_viz", description="DensePure from the command line")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.help, description=command.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command].run(args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
