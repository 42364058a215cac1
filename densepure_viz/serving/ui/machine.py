"""How the server uses its machine: torch's threads sized to the CPUs this process may run on.

torch starts with one thread per physical core it sees, which in a container (a Space, a CI runner) is the
host's, not the share the container may use: on a 2-CPU container of a 64-core host, 32 threads fight over 2
CPUs. The app's network calls run one batch at a time (engine.batching), so one pool of threads serves them
all; `main` sizes it once, before serving (tests and scripts keep their own). It leaves one CPU to the rest of
the server (the event loop, HTTP, drawing and encoding the frames): on a 2-CPU machine with a class of 30
sending their own requests (bench.load --scenario own-seeds), one compute thread answered with p95 7.3-8.2 s
and 0.23-0.25 s of server CPU per request, two threads with 9.1-10.8 s and 0.27-0.32 s (bench/RESULTS-load.md).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")  # "QUOTA PERIOD" or "max PERIOD"
CGROUP_V1 = (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))


def _cgroup_cpus() -> float | None:
    """CPUs the container's quota allows (cgroup v2, else v1), or None when there is no quota."""
    try:
        if CGROUP_V2.is_file():
            quota, period = CGROUP_V2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        if all(p.is_file() for p in CGROUP_V1):
            quota, period = (int(p.read_text()) for p in CGROUP_V1)
            return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None
    return None


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a container's CPU quota (rounded up)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_cpus()
    return max(1, min(cpus, math.ceil(quota)) if quota else cpus)


def compute_threads() -> int:
    """torch threads for the server: one per usable CPU but one, left to the event loop and the frames (at least 1)."""
    return max(1, usable_cpus() - 1)


def size_torch_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to `threads` (default: compute_threads()) and return the number set."""
    threads = threads or compute_threads()
    torch.set_num_threads(threads)
    return threads
