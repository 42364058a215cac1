"""Where the server's time goes: py-spy's raw samples of the load-test server, summed by stage.

    py-spy record -p SERVER_PID -r 50 -f raw -o server.raw --nonblocking   # while bench.load runs
    python -m bench.server_profile server.raw --requests 60 [--rate 50]

py-spy (a sampling profiler, not a dependency of this project) samples every thread of the server.
Each sample goes to the first stage below whose pattern appears anywhere on its stack; samples whose
innermost frame is a wait (an idle worker thread, the event loop's select) are left out, and so are
the stages outside the requests (start-up imports, the users' clients connecting, the warm-up's
certification). Prints Markdown: per stage, busy milliseconds per request and the share of the total.
A thread counts as busy while it runs or waits for a core (py-spy cannot tell them apart), so on a
crowded machine the busy time exceeds the CPU time (bench.load reports that from /proc).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

STAGES: list[tuple[str, tuple[str, ...]]] = [  # (stage, patterns); the first that matches wins
    ("outside the requests: start-up, clients connecting, the warm-up's certification",
     ("_find_and_load", "get_config (", "certify_tab.py", "Blocks.launch (")),
    ("engine: purify (UNet, classifier, vote) and input loading",
     ("purify_stream (", "prepare_input (", "NetworkBatcher._work (")),  # the batcher's thread runs the networks
    ("PNG encoding of output images", ("encode_image (", "encode_pil_to_bytes (", "save_pil_to_cache (")),
    ("Plotly figure to JSON (Gradio)", ("Plot.postprocess (",)),
    ("Plotly vote histogram (building the figure)", ("vote_histogram_figure (",)),
    ("trajectory grid, step view, display images (PIL)", ("trajectory_grid (", "step_view (", "_display (")),
    ("classifier on each shown step (the grid's frame colours)", ("DensePureModels.predict (",)),
    ("Gradio pre/postprocessing (components, updates, files to cache)", ("postprocess_data (", "preprocess_data (")),
    ("Gradio HTTP, queue, SSE, uploads and file downloads", ("uvicorn", "starlette", "fastapi", "queueing.py",
                                                            "routes.py", "route_utils.py", "h11")),
    ("other (threads, handler glue)", ("",)),
]
IDLE = ("select (selectors.py", "Condition.wait (", "Event.wait (", "Queue.get (", "block_thread (", "sleep (")


def stages(raw: Path) -> Counter:
    """Samples per stage of a py-spy raw file (one 'frame;frame;... count' line per distinct stack)."""
    counts: Counter = Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or any(wait in stack.rsplit(";", 1)[-1] for wait in IDLE):
            continue
        stage = next(name for name, patterns in STAGES if any(p in stack for p in patterns))
        counts[stage] += int(n)
    return counts


def table(counts: Counter, requests: int, rate: float) -> str:
    """Markdown: busy ms per request and share, per stage of the requests (outside-the-requests stage apart)."""
    outside = STAGES[0][0]
    inside = {k: v for k, v in counts.items() if k != outside}
    total = sum(inside.values())
    rows = ["| stage | busy ms / request | share |", "|---|---|---|"]
    for name, _ in STAGES[1:]:
        n = inside.get(name, 0)
        rows.append(f"| {name} | {1000 * n / rate / requests:.0f} | {100 * n / max(total, 1):.0f}% |")
    rows.append(f"| **all stages** | **{1000 * total / rate / requests:.0f}** | 100% |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw", type=Path, help="py-spy record -f raw output")
    parser.add_argument("--requests", type=int, required=True, help="requests answered while it was sampled")
    parser.add_argument("--rate", type=float, default=50, help="py-spy's samples per second (-r)")
    args = parser.parse_args(argv)
    print(table(stages(args.raw), args.requests, args.rate))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
