"""Eager against traced network calls on the CPU, alone and beside a busy Python thread (models.tracing).

    python -m bench.tracing [--threads 1] [--images 8] [--calls 30]

Prints Markdown: milliseconds per call of the shipped digits UNet and classifier, run eagerly (DENSEPURE_TRACE=0)
and traced, first alone, then while another thread of this process runs Python without pause, as the app's
server threads do (Gradio, drawing the pictures). Each call's output is compared with the eager one, bit for bit.
"""

from __future__ import annotations

import argparse
import os
import platform
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import numpy as np
import torch

from bench.sequential import timed
from densepure_viz.models.registry import load_models
from densepure_viz.models.tracing import TRACE_ENV, run_network


@contextmanager
def busy_python() -> Iterator[None]:
    """Another thread running pure Python (it holds the GIL whenever it may) for the duration."""
    stop = threading.Event()

    def spin() -> None:
        n = 0
        while not stop.is_set():
            n += 1

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def ms_per_call(call: Callable[[], torch.Tensor], calls: int) -> float:
    """Median milliseconds of `calls` calls, after one warm-up call."""
    call()
    return 1000 * float(np.median([timed(call)[1] for _ in range(calls)]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the app's server: one per CPU but one)")
    parser.add_argument("--images", type=int, default=8, help="images per call (K = 8 in a default Purify)")
    parser.add_argument("--calls", type=int, default=30, help="timed calls per cell (median)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = load_models("digits", device="cpu")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.images, models.channels, models.image_size, models.image_size, generator=gen)
    t = torch.full((args.images,), 500)
    networks = {"UNet": (models.unet, "unet", (x, t)), "classifier": (models.classifier, "classifier", (x,))}
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} torch thread(s), "
          f"{args.images} images per call, median of {args.calls} calls\n")
    print("| network | eager ms | traced ms | eager ms, Python thread busy | traced ms, Python thread busy | same bits |")
    print("|---|---:|---:|---:|---:|---|")
    with torch.inference_mode():
        for name, (net, kind, inputs) in networks.items():
            row, outs = [], []
            for busy in (False, True):
                for flag in ("0", "1"):
                    os.environ[TRACE_ENV] = flag
                    with busy_python() if busy else nullcontext():
                        row.append(ms_per_call(lambda: run_network(net, kind, *inputs), args.calls))
                    outs.append(run_network(net, kind, *inputs))
            same = all(torch.equal(o, outs[0]) for o in outs)
            eager, traced, eager_busy, traced_busy = row[0], row[1], row[2], row[3]
            print(f"| {name} | {eager:.2f} | {traced:.2f} | {eager_busy:.1f} | {traced_busy:.2f} | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
