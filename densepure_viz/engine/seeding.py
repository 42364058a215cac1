"""Explicit, order-independent random streams: every draw comes from a generator named by its keys.

A generator is derived from (seed, *keys) with numpy's SeedSequence, so the noise of one trajectory
depends only on what it is (which seed, which phase, which block of noise draws, which of the K
reverse seeds) and never on what else shares its batch. This is what lets the engine batch, chunk,
resume and stop decided draws early while giving exactly the same trajectories, votes and radius.
`BlockNoise` lays the engine's Gaussian draws out on those generators; `gaussian_stream` is the
single-generator stream of the attacker. The global RNG is never touched.

Every generator is a CPU generator and every draw is made on the CPU, then moved to the device: torch's CUDA
generators draw other numbers from the same seed, so drawing on the device would tell another story (another
noise, another vote) on a GPU than on a laptop for the same seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import IntEnum

import numpy as np
import torch

DRAW_BLOCK = 32  # noise draws per generator block: the unit of smoothing/reverse noise streams


class Stream(IntEnum):
    """What a generator is for; part of its key so streams never collide."""

    PURIFY = 0  # the single noise draw of an interactive purification
    SELECT = 1  # CERTIFY's n0 selection draws
    ESTIMATE = 2  # CERTIFY's n estimation draws
    SMOOTHING = 10  # the randomized-smoothing noise delta of a block of draws
    REVERSE = 11  # the reverse-process noise of one seed within a block
    ATTACK_START = 20  # PGD's random start
    ATTACK_EOT = 21  # the adaptive attack's noise draws, one generator per PGD step
    RADIUS = 30  # the random direction that pictures a certified radius (certify.perturb_by_radius)


def derive_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed determined by (seed, *keys) (SeedSequence hashing: distinct keys, independent streams)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, *map(int, keys)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def make_generator(seed: int, *keys: int) -> torch.Generator:
    """A CPU torch.Generator seeded by derive_seed(seed, *keys) (draw with it on the CPU, then move: `draw`)."""
    return torch.Generator().manual_seed(derive_seed(seed, *keys))


def randn(shape: tuple[int, ...], generator: torch.Generator, device: torch.device | str) -> torch.Tensor:
    """Standard normal draws of `shape` from a CPU generator, on `device`: the same numbers on every device."""
    return torch.randn(shape, generator=generator).to(device)


def rand(shape: tuple[int, ...], generator: torch.Generator, device: torch.device | str) -> torch.Tensor:
    """Uniform [0, 1) draws of `shape` from a CPU generator, on `device`: the same numbers on every device."""
    return torch.rand(shape, generator=generator).to(device)


class BlockNoise:
    """Gaussian draws for a set of noise draws, one generator per (block of draws, stream, seed).

    Draw i lives in block i // DRAW_BLOCK at row i % DRAW_BLOCK; a generator always produces a full
    block, so a trajectory's noise does not depend on which other draws share the batch.
    """

    def __init__(self, seed: int, phase: Stream, draws: torch.Tensor, shape: tuple[int, ...], device: torch.device):
        self.seed, self.phase, self.shape, self.device = seed, phase, shape, device
        draws = draws.cpu()
        self.blocks, block_pos = torch.unique(draws // DRAW_BLOCK, return_inverse=True)  # (nb,), (m,)
        self.block_pos = block_pos.to(device)
        self.rows = (draws % DRAW_BLOCK).to(device)

    def _block(self, generator: torch.Generator) -> torch.Tensor:
        return randn((DRAW_BLOCK, *self.shape), generator, self.device)

    def smoothing(self) -> torch.Tensor:
        """Standard normal delta/sigma for each draw, (m, *shape)."""
        gens = [make_generator(self.seed, self.phase, Stream.SMOOTHING, int(b)) for b in self.blocks]
        return torch.stack([self._block(g) for g in gens])[self.block_pos, self.rows]

    def chains(self, rows: torch.Tensor, seeds: torch.Tensor) -> Iterator[torch.Tensor]:
        """Per reverse step, the noise (P, *shape) of the chains (draw rows[p], reverse seed seeds[p])."""
        nb = len(self.blocks)
        keys, key_pos = torch.unique(seeds * nb + self.block_pos[rows], return_inverse=True)  # (seed, block) pairs
        gens = [make_generator(self.seed, self.phase, Stream.REVERSE, key // nb, int(self.blocks[key % nb]))
                for key in keys.tolist()]
        row_in_block = self.rows[rows]
        while True:
            yield torch.stack([self._block(g) for g in gens])[key_pos, row_in_block]


def gaussian_stream(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> Iterator[torch.Tensor]:
    """Standard normal draws of `shape`, one per next(), all from `generator` in order (drawn lazily)."""
    while True:
        yield randn(shape, generator, device)
