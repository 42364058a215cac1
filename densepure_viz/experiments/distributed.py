"""Running `evaluate` under PyTorch's launcher (`torchrun`): who am I, which device, which images, wait for all.

torchrun starts one process per device and tells each its place through the environment (RANK,
WORLD_SIZE, LOCAL_RANK; see torch.distributed.run). This module reads that, joins the process group
(NCCL on CUDA, gloo on CPU), gives each rank its own device (cuda:LOCAL_RANK) and its share of the
images, and offers the one collective evaluate needs: a barrier. Nothing else crosses processes: the
records are files in the shared output folder. Without torchrun every function here is a no-op and a
run is the single process it always was.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

# At paper scale one image is minutes to hours of UNet work, and a rank that finished its share waits at
# the final barrier for the slowest rank's last image; the libraries' defaults (10 to 30 minutes) would
# abort a healthy run.
BARRIER_TIMEOUT = timedelta(hours=48)


@dataclass(frozen=True)
class Rank:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int = 0  # global rank, 0..world_size-1 (RANK)
    world_size: int = 1  # processes in the job, over all machines (WORLD_SIZE)
    local_rank: int = 0  # rank on this machine: which of its GPUs to use (LOCAL_RANK)

    @property
    def distributed(self) -> bool:
        """Whether there are other ranks to share work with (a 1-process torchrun job runs as without it)."""
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0 merges the records and writes the outputs."""
        return self.rank == 0


SINGLE = Rank()  # a run without torchrun


def rank_from_env(env: Mapping[str, str] = os.environ) -> Rank:
    """The Rank torchrun set in `env` (SINGLE when it did not)."""
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return SINGLE
    return Rank(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))


def rank_device(rank: Rank, requested: str | None) -> torch.device:
    """The device of this rank: `requested` (None: CUDA if present, else CPU), with a bare "cuda" made
    cuda:LOCAL_RANK so the ranks on one machine use one GPU each."""
    name = requested or ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", rank.local_rank)
    return device


@contextmanager
def process_group(rank: Rank, device: torch.device) -> Iterator[None]:
    """Join torchrun's process group for the duration (NCCL for a CUDA device, else gloo); a no-op for one rank.

    torchrun's environment carries the rendezvous (MASTER_ADDR/MASTER_PORT), so "env://" needs no address.
    """
    if not rank.distributed:
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=BARRIER_TIMEOUT, device_id=device)
    else:
        dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier(rank: Rank) -> None:
    """Wait until every rank gets here (a no-op for one rank)."""
    if rank.distributed:
        dist.barrier()


def shard(items: Sequence[int], rank: Rank) -> list[int]:
    """This rank's share of `items`: every world_size-th one, starting at its rank.

    Called on the images still to do (the same list on every rank, read after a barrier), so a resumed
    run spreads what is left evenly instead of leaving it all to the rank that was killed.
    """
    return list(items[rank.rank :: rank.world_size])
