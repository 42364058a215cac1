"""Explicit, order-independent random streams: every draw comes from a generator named by its keys.

A generator is derived from (seed, *keys) with numpy's SeedSequence, so the noise of one trajectory
depends only on what it is (which seed, which phase, which block of noise draws, which of the K
reverse seeds) and never on what else shares its batch. This is what lets the engine batch, chunk,
resume and stop decided draws early while giving exactly the same trajectories, votes and radius.
The global RNG is never touched.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import torch


class Stream(IntEnum):
    """What a generator is for; part of its key so streams never collide."""

    PURIFY = 0  # the single noise draw of an interactive purification
    SELECT = 1  # CERTIFY's n0 selection draws
    ESTIMATE = 2  # CERTIFY's n estimation draws
    SMOOTHING = 10  # the randomized-smoothing noise delta of a block of draws
    REVERSE = 11  # the reverse-process noise of one seed within a block
    ATTACK_START = 20  # PGD's random start
    ATTACK_EOT = 21  # the adaptive attack's noise draws, one generator per PGD step


def derive_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed determined by (seed, *keys) (SeedSequence hashing: distinct keys, independent streams)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, *map(int, keys)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def make_generator(seed: int, *keys: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on `device` seeded by derive_seed(seed, *keys)."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, *keys))
