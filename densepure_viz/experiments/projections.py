"""Image-space pictures of DensePure's robust-region argument: PCA views and the ideal denoiser of a finite set.

DensePure (Xiao et al., ICLR 2023, arXiv 2211.00322, Sec. 3) argues that a reverse diffusion run from
the smoothed input x~ samples the posterior p(x0 | x~) proportional to p(x0) N(x~; x0, s^2 I), and
that the label of the posterior's highest-density point is robust. For the empirical distribution of
a finite training set {x_i} (what an ideal diffusion model trained on that set would reproduce) the
posterior is a set of point masses with weights

    w_i(x~) proportional to exp(-|x~ - x_i|^2 / (2 s^2)),

its highest-density point is the training image with the largest weight, its label masses are the
summed weights per class, and its mean (the ideal one-shot denoiser, Tweedie) is sum_i w_i x_i. This
is the 2D world's "finite dataset" preset (densepure_viz.toy2d) in image space.

Convention: the engine feeds the model y = 2x - 1 in [-1, 1], where the smoothing std sigma on [0, 1]
pixels becomes 2 sigma (densepure_viz.engine.diffusion). We compute the weights in model space with std
2 sigma; since every distance doubles too, this equals the [0, 1] formula with std sigma.

The module also projects training images, the input, its noised copies and the K x n reversed samples
with a PCA fitted on the training images, so they can be drawn in 2D or 3D.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from densepure_viz.engine.diffusion import DATA_SCALE, to_unit
from densepure_viz.errors import InputError
from densepure_viz.models.registry import DensePureModels
from densepure_viz.engine.purify import PurifyConfig, reverse, start_draws
from densepure_viz.engine.seeding import Stream
from densepure_viz.engine.votes import majority_vote

MAX_DIMS = 3  # projections are drawn in 2D or 3D
MAX_TRAIN_POINTS = 5000  # training images kept for a projection (evenly subsampled beyond this)


@dataclass(frozen=True)
class TrainingSet:
    """Images a model was trained on, for projections and the point-mass posterior."""

    name: str  # model name it belongs to
    images: torch.Tensor  # (N, C, H, W) in [0, 1]
    labels: torch.Tensor  # (N,) int64 class labels


def training_set(model_name: str, size: int | None = None) -> TrainingSet:
    """The training images of a registry model, at `size` pixels (default: the data set's own).

    Only the embedded digits ship theirs (offline); other models raise InputError.
    """
    if model_name == "digits":
        from densepure_viz.models.data import IMAGE_SIZE, split_digits

        split = split_digits(size=size or IMAGE_SIZE)
        return TrainingSet("digits", split.train_images, split.train_labels)
    raise InputError(f"no local training set for model {model_name!r}; projections are available for 'digits'")


def training_pca(model_name: str, size: int) -> tuple[TrainingSet, PCA]:
    """A model's training images at `size` pixels and their PCA on the projections' axes (MAX_DIMS)."""
    train = training_set(model_name, size)
    return train, fit_pca(train.images, MAX_DIMS)


@dataclass(frozen=True)
class PCA:
    """Principal axes of a set of images (flattened), as from an SVD of the centred data."""

    mean: torch.Tensor  # (D,) data mean
    components: torch.Tensor  # (d, D) orthonormal principal axes, largest variance first
    explained: torch.Tensor  # (d,) share of the total variance along each axis
    shape: tuple[int, int, int]  # (C, H, W) of the images

    def project(self, images: torch.Tensor) -> torch.Tensor:
        """Coordinates (..., d) of images (..., C, H, W)."""
        flat = images.reshape(*images.shape[: images.dim() - 3], -1).double()
        return (flat - self.mean) @ self.components.T


def fit_pca(images: torch.Tensor, dims: int = MAX_DIMS) -> PCA:
    """PCA of images (N, C, H, W); each axis's sign is fixed so its largest loading is positive."""
    if not 1 <= dims <= min(images.shape[0], images[0].numel()):
        raise ValueError(f"dims must be in 1..{min(images.shape[0], images[0].numel())}, got {dims}")
    flat = images.reshape(len(images), -1).double()  # (N, D)
    mean = flat.mean(0)
    _, s, vt = torch.linalg.svd(flat - mean, full_matrices=False)
    comps = vt[:dims]
    signs = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))  # (d, 1)
    var = s**2
    return PCA(mean, comps * signs, (var[:dims] / var.sum()), tuple(images.shape[1:]))


