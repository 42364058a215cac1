"""The paper's table on our models: certified accuracy against L2 radius, and empirical robust accuracy.

Certified accuracy at radius r (Cohen et al. 2019, Sec. 4) is the share of test images that CERTIFY
labels correctly with a radius of at least r; abstentions count as errors, so the r = 0 entry is the
clean accuracy of the smoothed classifier. Three base classifiers are smoothed on the same noise
draws of each image (the draws are keyed by seed, phase and index, see `seeding`):
  bare       the classifier alone on x + delta (Cohen et al. 2019);
  one-shot   the classifier on the diffusion model's one-shot x0 prediction (Carlini et al. 2023);
  densepure  the majority vote of K seeded b-step reverse chains (Xiao et al. 2023).
With `sequential`, each (method, sigma, image) is also certified by sequential CERTIFY (`sequential`:
an anytime-valid confidence sequence on the same draws, budget n, no selection phase) deciding at each
radius of the table in one pass, so the tables set its certified accuracy and draws used beside fixed-n's.
Empirical robust accuracy attacks each image under both threat models of `attacks` (the bare
classifier, transferred; the purifier itself, with EOT, Athalye et al. 2018) and reports the bare
classifier's accuracy, DensePure's vote on one fresh noise draw, and the attack's success rate on its
own target, so a weak attack shows.

This module holds the configuration, the computation of one unit of work, the loop over units and the
tables it builds. Every finished unit is appended to resumable JSON-lines records (`records`), so an
interrupted run continues where it stopped; `results` writes and reads the Markdown and JSON outputs.
Under torchrun (`distributed`) the ranks split the images still to do and append to their own record
shards; rank 0 merges them. A unit's numbers depend only on its image index (its draws come from
derive_seed(seed, index)), so the tables do not depend on how many ranks ran or how often a run resumed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from functools import partial
from pathlib import Path

import torch
from tqdm.auto import tqdm

from densepure_viz.attacks.pgd import THREATS, AdaptiveSampler, AttackConfig, Norm, Threat, attack
from densepure_viz.smoothing.base import METHODS, Method, Smoothed, smoothed
from densepure_viz.smoothing.certify import CertifyConfig, certify
from densepure_viz.experiments.distributed import SINGLE, Rank, barrier, shard
from densepure_viz.errors import InputError
from densepure_viz.models.registry import DensePureModels
from densepure_viz.engine.purify import PurifyConfig, densepure_labels
from densepure_viz.experiments.records import (
    RECORDS, CertifyRecord, Record, RobustRecord, SequentialRecord, Unit, append_record, count_shard_lines, merge_shards, read_all_records,
    read_records, shard_path,
)
from densepure_viz.engine.seeding import Stream, derive_seed
from densepure_viz.smoothing.sequential import SequentialConfig, sequential_certify_radii
from densepure_viz.engine.votes import majority_vote

RADII: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)


@dataclass(frozen=True)
class EvaluationConfig:
    """Everything an evaluation computes; the image subset is chosen by the caller."""

    sigmas: tuple[float, ...] = (0.25, 0.5)  # smoothing std on [0, 1] pixels, one table block each
    n0: int = 20  # CERTIFY selection draws
    n: int = 100  # CERTIFY estimation draws
    alpha: float = 0.001  # CERTIFY failure probability
    seeds: int = 4  # DensePure's K reverse seeds per draw
    steps: int = 5  # DensePure's b UNet steps (fast sampler)
    radii: tuple[float, ...] = RADII  # L2 radii of the certified-accuracy table (sequential: its target radii)
    sequential: bool = False  # also run sequential CERTIFY (budget n, alpha) deciding at each radius
    eps: tuple[float, ...] = ()  # attack budgets of the empirical table (none: skip it)
    norm: Norm = "l2"  # attack norm (L2, the norm of the certificates)
    attack_steps: int = 10  # PGD steps
    eot_samples: int = 8  # adaptive attack: noise draws per gradient
    adaptive_sampler: AdaptiveSampler = "one-shot"  # adaptive attack: purifier it differentiates
    adaptive_steps: int = 2  # adaptive attack: steps of that purifier when "fast"
    seed: int = 0  # base seed; image i uses derive_seed(seed, i) for all its draws
    data: str = ""  # where the images come from: "" the held-out digits, else a labelled folder (its records apart)

    def __post_init__(self) -> None:
        if not self.sigmas:
            raise InputError("give at least one sigma")
        if list(self.radii) != sorted(set(self.radii)) or self.radii[0] < 0:
            raise InputError(f"radii must be increasing and >= 0, got {self.radii}")
        self.certify_config()
        for sigma in self.sigmas:
            self.purify_config(sigma)
            for eps in self.eps:
                self.attack_config("adaptive", eps, sigma, seed=0)

    def certify_config(self) -> CertifyConfig:
        return CertifyConfig(n0=self.n0, n=self.n, alpha=self.alpha)

    def sequential_config(self) -> SequentialConfig:
        """Sequential CERTIFY with fixed-n's budget and alpha, no selection phase (cA re-chosen at every look)."""
        return SequentialConfig(alpha=self.alpha, n=self.n)

    def purify_config(self, sigma: float) -> PurifyConfig:
        """DensePure at sigma as an engine config (one-shot denoising is smoothing.base.one_shot at the same sigma)."""
        return PurifyConfig(sigma=sigma, seeds=self.seeds, sampler="fast", steps=self.steps)

    def attack_config(self, threat: Threat, eps: float, sigma: float, seed: int) -> AttackConfig:
        return AttackConfig(
            norm=self.norm, eps=eps, steps=self.attack_steps, threat=threat, eot_samples=self.eot_samples,
            sigma=sigma, adaptive_sampler=self.adaptive_sampler, adaptive_steps=self.adaptive_steps, seed=seed,
        )

    def settings(self, kind: str, name: str, model: str) -> dict:
        """What a record of `kind` ("certify"/"robust") for method or threat `name` depends on, besides its keys."""
        common = {"model": model, "seed": self.seed, **({"data": self.data} if self.data else {})}
        denoiser = {"seeds": self.seeds, "steps": self.steps} if name == "densepure" else {}
        if kind == "certify":
            return {**common, "n0": self.n0, "n": self.n, "alpha": self.alpha, **denoiser}
        if kind == "sequential":
            seq = self.sequential_config()
            return {**common, "n": seq.n, "alpha": seq.alpha, "first_look": seq.first_look, "growth": seq.growth,
                    "radii": list(self.radii), **denoiser}
        adaptive = {"eot_samples": self.eot_samples, "adaptive_sampler": self.adaptive_sampler,
                    "adaptive_steps": self.adaptive_steps} if name == "adaptive" else {}
        return {**common, "norm": self.norm, "attack_steps": self.attack_steps, "seeds": self.seeds,
                "steps": self.steps, **adaptive}


