"""Where the vote matters: per-draw accuracy of one sample, the K-seed vote, one-shot and the ideal posterior.

DensePure (Xiao et al., ICLR 2023, arXiv 2211.00322, Sec. 3-4) argues that a reverse diffusion run from
the smoothed input x~ = x + delta samples the posterior p(x0 | x~), and that the majority vote of K
such samples estimates the posterior's class mass, whose argmax is the robust label. One-shot
denoising (Carlini et al., ICLR 2023) classifies the posterior mean instead (Tweedie's x0 estimate).
This module measures, on the same smoothing draws delta of every held-out image, the per-draw
accuracy (Cohen et al. 2019's base classifier accuracy, before any certificate) of:

  bare          the classifier on x + delta;
  one-shot      the classifier on the one-shot x0 prediction at t*;
  vote K        the majority vote of the first K reverse seeds of one K_max-seed run, for each
                sampler (sampler, b) in a list; K = 1 is one trajectory, a single posterior sample.
                Each (draw, seed) has its own noise stream (`seeding`), so the labels of seeds
                0..K-1 are exactly those of a K-seed run;
  ideal         the same three readings of the exact posterior of an ideal DDPM that reproduces its
                training set (`projections.point_mass_posterior`): one sample drawn from its weights,
                the vote (argmax of the class mass, the K -> infinity limit) and the classifier on
                its mean.

Accuracies carry Wilson intervals; methods are compared on the same draws with the exact McNemar
test (a two-sided sign test on the discordant pairs, `scipy.stats.binomtest`). Like `evaluate`, every
finished (sampler or reference, sigma, image, draw) record is appended to a JSON-lines file, so an
interrupted run resumes where it stopped.

The exact 2D world (`densepure_viz.toy2d`) is the control where nothing is approximated: the same
comparison with exact posterior samples, the exact posterior mean, and the exact class mass, whose
argmax is the Bayes-optimal classifier of the noisy input.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.stats import binomtest
from tqdm.auto import tqdm

from densepure_viz import toy2d
from densepure_viz.engine.diffusion import SAMPLERS, Sampler
from densepure_viz.errors import InputError
from densepure_viz.models.registry import DensePureModels
from densepure_viz.experiments.projections import TrainingSet, posterior_weights
from densepure_viz.engine.purify import PurifyConfig, densepure_labels, smoothed_draws
from densepure_viz.experiments.records import append_json_lines, tagged, tagged_lines
from densepure_viz.experiments.results import read_json, write_tables
from densepure_viz.engine.runtime import EvalCounter
from densepure_viz.engine.seeding import Stream, make_generator
from densepure_viz.engine.votes import majority_vote
from densepure_viz.smoothing.bounds import wilson_interval

PHASE = Stream.ESTIMATE  # the noise streams the study draws from (draw 0 of image i = the model card's draw)
DRAW_STRIDE = 4096  # engine draw id of (image i, draw d) is d * DRAW_STRIDE + i: independent of the subset size
IDEAL_KEY = 30  # generator key of the ideal posterior's sampling uniforms (apart from every seeding.Stream)
IDEAL_BLOCK = 32  # draws per generator block of those uniforms, as the engine's DRAW_BLOCK
CONFIDENCE = 0.95  # level of the Wilson intervals
RECORDS = "records.jsonl"
REFERENCE = "reference"  # record kind holding bare, one-shot and the ideal references of one draw


@dataclass(frozen=True)
class Chain:
    """A reverse sampler whose K_max seeds are run on every draw."""

    sampler: Sampler = "fast"  # "fast" (respaced, b steps) or "full" (every DDPM step)
    steps: int = 10  # b, UNet evaluations per trajectory of the "fast" sampler

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS[1:]:
            raise InputError(f"a chain's sampler must be one of {SAMPLERS[1:]}, got {self.sampler!r}")

    @property
    def name(self) -> str:
        """Its key in records and tables, e.g. "fast b=10"."""
        return f"fast b={self.steps}" if self.sampler == "fast" else "full chain"


@dataclass(frozen=True)
class StudyConfig:
    """What a study computes; the images are chosen by the caller."""

    sigmas: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)  # smoothing std on [0, 1] pixels, one panel each
    draws: int = 1  # smoothing draws per image and sigma, shared by every method
    ks: tuple[int, ...] = (1, 2, 4, 8, 16, 32)  # vote sizes reported; the largest is the seeds run per draw
    chains: tuple[Chain, ...] = (Chain(),)  # reverse samplers compared
    seed: int = 0  # base seed of every smoothing, reverse and ideal-sampling stream

    def __post_init__(self) -> None:
        if not self.sigmas or not self.chains:
            raise InputError("give at least one sigma and one chain")
        if list(self.ks) != sorted(set(self.ks)) or self.ks[0] < 1:
            raise InputError(f"ks must be increasing and >= 1, got {self.ks}")
        if not 1 <= self.draws <= DRAW_STRIDE:
            raise InputError(f"draws must be in 1..{DRAW_STRIDE}, got {self.draws}")
        for sigma in self.sigmas:
            for chain in self.chains:
                self.purify_config(chain, sigma)

    @property
    def max_seeds(self) -> int:
        """K_max, the seeds run per draw."""
        return self.ks[-1]

    def purify_config(self, chain: Chain, sigma: float) -> PurifyConfig:
        return PurifyConfig(sigma=sigma, seeds=self.max_seeds, sampler=chain.sampler, steps=chain.steps)

    def settings(self, kind: str, model: str) -> dict:
        """What a record of `kind` (REFERENCE or a chain name) depends on, besides its unit."""
        return {"model": model, "seed": self.seed, **({} if kind == REFERENCE else {"seeds": self.max_seeds})}


def draw_ids(indices: torch.Tensor, draw: int) -> torch.Tensor:
    """Engine draw ids (m,) of draw `draw` of images `indices` (m,): d * DRAW_STRIDE + i."""
    return draw * DRAW_STRIDE + indices.long()


# --- records: one JSON line per finished (kind, sigma, image, draw) --------------------------------


@dataclass
class ReferenceRecord:
    """The methods without reverse seeds on one smoothing draw of one image."""

    sigma: float  # smoothing std
    index: int  # image index in the evaluated set
    draw: int  # smoothing draw of that image, 0-based
    label: int  # true class
    bare: int  # classifier on x + delta
    one_shot: int  # classifier on the one-shot x0 prediction at t*
    ideal_sample: int  # label of one training image drawn from the point-mass posterior's weights
    ideal_vote: int  # argmax of the point-mass posterior's class mass
    ideal_mean: int  # classifier on the point-mass posterior's mean
    ideal_mass: float  # the posterior's mass on the true class: the expected accuracy of one ideal sample


@dataclass
class ChainRecord:
    """The labels of K_max seeded reverse trajectories from one smoothing draw of one image."""

    chain: str  # Chain.name
    sigma: float  # smoothing std
    index: int  # image index in the evaluated set
    draw: int  # smoothing draw of that image, 0-based
    label: int  # true class
    seeds: list[int]  # classifier label of each reverse seed 0..K_max-1's purified image
    unet_images: float  # UNet image-evaluations spent on this draw (the t* call is shared by its seeds)


Record = ReferenceRecord | ChainRecord
Unit = tuple[str, float, int, int]  # (REFERENCE or chain name, sigma, index, draw)


def unit_of(record: Record) -> Unit:
    kind = record.chain if isinstance(record, ChainRecord) else REFERENCE
    return (kind, record.sigma, record.index, record.draw)


def work_units(cfg: StudyConfig, images: int) -> list[Unit]:
    """Draw-major (so a partial run covers every image once before the second draw), then sigma, then kind."""
    kinds = [REFERENCE] + [c.name for c in cfg.chains]
    return [(kind, sigma, index, draw) for draw in range(cfg.draws) for sigma in cfg.sigmas
            for kind in kinds for index in range(images)]


def read_records(path: Path, cfg: StudyConfig, model: str) -> dict[Unit, Record]:
    """Records in `path` whose settings match cfg; lines that do not parse (a killed run's last) are ignored."""
    found: dict[Unit, Record] = {}
    for kind, settings, fields in tagged_lines(path):
        try:
            record = ReferenceRecord(**fields) if kind == REFERENCE else ChainRecord(**fields)
        except TypeError:
            continue
        if settings == cfg.settings(kind, model):
            found[unit_of(record)] = record
    return found


def append_records(path: Path, records: Sequence[Record], settings: dict) -> None:
    """Append records as JSON lines, tagged with their kind and settings (the evaluation's records format)."""
    append_json_lines(path, (tagged(unit_of(r)[0], settings, r) for r in records))


# --- the ideal references: the point-mass posterior of the training set, batched ------------------


@dataclass
class IdealPosteriors:
    """projections.point_mass_posterior for a batch of noisy inputs, and one seeded sample of each."""

    label_mass: torch.Tensor  # (m, C) posterior mass per class; argmax = the ideal vote
    mean: torch.Tensor  # (m, C, H, W) posterior mean in [0, 1]: the ideal one-shot denoiser
    sample_label: torch.Tensor  # (m,) label of one training image drawn from each posterior's weights


def block_uniforms(seed: int, draws: torch.Tensor) -> torch.Tensor:
    """One U(0, 1) per draw id (m,), from a generator per block of IDEAL_BLOCK ids (independent of batching)."""
    blocks, pos = torch.unique(draws // IDEAL_BLOCK, return_inverse=True)
    table = torch.stack([torch.rand(IDEAL_BLOCK, generator=make_generator(seed, IDEAL_KEY, int(b)), dtype=torch.float64)
                         for b in blocks])  # (nb, IDEAL_BLOCK)
    return table[pos, draws % IDEAL_BLOCK]


def ideal_posteriors(train: TrainingSet, noisy01: torch.Tensor, sigma: float, num_classes: int,
                     uniforms: torch.Tensor) -> IdealPosteriors:
    """The point-mass posteriors of noisy inputs noisy01 (m, C, H, W), weights w_i ~ exp(-|y~ - y_i|^2 / (2 s^2)).

    The batched form of `projections.point_mass_posterior` (same model-space std s = 2 sigma); the
    sample is the training image where the cumulative weights first exceed uniforms (m,) (inverse CDF).
    """
    w = posterior_weights(train, noisy01, sigma)  # (m, N)
    onehot = torch.nn.functional.one_hot(train.labels, num_classes).double()  # (N, C)
    picks = torch.searchsorted(w.cumsum(1), uniforms[:, None].double()).clamp(max=w.shape[1] - 1)[:, 0]  # (m,)
    mean = (w @ train.images.double().flatten(1)).view(len(w), *train.images.shape[1:])
    return IdealPosteriors(label_mass=(w @ onehot).float(), mean=mean.float(), sample_label=train.labels[picks])


# --- computing a batch of units -------------------------------------------------------------------


@torch.inference_mode()
def reference_records(models: DensePureModels, train: TrainingSet, x01: torch.Tensor, labels: torch.Tensor,
                      indices: torch.Tensor, draw: int, sigma: float, cfg: StudyConfig) -> list[ReferenceRecord]:
    """Bare, one-shot and ideal references on draw `draw` of images x01 (m, C, H, W) with indices (m,)."""
    ids = draw_ids(indices, draw)
    noisy, _ = smoothed_draws(models, x01, sigma, cfg.seed, PHASE, ids)  # (m, C, H, W), unclipped
    bare = models.predict(noisy).cpu()
    one_shot = densepure_labels(models, x01, PurifyConfig(sigma, 1, "one-shot"), cfg.seed, PHASE, ids)[:, 0]
    ideal = ideal_posteriors(train, noisy, sigma, models.num_classes, block_uniforms(cfg.seed, ids))
    ideal_mean = models.predict(ideal.mean.to(models.device)).cpu()
    true_mass = ideal.label_mass.gather(1, labels[:, None].long())[:, 0]
    rows = zip(indices.tolist(), labels.tolist(), bare.tolist(), one_shot.tolist(), ideal.sample_label.tolist(),
               ideal.label_mass.argmax(1).tolist(), ideal_mean.tolist(), true_mass.tolist())
    return [ReferenceRecord(sigma, i, draw, y, b, o, s, v, mn, round(p, 6)) for i, y, b, o, s, v, mn, p in rows]


def chain_records(models: DensePureModels, chain: Chain, x01: torch.Tensor, labels: torch.Tensor,
                  indices: torch.Tensor, draw: int, sigma: float, cfg: StudyConfig) -> list[ChainRecord]:
    """The K_max seed labels of `chain` on draw `draw` of images x01 (m, C, H, W) with indices (m,)."""
    counter = EvalCounter()
    seeds = densepure_labels(models, x01, cfg.purify_config(chain, sigma), cfg.seed, PHASE, draw_ids(indices, draw),
                             counter=counter)  # (m, K_max)
    per_draw = counter.unet_images / len(indices)
    return [ChainRecord(chain.name, sigma, i, draw, y, s, per_draw)
            for i, y, s in zip(indices.tolist(), labels.tolist(), seeds.tolist())]


def _batches(todo: list[Unit], size: int) -> Iterator[list[Unit]]:
    """Consecutive runs of at most `size` units sharing (kind, sigma, draw)."""
    batch: list[Unit] = []
    for unit in todo:
        if batch and (len(batch) == size or (batch[0][0], batch[0][1], batch[0][3]) != (unit[0], unit[1], unit[3])):
            yield batch
            batch = []
        batch.append(unit)
    if batch:
        yield batch


def run_study(models: DensePureModels, train: TrainingSet, images: torch.Tensor, labels: torch.Tensor,
              cfg: StudyConfig, out_dir: str | Path, batch: int = 64, progress: bool = True) -> dict[Unit, Record]:
    """Compute every missing unit of images (N, C, H, W) in [0, 1] with labels (N,); resume from out_dir/records.jsonl.

    `batch` draws go through the engine at once and are appended together (it changes no result).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / RECORDS
    records = read_records(path, cfg, models.name)
    todo = [u for u in work_units(cfg, len(images)) if u not in records]
    chains = {c.name: c for c in cfg.chains}
    with tqdm(total=len(todo), desc="study", unit="draw", disable=not progress) as bar:
        for units in _batches(todo, batch):
            kind, sigma, _, draw = units[0]
            idx = torch.tensor([u[2] for u in units])
            x, y = images[idx], labels[idx]
            if kind == REFERENCE:
                new = reference_records(models, train, x, y, idx, draw, sigma, cfg)
            else:
                new = chain_records(models, chains[kind], x, y, idx, draw, sigma, cfg)
            append_records(path, new, cfg.settings(kind, models.name))
            records.update((unit_of(r), r) for r in new)
            bar.update(len(units))
    return records


# --- summaries: accuracies with intervals, paired tests -------------------------------------------


@dataclass
class Accuracy:
    """Per-draw accuracy of one method at one sigma, with its Wilson interval."""

    method: str  # "bare", "one-shot", "ideal sample", "ideal vote", "ideal mean", or a chain name (a vote)
    sigma: float  # smoothing std
    k: int | None  # vote size of a chain (1 = one trajectory); None for the other methods
    correct: int  # draws labelled correctly
    total: int  # draws
    low: float  # lower end of the Wilson interval (CONFIDENCE)
    high: float  # upper end

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


@dataclass
class PairedTest:
    """Exact McNemar test of methods a and b on the same draws (two-sided sign test on the discordant pairs)."""

    sigma: float  # smoothing std
    a: str  # method a, as in Accuracy.method (with ", K = k" for a vote)
    b: str  # method b
    a_only: int  # draws a labels correctly and b does not
    b_only: int  # draws b labels correctly and a does not
    total: int  # paired draws
    p_value: float  # P(a discordance at least this lopsided | both methods equally accurate)


def accuracy(correct: np.ndarray, method: str, sigma: float, k: int | None = None) -> Accuracy:
    """Accuracy of a correctness vector (n,) with its Wilson score interval (Wilson 1927)."""
    hits, n = int(np.sum(correct)), len(correct)
    if n == 0:
        return Accuracy(method, sigma, k, 0, 0, 0.0, 1.0)
    return Accuracy(method, sigma, k, hits, n, *wilson_interval(hits, n, CONFIDENCE))


def paired_test(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str, sigma: float) -> PairedTest:
    """Exact McNemar test of correctness vectors a, b (n,) on the same draws (McNemar 1947).

    Under H0 (equal accuracy) each discordant draw favours a with probability 1/2, so the count of
    draws only a gets right is Binomial(discordant, 1/2); the p-value is two-sided.
    """
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    p = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    return PairedTest(sigma, name_a, name_b, a_only, b_only, len(a), float(p))


def vote_name(method: str, k: int | None) -> str:
    """A method's display name: "fast b=10, K = 4" for a vote, the method itself otherwise."""
    return method if k is None else f"{method}, K = {k}"


@dataclass
class Outcomes:
    """Per-draw correctness of every method at one sigma, on the same draws."""

    sigma: float  # smoothing std
    keys: list[tuple[int, int]]  # (image index, draw) of each paired draw
    correct: dict[tuple[str, int | None], np.ndarray]  # (method, K or None) -> (n,) bool


REFERENCE_METHODS: dict[str, str] = {  # method -> ReferenceRecord field
    "bare": "bare",
    "one-shot": "one_shot",
    "ideal sample": "ideal_sample",
    "ideal vote": "ideal_vote",
    "ideal mean": "ideal_mean",
}


def first_k_votes(seeds: torch.Tensor, ks: Sequence[int], num_classes: int) -> dict[int, torch.Tensor]:
    """Majority votes (n,) of the first K seed labels of seeds (n, K_max), for each K in ks."""
    return {k: majority_vote(seeds[:, :k], num_classes) for k in ks}


def digits_outcomes(records: dict[Unit, Record], cfg: StudyConfig, sigma: float, images: int,
                    num_classes: int) -> Outcomes:
    """Outcomes at sigma over the draws (image < images, draw < cfg.draws) whose every record exists."""
    kinds = [REFERENCE] + [c.name for c in cfg.chains]
    keys = [(i, d) for d in range(cfg.draws) for i in range(images)
            if all((kind, sigma, i, d) in records for kind in kinds)]
    refs = [records[(REFERENCE, sigma, i, d)] for i, d in keys]
    y = np.array([r.label for r in refs], dtype=np.int64)
    correct = {(name, None): np.array([getattr(r, attr) for r in refs], dtype=np.int64) == y
               for name, attr in REFERENCE_METHODS.items()}
    for chain in cfg.chains:
        seeds = torch.tensor([records[(chain.name, sigma, i, d)].seeds for i, d in keys], dtype=torch.long)
        seeds = seeds.view(len(keys), cfg.max_seeds)
        votes = first_k_votes(seeds, cfg.ks, num_classes)
        correct.update({(chain.name, k): v.numpy() == y for k, v in votes.items()})
    return Outcomes(sigma, keys, correct)


@dataclass
class StudyResult:
    """The study's tables, built from per-draw outcomes."""

    model: str  # model name, or the 2D preset
    description: str  # what was run, one line (shown above the tables)
    sigmas: list[float]  # smoothing stds, one block each
    ks: list[int]  # vote sizes
    accuracies: list[Accuracy] = field(default_factory=list)  # per (sigma, method, K)
    tests: list[PairedTest] = field(default_factory=list)  # per (sigma, pair)
    unet_images: dict[str, float] = field(default_factory=dict)  # "chain@sigma" -> mean UNet evaluations per draw
    # "chain@sigma" -> accuracy of one sample averaged over all K_max seeds; "ideal@sigma" -> mean true-class mass
    # of the ideal posterior: both estimate a single sample's expected accuracy with less noise than K = 1
    single_sample: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> StudyResult:
        return cls(
            model=obj["model"], description=obj["description"], sigmas=obj["sigmas"], ks=obj["ks"],
            accuracies=[Accuracy(**a) for a in obj["accuracies"]], tests=[PairedTest(**t) for t in obj["tests"]],
            unet_images=obj.get("unet_images", {}), single_sample=obj.get("single_sample", {}),
        )

    def get(self, sigma: float, method: str, k: int | None = None) -> Accuracy:
        """The accuracy of (method, K) at sigma."""
        return next(a for a in self.accuracies if (a.sigma, a.method, a.k) == (sigma, method, k))


def compare(outcomes: Outcomes, chains: Sequence[str], ks: Sequence[int],
            references: Sequence[str]) -> list[PairedTest]:
    """Paired tests: every vote K > 1 against one-shot and against one trajectory (K = 1), and the
    ideal vote against one-shot and the ideal sample (when those methods are present)."""
    c, s = outcomes.correct, outcomes.sigma
    tests = []
    for chain in chains:
        for k in ks[1:]:
            for other in [(r, None) for r in references if r == "one-shot"] + [(chain, ks[0])]:
                tests.append(paired_test(c[(chain, k)], c[other], vote_name(chain, k), vote_name(*other), s))
    for other in ("one-shot", "ideal sample"):
        if "ideal vote" in references and other in references:
            tests.append(paired_test(c[("ideal vote", None)], c[(other, None)], "ideal vote", other, s))
    return tests


def summarize_outcomes(all_outcomes: Sequence[Outcomes], model: str, description: str, chains: Sequence[str],
                       ks: Sequence[int], references: Sequence[str]) -> StudyResult:
    """Accuracies and paired tests of each sigma's outcomes."""
    result = StudyResult(model, description, [o.sigma for o in all_outcomes], list(ks))
    for o in all_outcomes:
        result.accuracies += [accuracy(o.correct[(m, None)], m, o.sigma) for m in references]
        result.accuracies += [accuracy(o.correct[(ch, k)], ch, o.sigma, k) for ch in chains for k in ks]
        result.tests += compare(o, chains, ks, references)
    return result


def summarize(records: dict[Unit, Record], cfg: StudyConfig, model: str, images: int, num_classes: int) -> StudyResult:
    """The study's tables over images 0..images-1 and draws 0..cfg.draws-1 (complete draws only; a sigma
    without any is left out)."""
    chains = [c.name for c in cfg.chains]
    outcomes = [o for sigma in cfg.sigmas if (o := digits_outcomes(records, cfg, sigma, images, num_classes)).keys]
    description = (f"{model}: held-out images 0..{images - 1}, up to {cfg.draws} smoothing draw(s) each, the same "
                   f"draws for every method; votes of the first K of {cfg.max_seeds} seeds; seed {cfg.seed}")
    result = summarize_outcomes(outcomes, model, description, chains, cfg.ks, list(REFERENCE_METHODS))
    for o in outcomes:
        refs = [records[(REFERENCE, o.sigma, i, d)] for i, d in o.keys]
        result.single_sample[f"ideal@{o.sigma:g}"] = float(np.mean([r.ideal_mass for r in refs])) if refs else 0.0
        for chain in chains:
            found = [records[(chain, o.sigma, i, d)] for i, d in o.keys]
            if found:
                seeds = np.array([r.seeds for r in found])  # (n, K_max)
                y = np.array([r.label for r in found])
                result.single_sample[f"{chain}@{o.sigma:g}"] = float(np.mean(seeds == y[:, None]))
                result.unet_images[f"{chain}@{o.sigma:g}"] = float(np.mean([r.unet_images for r in found]))
    return result


# --- where the vote wins: concrete draws for the app ----------------------------------------------


@dataclass
class VoteWin:
    """A smoothing draw on which the K-seed vote is right and one-shot is wrong."""

    index: int  # image index in the evaluated set (the held-out split)
    sigma: float  # smoothing std
    draw: int  # smoothing draw of that image
    k: int  # vote size
    label: int  # true class
    one_shot: int  # one-shot's (wrong) label
    per_seed: list[int]  # labels of reverse seeds 0..K-1; the vote is their majority
    margin: int  # votes for the true class minus votes for the runner-up
    image_wins: float  # share of this image's draws at sigma where the vote wins this way


def vote_wins(records: dict[Unit, Record], chain: str, sigma: float, k: int, num_classes: int) -> list[VoteWin]:
    """Every draw at sigma where the vote of the first k seeds of `chain` is right and one-shot wrong,
    most convincing first: by the image's share of such draws, then by the vote's margin."""
    pairs = [(ref, records[(chain, *unit[1:])]) for unit, ref in records.items()
             if unit[0] == REFERENCE and unit[1] == sigma and (chain, *unit[1:]) in records]
    if not pairs:
        return []
    seeds = torch.tensor([c.seeds[:k] for _, c in pairs])  # (n, k)
    counts = torch.zeros(len(pairs), num_classes, dtype=torch.long).scatter_add_(1, seeds, torch.ones_like(seeds))
    y = torch.tensor([r.label for r, _ in pairs])
    one_shot = torch.tensor([r.one_shot for r, _ in pairs])
    wins = (counts.argmax(1) == y) & (one_shot != y)
    runner_up = counts.scatter(1, y[:, None], -1).max(1).values
    margin = counts.gather(1, y[:, None])[:, 0] - runner_up
    index = torch.tensor([r.index for r, _ in pairs])
    share = {int(i): round(float(wins[index == i].double().mean()), 4) for i in index[wins].unique()}
    found = [VoteWin(r.index, sigma, r.draw, k, r.label, r.one_shot, c.seeds[:k], int(m), share[r.index])
             for (r, c), w, m in zip(pairs, wins.tolist(), margin.tolist()) if w]
    return sorted(found, key=lambda v: (-v.image_wins, -v.margin, v.index, v.draw))


# --- the control: the exact 2D world --------------------------------------------------------------


@dataclass(frozen=True)
class Toy2dStudyConfig:
    """The same comparison in the exact 2D world (densepure_viz.toy2d), where nothing is approximated."""

    preset: str = "moons"  # a key of toy2d.PRESETS
    sigmas: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)  # smoothing std in the mixture's coordinates
    points: int = 4000  # clean points drawn from the mixture per sigma, one smoothing draw each
    ks: tuple[int, ...] = (1, 2, 4, 8, 16, 32)  # vote sizes (exact posterior samples)
    seed: int = 0  # seed of the numpy generators (one per sigma)


TOY2D_CHAIN = "exact posterior samples"  # the 2D vote's method name
TOY2D_REFERENCES = ("bare", "one-shot", "ideal vote")  # Bayes classifier on x~, on E[x0 | x~], argmax of the class mass


def sample_posterior(post: toy2d.PosteriorMixture, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """num_samples exact draws (M, S, 2) from each point's posterior mixture (toy2d.PosteriorMixture)."""
    m, _ = post.log_weights.shape
    cdf = np.cumsum(np.exp(post.log_weights), axis=1)  # (M, K)
    comp = np.minimum((cdf[:, None, :] < rng.random((m, num_samples, 1))).sum(-1), cdf.shape[1] - 1)  # (M, S)
    means = np.take_along_axis(post.means, comp[..., None], axis=1)  # (M, S, 2)
    return means + np.sqrt(post.variances[comp])[..., None] * rng.standard_normal((m, num_samples, 2))


def toy2d_draws(mix: toy2d.GaussianMixture, points: int, sigma: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(labels (M,), noisy inputs x~ (M, 2)) of M clean points (x0, y) ~ the mixture, one smoothing draw each.

    A point's label is that of the component that generated it, so argmax_c p(y = c | x~) (the exact
    class mass, the ideal vote) is the Bayes-optimal classifier of the noisy input.
    """
    comp = rng.choice(len(mix.weights), size=points, p=mix.weights)
    x0 = mix.means[comp] + mix.stds[comp, None] * rng.standard_normal((points, 2))
    return mix.labels[comp], x0 + sigma * rng.standard_normal((points, 2))


def toy2d_labels(mix: toy2d.GaussianMixture, x_tilde: np.ndarray, sigma: float, ks: Sequence[int],
                 rng: np.random.Generator) -> dict[tuple[str, int | None], np.ndarray]:
    """Labels (M,) of each 2D method at noisy inputs x~ (M, 2): the clean Bayes classifier on x~ (bare), on the
    exact posterior mean (one-shot), the exact class-mass argmax (ideal vote), and the votes of the first K
    of max(ks) exact posterior samples, each labelled by the clean Bayes classifier."""
    samples = sample_posterior(toy2d.posterior(mix, x_tilde, sigma), ks[-1], rng)  # (M, K_max, 2)
    seeds = torch.from_numpy(toy2d.bayes_labels(mix, samples.reshape(-1, 2)).reshape(len(x_tilde), -1))
    return {
        ("bare", None): toy2d.bayes_labels(mix, x_tilde),
        ("one-shot", None): toy2d.bayes_labels(mix, toy2d.posterior_mean(mix, x_tilde, sigma)),
        ("ideal vote", None): toy2d.label_probabilities(mix, x_tilde, sigma).argmax(1),
        **{(TOY2D_CHAIN, k): v.numpy() for k, v in first_k_votes(seeds, ks, mix.num_classes).items()},
    }


def toy2d_outcomes(cfg: Toy2dStudyConfig, sigma: float, rng: np.random.Generator) -> Outcomes:
    """Outcomes of the 2D methods at sigma on cfg.points points of the preset's mixture."""
    mix = toy2d.PRESETS[cfg.preset].mixture
    y, x_tilde = toy2d_draws(mix, cfg.points, sigma, rng)
    labels = toy2d_labels(mix, x_tilde, sigma, cfg.ks, rng)
    return Outcomes(sigma, [(i, 0) for i in range(cfg.points)], {key: v == y for key, v in labels.items()})


def study_toy2d(cfg: Toy2dStudyConfig) -> StudyResult:
    """The 2D control: vote of K exact posterior samples vs one-shot (exact posterior mean) vs the exact Bayes vote."""
    outcomes = [toy2d_outcomes(cfg, sigma, np.random.default_rng([cfg.seed, i])) for i, sigma in enumerate(cfg.sigmas)]
    description = (f"2D preset {cfg.preset!r}: {cfg.points} points drawn from the mixture per sigma, one smoothing "
                   f"draw each; labels by the clean Bayes classifier; seed {cfg.seed}")
    return summarize_outcomes(outcomes, f"toy2d {cfg.preset}", description, [TOY2D_CHAIN], cfg.ks, TOY2D_REFERENCES)


# --- outputs --------------------------------------------------------------------------------------


def _cell(a: Accuracy) -> str:
    return f"{100 * a.accuracy:.1f} ({100 * a.low:.0f}-{100 * a.high:.0f})"


def markdown_table(result: StudyResult) -> str:
    """Per-draw accuracy (%) with Wilson intervals, one row per (sigma, chain), then the paired tests."""
    chains = list(dict.fromkeys(a.method for a in result.accuracies if a.k is not None))
    refs = list(dict.fromkeys(a.method for a in result.accuracies if a.k is None))
    head = [r for r in refs if not r.startswith("ideal")]
    tail = [r for r in refs if r.startswith("ideal")]
    lines = [
        f"### Per-draw accuracy (%), {result.model}",
        "",
        f"{result.description}. Cells: accuracy ({100 * CONFIDENCE:.0f}% Wilson interval).",
        "",
        "| sigma | draws | chain | " + " | ".join(head + [f"K = {k}" for k in result.ks] + tail) + " |",
        "|---:|---:|---|" + "---:|" * (len(head) + len(result.ks) + len(tail)),
    ]
    for sigma in result.sigmas:
        for chain in chains:
            cells = ([result.get(sigma, r) for r in head] + [result.get(sigma, chain, k) for k in result.ks]
                     + [result.get(sigma, r) for r in tail])
            lines.append(f"| {sigma:g} | {cells[0].total} | {chain} | " + " | ".join(map(_cell, cells)) + " |")
    lines += [
        "",
        f"### Paired tests, {result.model} (exact McNemar: two-sided sign test on the discordant draws)",
        "",
        "| sigma | a | b | a right, b wrong | b right, a wrong | draws | p |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {t.sigma:g} | {t.a} | {t.b} | {t.a_only} | {t.b_only} | {t.total} | {t.p_value:.2g} |"
              for t in result.tests]
    if result.single_sample:
        means = ", ".join(f"{k}: {100 * v:.1f}" for k, v in result.single_sample.items())
        lines += ["", "One sample's expected accuracy (%), averaged over all seeds of a chain, or the ideal "
                  f"posterior's mean mass on the true class: {means}"]
    if result.unet_images:
        lines += ["", "UNet image-evaluations per draw (all K_max seeds): "
                  + ", ".join(f"{k}: {v:.0f}" for k, v in result.unet_images.items())]
    return "\n".join(lines) + "\n"


def save_study(result: StudyResult, out_dir: str | Path, name: str = "results") -> list[Path]:
    """Write out_dir/{name}.md and out_dir/{name}.json; return their paths (the figure: plots.study)."""
    return list(write_tables(out_dir, name, markdown_table(result), result.to_json()))


def load_study(path: str | Path) -> StudyResult:
    """A StudyResult from a results.json written by save_study (what the app shows)."""
    return StudyResult.from_json(read_json(path))
