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
    out = {
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
        "seed": args.seed,
        "model": models.name,
    }
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


COMMANDS: dict[str, Command] = {
    "purify": Command("purify an image with K seeded reverse trajectories and vote", _purify_arguments, run_purify),
    "certify": Command("certify an image (or folder) with randomized smoothing", _certify_arguments, run_certify),
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
