"""Time the exact 2D world's region maps (issue: a 200x200 map of a 10-component mixture in well under 1 s).

    python -m bench.toy2d [--resolution 200] [--repeats 5]

Prints a Markdown table: preset, components, grid, best and median wall time of `region_maps`.
"""

from __future__ import annotations

import argparse
import statistics
import time

from densepure_viz.toy2d import PRESETS, GridSpec, region_maps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("| preset | components | grid | best (s) | median (s) |\n|---|---:|---|---:|---:|")
    for name, preset in PRESETS.items():
        grid = GridSpec(preset.grid.x_range, preset.grid.y_range, args.resolution)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            region_maps(preset.mixture, grid, preset.sigma)
            times.append(time.perf_counter() - start)
        print(f"| {name} | {len(preset.mixture.weights)} | {args.resolution}x{args.resolution} | "
              f"{min(times):.3f} | {statistics.median(times):.3f} |")


if __name__ == "__main__":
    main()