def work_units(cfg: EvaluationConfig, images: int) -> Iterator[Unit]:
    """Image by image (so a partial run covers every cell on a prefix of images): certificates, then attacks."""
    kinds = ("certify", "sequential") if cfg.sequential else ("certify",)
    for index in range(images):
        for sigma in cfg.sigmas:
            for kind in kinds:
                for method in METHODS:
                    yield (kind, method, sigma, None, index)
        for threat in THREATS:
            for eps in cfg.eps:
                for sigma in cfg.sigmas:
                    yield ("robust", threat, sigma, eps, index)


# --- computing one unit --------------------------------------------------------------------------


def smoothed_base(
    models: DensePureModels, x01: torch.Tensor, index: int, method: Method, sigma: float, cfg: EvaluationConfig
) -> Smoothed:
    """The base classifier `method` on image `index`'s own noise draws, and the draws per chunk that fill a batch."""
    return smoothed(models, x01, method, cfg.purify_config(sigma), derive_seed(cfg.seed, index))


def certify_record(
    models: DensePureModels, x01: torch.Tensor, label: int, index: int, method: Method, sigma: float,
    cfg: EvaluationConfig,
) -> CertifyRecord:
    """CERTIFY image x01 (C, H, W) with `method` as the base classifier, on image `index`'s own noise draws (untimed:
    unit_record fills in the seconds)."""
    s = smoothed_base(models, x01, index, method, sigma, cfg)
    result = certify(s.base, models.num_classes, sigma, cfg.certify_config(), chunk=s.chunk)
    return CertifyRecord(method, sigma, index, label, result.label, result.radius, result.p_lower, result.count,
                         seconds=0.0)


def sequential_record(
    models: DensePureModels, x01: torch.Tensor, label: int, index: int, method: Method, sigma: float,
    cfg: EvaluationConfig,
) -> SequentialRecord:
    """Sequential CERTIFY of image x01 (C, H, W) at every radius of the table, on the draws fixed-n CERTIFY uses."""
    seq = cfg.sequential_config()
    s = smoothed_base(models, x01, index, method, sigma, cfg)
    results = sequential_certify_radii(s.base, models.num_classes, sigma, seq, cfg.radii, chunk=s.chunk)
    return SequentialRecord(method, sigma, index, label, list(cfg.radii), [r.decision for r in results],
                            [r.top_class for r in results], [seq.n0 + r.draws_used for r in results],
                            [r.p_lower for r in results], seconds=0.0)


