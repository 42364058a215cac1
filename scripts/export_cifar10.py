"""Export CIFAR-10 test images from the Hugging Face hub as labelled PNGs, for `evaluate --folder` and `certify FOLDER`.

Writes OUT/test_<idx>_label<k>.png, where idx is the image's index in CIFAR-10's test split and k its class
(0 airplane ... 9 truck, the cifar10 preset's order). The images come from the dataset uoft-cs/cifar10 (its
test split, one parquet file of PNG bytes, about 24 MB, read with pyarrow); the PNGs are written byte for
byte, so no pixel changes. Needs the network once (the file is then in the hub cache); offline it exits with
one line saying so.

    python scripts/export_cifar10.py --out data/cifar10-test --count 500
    python -m densepure_viz evaluate --model cifar10 --folder data/cifar10-test --out results/cifar10 ...
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from anywhere

REPO = "uoft-cs/cifar10"  # dataset repository on the hub
TEST_FILE = "plain_text/test-00000-of-00001.parquet"  # its test split: columns img {bytes, path} and label
TEST_IMAGES = 10_000


def write_images(rows: Iterable[tuple[bytes, int]], out: Path, start: int = 0) -> list[Path]:
    """Write (PNG bytes, label) rows as out/test_<idx>_label<k>.png, idx counting from `start`; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for idx, (png, label) in enumerate(rows, start):
        path = out / f"test_{idx:04d}_label{label}.png"
        path.write_bytes(png)
        written.append(path)
    return written


def test_rows(start: int, count: int) -> list[tuple[bytes, int]]:
    """(PNG bytes, label) of test images start .. start + count - 1, from the hub (or its cache)."""
    import pyarrow.parquet as pq
    from huggingface_hub import hf_hub_download

    table = pq.read_table(hf_hub_download(REPO, TEST_FILE, repo_type="dataset")).slice(start, count)
    return [(img["bytes"], label) for img, label in zip(table.column("img").to_pylist(), table.column("label").to_pylist())]


def unavailable() -> str | None:
    """Why the export cannot run here (one line), or None: checked before any download, which would retry offline."""
    from huggingface_hub import try_to_load_from_cache

    from densepure_viz.models.registry import _hub_reachable

    if not isinstance(try_to_load_from_cache(REPO, TEST_FILE, repo_type="dataset"), str) and not _hub_reachable():
        return (f"cannot reach the Hugging Face hub to download {REPO}'s test split (and it is not in the local cache): "
                "run this where there is network, then copy the exported folder here")
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return "reading the hub's parquet file needs pyarrow: pip install pyarrow"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    parser.add_argument("--count", type=int, default=100, help="images to export")
    parser.add_argument("--start", type=int, default=0, help="index of the first test image")
    args = parser.parse_args(argv)
    if not (0 <= args.start and 1 <= args.count and args.start + args.count <= TEST_IMAGES):
        print(f"error: --start and --count must select images within 0..{TEST_IMAGES - 1}", file=sys.stderr)
        return 2
    reason = unavailable()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    written = write_images(test_rows(args.start, args.count), args.out, args.start)
    print(f"wrote {len(written)} images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