@dataclass
class PointMassPosterior:
    """p(x0 | x~) for the empirical distribution of a training set (module docstring)."""

    weights: torch.Tensor  # (N,) posterior weight of each training image, sums to 1
    index: int  # the highest-density point: the training image with the largest weight
    label: int  # its class label
    label_mass: torch.Tensor  # (C,) summed weight per class; argmax is the ideal majority vote
    mean: torch.Tensor  # (C, H, W) posterior mean sum_i w_i x_i in [0, 1]: the ideal one-shot denoiser
    model_std: float  # the noise std used, in model space: DATA_SCALE * sigma
    effective_size: float  # 1 / sum w_i^2: how many training images share the mass

    @property
    def vote_label(self) -> int:
        """argmax of the label masses: what DensePure's vote estimates."""
        return int(self.label_mass.argmax())


def posterior_weights(train: TrainingSet, noisy01: torch.Tensor, sigma: float) -> torch.Tensor:
    """Posterior weights (m, N), float64, of the training images given noisy inputs noisy01 (m, C, H, W).

    w_i ~ exp(-|y~ - y_i|^2 / (2 s^2)) with a uniform prior over the set, y = 2 x - 1 in model space, where the
    noise std is s = DATA_SCALE * sigma; noisy01 is x + delta on [0, 1] pixels (unclipped).
    """
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be finite and > 0, got {sigma}")
    s = DATA_SCALE * sigma
    y = (DATA_SCALE * train.images.double() - 1).flatten(1)  # (N, D) training images in [-1, 1]
    y_tilde = (DATA_SCALE * noisy01.double().cpu() - 1).flatten(1)  # (m, D)
    return torch.softmax(-torch.cdist(y_tilde, y).square() / (2 * s**2), dim=1)


def point_mass_posterior(train: TrainingSet, noisy01: torch.Tensor, sigma: float, num_classes: int) -> PointMassPosterior:
    """The point-mass posterior of training set `train` at the noisy input x~ = noisy01 (C, H, W).

    noisy01 is x + delta on [0, 1] pixels (unclipped); it is mapped to model space with the training
    images, where the noise std is DATA_SCALE * sigma.
    """
    w = posterior_weights(train, noisy01[None], sigma)[0]
    index = int(w.argmax())
    mass = torch.zeros(num_classes, dtype=torch.float64).scatter_add_(0, train.labels, w)
    mean = (w[:, None] * train.images.double().flatten(1)).sum(0).view(train.images.shape[1:])
    return PointMassPosterior(
        weights=w.float(),
        index=index,
        label=int(train.labels[index]),
        label_mass=mass.float(),
        mean=mean.float(),
        model_std=DATA_SCALE * sigma,
        effective_size=float(1.0 / (w**2).sum()),
    )


@dataclass
class ReversedSamples:
    """DensePure's purified images for n noise draws of one input, K seeds each."""

    noisy: torch.Tensor  # (n, C, H, W) x + delta on [0, 1] pixels (unclipped), draw 0 = the Purify view's draw
    samples: torch.Tensor  # (n, K, C, H, W) purified images in [0, 1]
    labels: torch.Tensor  # (n, K) classifier labels of the samples
    t_star: int  # diffusion step matching sigma


@torch.inference_mode()
def reversed_samples(models: DensePureModels, x01: torch.Tensor, cfg: PurifyConfig, seed: int, draws: int) -> ReversedSamples:
    """Purify noise draws 0..draws-1 of image x01 (C, H, W) with K = cfg.seeds seeds each.

    Uses the Purify view's noise stream (Stream.PURIFY), so draw 0 and its K samples are exactly those
    of `purify_stream(models, x01, cfg, seed)`.
    """
    if not 1 <= draws <= 1024:
        raise InputError(f"draws must be in 1..1024, got {draws}")
    t_star, timesteps = cfg.plan(models)
    traj = start_draws(models, x01, cfg.sigma, t_star, seed, Stream.PURIFY, torch.arange(draws))
    *_, last = reverse(models, traj, timesteps, range(cfg.seeds))
    samples = to_unit(last.prev_sample)  # (n * K, C, H, W), draw-major
    labels = models.predict(samples).view(draws, cfg.seeds)
    return ReversedSamples(
        noisy=traj.noisy.cpu(),
        samples=samples.view(draws, cfg.seeds, *samples.shape[1:]).cpu(),
        labels=labels.cpu(),
        t_star=t_star,
    )