def robust_record(
    models: DensePureModels, x01: torch.Tensor, label: int, index: int, threat: Threat, eps: float, sigma: float,
    cfg: EvaluationConfig,
) -> RobustRecord:
    """Attack image x01 under `threat`, then classify it bare and with DensePure on one noise draw."""
    seed = derive_seed(cfg.seed, index)
    result = attack(models, x01, label, cfg.attack_config(threat, eps, sigma, seed))
    pcfg = cfg.purify_config(sigma)
    votes = densepure_labels(models, result.adversarial, pcfg, seed, Stream.PURIFY, torch.zeros(1, dtype=torch.long))
    defended = int(majority_vote(votes, models.num_classes)[0])
    return RobustRecord(threat, eps, sigma, index, label, result.adversarial_label, defended, result.success,
                        result.target_label_rate, seconds=0.0)


# --- summaries -----------------------------------------------------------------------------------


@dataclass
class CertifiedCurve:
    """Certified accuracy of one smoothed classifier at one sigma, as a function of the radius."""

    method: str  # one of METHODS
    sigma: float  # smoothing std
    images: int  # images evaluated
    correct_radii: list[float]  # radii of the images certified with their true label, descending
    abstained: int  # images on which CERTIFY abstained
    seconds: float  # mean wall time per image

    def accuracy(self, radius: float) -> float:
        """Share of images certified correctly with radius >= `radius` (Cohen et al.'s certified accuracy)."""
        return sum(r >= radius for r in self.correct_radii) / self.images if self.images else 0.0

    def step_points(self, max_radius: float) -> tuple[list[float], list[float]]:
        """Corners of the step function accuracy(r) on [0, max_radius], for plotting."""
        xs, ys = [0.0], [self.accuracy(0.0)]
        for r in sorted({r for r in self.correct_radii if r < max_radius}):
            xs += [r, r]
            ys += [self.accuracy(r), self.accuracy(r) - self.correct_radii.count(r) / self.images]
        return xs + [max_radius], ys + [self.accuracy(max_radius)]


@dataclass
class SequentialCurve:
    """Sequential CERTIFY of one smoothed classifier at one sigma: per target radius, what it certified and spent."""

    method: str  # one of METHODS
    sigma: float  # smoothing std
    images: int  # images evaluated
    radii: list[float]  # target radii R
    certified_correct: list[int]  # per R: images certified at R with their true label
    draws: list[list[int]]  # per R: draws used on each image, in image order
    seconds: float  # mean wall time per image of the one pass over all radii

    def accuracy(self, radius: float) -> float:
        """Share of images certified at `radius` (one of `radii`) with their true label."""
        return self.certified_correct[self.radii.index(radius)] / self.images if self.images else 0.0


@dataclass
class RobustRow:
    """Empirical accuracy under one attack."""

    threat: str  # one of attacks.THREATS
    norm: str  # attack norm
    eps: float  # attack budget
    sigma: float  # the defence's smoothing std
    images: int  # images attacked
    bare_accuracy: float  # bare classifier on the adversarial images
    densepure_accuracy: float  # DensePure's vote on one noise draw of them
    attack_success: float  # share of images on which the attack met its goal on its own target
    target_label_rate: float  # mean share of the attacker's draws that comply


@dataclass
class EvaluationResult:
    """The evaluation's tables, built from its records."""

    model: str  # model name
    images: int  # size of the evaluated subset
    config: EvaluationConfig  # what was computed
    certified: list[CertifiedCurve] = field(default_factory=list)  # per (sigma, method)
    robust: list[RobustRow] = field(default_factory=list)  # per (threat, eps, sigma)
    sequential: list[SequentialCurve] = field(default_factory=list)  # per (sigma, method), when cfg.sequential

    def to_json(self) -> dict:
        out = asdict(self)
        out["table"] = {f"{c.method}@{c.sigma}": [c.accuracy(r) for r in self.config.radii] for c in self.certified}
        return out

    @classmethod
    def from_json(cls, obj: dict) -> EvaluationResult:
        names = {f.name for f in fields(EvaluationConfig)}
        cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in obj["config"].items() if k in names}
        return cls(
            model=obj["model"],
            images=obj["images"],
            config=EvaluationConfig(**cfg),
            certified=[CertifiedCurve(**c) for c in obj["certified"]],
            robust=[RobustRow(**r) for r in obj["robust"]],
            sequential=[SequentialCurve(**c) for c in obj.get("sequential", [])],
        )


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def summarize(records: dict[Unit, Record], cfg: EvaluationConfig, model: str, images: int) -> EvaluationResult:
    """Tables over images 0..images-1 from their records (cells with missing records cover fewer images)."""
    result = EvaluationResult(model, images, cfg)
    for sigma in cfg.sigmas:
        for method in METHODS:
            rows = [records[u] for i in range(images) if (u := ("certify", method, sigma, None, i)) in records]
            result.certified.append(CertifiedCurve(
                method, sigma, len(rows),
                sorted((r.radius for r in rows if r.predicted == r.label), reverse=True),
                sum(r.predicted is None for r in rows),
                _mean([r.seconds for r in rows]),
            ))
        for method in METHODS if cfg.sequential else ():
            rows = [records[u] for i in range(images) if (u := ("sequential", method, sigma, None, i)) in records]
            result.sequential.append(SequentialCurve(
                method, sigma, len(rows), list(cfg.radii),
                [sum(r.decisions[j] == "certified" and r.top_classes[j] == r.label for r in rows)
                 for j in range(len(cfg.radii))],
                [[r.draws[j] for r in rows] for j in range(len(cfg.radii))],
                _mean([r.seconds for r in rows]),
            ))
    for threat in THREATS:
        for eps in cfg.eps:
            for sigma in cfg.sigmas:
                rows = [records[u] for i in range(images) if (u := ("robust", threat, sigma, eps, i)) in records]
                result.robust.append(RobustRow(
                    threat, cfg.norm, eps, sigma, len(rows),
                    _mean([r.bare == r.label for r in rows]),
                    _mean([r.densepure == r.label for r in rows]),
                    _mean([r.success for r in rows]),
                    _mean([r.target_label_rate for r in rows]),
                ))
    return result


