"""Export the app's sample images: 2 held-out test digits per class, as 16x16 PNGs.

Writes assets/samples/digits/test_<idx>_label<y>.png, where idx is the image's index in the fixed
test split (densepure_viz.models.data.split_digits) and y its true label (the CLI reads it from the name).
Run once from the repository root: `python scripts/export_samples.py`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from anywhere

from densepure_viz.models.data import split_digits  # noqa: E402
from densepure_viz.models.images import save_image  # noqa: E402

OUT = ROOT / "assets" / "samples" / "digits"


def export(out: Path = OUT, per_class: int = 2) -> list[Path]:
    """Save the first `per_class` test images of each class; return the written paths."""
    split = split_digits()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for label in range(10):
        indices = (split.test_labels == label).nonzero().view(-1)[:per_class].tolist()
        for idx in indices:
            path = out / f"test_{idx:04d}_label{label}.png"
            save_image(split.test_images[idx], path)
            written.append(path)
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--per-class", type=int, default=2)
    args = parser.parse_args()
    for path in export(args.out, args.per_class):
        print(path)