@dataclass
class ProjectedScene:
    """Everything a projection figure draws, as coordinates (rows, d) on the PCA axes."""

    train: torch.Tensor  # (N', d) training images (subsampled to MAX_TRAIN_POINTS)
    train_labels: torch.Tensor  # (N',)
    clean: torch.Tensor  # (d,) x0
    adversarial: torch.Tensor | None  # (d,) x_a, None without an attack
    noisy: torch.Tensor  # (n, d) the noised inputs x + delta
    samples: torch.Tensor  # (n * K, d) reversed samples
    sample_labels: torch.Tensor  # (n * K,)
    highest_density: torch.Tensor  # (d,) the point-mass posterior's highest-density training image
    highest_density_label: int  # its label
    explained: torch.Tensor  # (d,) variance share of each axis


def project_scene(
    pca: PCA,
    train: TrainingSet,
    clean: torch.Tensor,
    adversarial: torch.Tensor | None,
    reversed_: ReversedSamples,
    posterior: PointMassPosterior,
) -> ProjectedScene:
    """Project the training set, x0, x_a, the noised inputs, the samples and the highest-density point."""
    step = max(1, -(-len(train.images) // MAX_TRAIN_POINTS))
    keep = torch.arange(0, len(train.images), step)
    return ProjectedScene(
        train=pca.project(train.images[keep]).float(),
        train_labels=train.labels[keep],
        clean=pca.project(clean.cpu()).float(),
        adversarial=None if adversarial is None else pca.project(adversarial.cpu()).float(),
        noisy=pca.project(reversed_.noisy).float(),
        samples=pca.project(reversed_.samples.flatten(0, 1)).float(),
        sample_labels=reversed_.labels.flatten(),
        highest_density=pca.project(train.images[posterior.index]).float(),
        highest_density_label=posterior.label,
        explained=pca.explained.float(),
    )


@dataclass
class HighDensity:
    """One input told like the 2D world: the scene on the PCA axes, the ideal posterior of draw 0, DensePure's votes."""

    scene: ProjectedScene
    posterior: PointMassPosterior  # the training set's exact posterior given draw 0's x + delta
    train_size: int  # training images the posterior weighs
    votes: list[int]  # (C,) DensePure's K votes per class on draw 0
    shares: list[float]  # (C,) the same as shares of K
    majority: list[int]  # (n,) DensePure's vote on each draw
    pictures: torch.Tensor  # (5, C, H, W) x0, the purifier's input, x + delta, the highest-density image, the posterior mean
    picture_labels: list[int]  # the classifier's label of each picture


@torch.inference_mode()
def high_density(models: DensePureModels, train: TrainingSet, pca: PCA, clean: torch.Tensor, clean_label: int,
                 purifier_input: torch.Tensor, attacked: bool, cfg: PurifyConfig, seed: int, draws: int) -> HighDensity:
    """DensePure's samples of `draws` noise draws of purifier_input (C, H, W) beside the exact posterior of the finite
    training set for draw 0, projected with `pca`; x0 is `clean` (labelled clean_label), x_a's origin when `attacked`."""
    rs = reversed_samples(models, purifier_input, cfg, seed, draws)
    post = point_mass_posterior(train, rs.noisy[0], cfg.sigma, models.num_classes)
    scene = project_scene(pca, train, clean, purifier_input if attacked else None, rs, post)
    votes = torch.bincount(rs.labels[0], minlength=models.num_classes)
    pictures = torch.stack([clean, purifier_input, rs.noisy[0].clamp(0, 1), train.images[post.index], post.mean])
    input_label, noisy_label = models.predict(torch.stack([purifier_input, rs.noisy[0]])).tolist()
    mean_label = int(models.predict(post.mean[None])[0])
    return HighDensity(scene, post, len(train.images), votes.tolist(), (votes.float() / cfg.seeds).tolist(),
                       majority_vote(rs.labels, models.num_classes).tolist(), pictures,
                       [clean_label, input_label, noisy_label, post.label, mean_label])