def unit_record(models: DensePureModels, images: torch.Tensor, labels: torch.Tensor, unit: Unit,
                cfg: EvaluationConfig) -> Record:
    """The record that finishes `unit` of images (N, C, H, W) with true labels (N,), with its wall time."""
    kind, name, sigma, eps, index = unit
    x, y = images[index], int(labels[index])
    start = time.perf_counter()
    if kind == "certify":
        record = certify_record(models, x, y, index, name, sigma, cfg)
    elif kind == "sequential":
        record = sequential_record(models, x, y, index, name, sigma, cfg)
    else:
        record = robust_record(models, x, y, index, name, eps, sigma, cfg)
    return replace(record, seconds=time.perf_counter() - start)


def eta_seconds(done: int, done_at_start: int, total: int, elapsed: float) -> float | None:
    """Seconds left at the rate measured since the start (None before anything finished)."""
    if done <= done_at_start or elapsed <= 0:
        return None
    return (total - done) * elapsed / (done - done_at_start)


def evaluate(
    models: DensePureModels,
    images: torch.Tensor,
    labels: torch.Tensor,
    cfg: EvaluationConfig,
    out_dir: str | Path,
    progress: bool = True,
    rank: Rank = SINGLE,
) -> EvaluationResult:
    """Evaluate images (N, C, H, W) in [0, 1] with true labels (N,), resuming from the records in out_dir.

    Every rank of a torchrun job calls this with the same arguments and its own `rank`: each computes its
    share of the images still to do, appending to its own shard; after a barrier rank 0 merges the shards
    into out_dir/records.jsonl, and every rank returns the same result, summarized from that file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = partial(cfg.settings, model=models.name)
    units = list(work_units(cfg, len(images)))
    done = read_all_records(out, settings)
    barrier(rank)  # every rank has read the same records before any rank appends, so they agree on what is left
    mine = set(shard(sorted({u[-1] for u in units if u not in done}), rank))
    my_units = [u for u in units if u[-1] in mine]
    path = shard_path(out, rank.rank) if rank.distributed else out / RECORDS
    overall = (OverallProgress(out, len(units), sum(u in done for u in units), count_shard_lines(out), time.perf_counter())
               if rank.distributed and rank.main else None)
    desc = f"evaluate rank {rank.rank}/{rank.world_size}" if rank.distributed else "evaluate"
    with tqdm(total=len(my_units), desc=desc, unit="cell", position=rank.rank, disable=not progress) as bar:
        bar.update(sum(u in done for u in my_units))
        for unit in my_units:
            if unit in done:
                continue
            append_record(path, unit_record(models, images, labels, unit, cfg), settings(unit[0], unit[1]))
            bar.update()
            if overall:
                bar.set_postfix_str(overall.status())
    if rank.distributed:
        barrier(rank)  # every shard is complete
        if rank.main:
            merge_shards(out, units)
        barrier(rank)  # records.jsonl is merged
    return summarize(read_records(out / RECORDS, settings), cfg, models.name, len(images))


@dataclass(frozen=True)
class OverallProgress:
    """Rank 0's view of the whole job: the records every rank appended since the start, and the ETA at that rate.

    Counted from the shard files in the shared output folder, so it measures all ranks, with no collective.
    """

    out: Path  # the output folder all ranks append their shards to
    total: int  # units of the whole run
    done: int  # units already recorded when this run started
    lines: int  # shard lines when this run started
    start: float  # time.perf_counter() when this run started

    def status(self) -> str:
        done = self.done + count_shard_lines(self.out) - self.lines
        eta = eta_seconds(done, self.done, self.total, time.perf_counter() - self.start)
        return f"all ranks {done}/{self.total}, ETA {'?' if eta is None else tqdm.format_interval(eta)}"
