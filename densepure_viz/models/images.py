"""Image input/output: any reasonable file -> a (C, H, W) float tensor in [0, 1] at the model's size.

Decoding is bounded (Pillow's decompression-bomb guard stays on, JPEGs are decoded at reduced scale
with `draft`, nothing above MAX_PIXELS is decoded, and images are reduced with `thumbnail` before
full-size work), EXIF orientation is applied, animations give their first frame, transparency is
composited onto the background, and every other mode (CMYK, 16-bit, palette) is converted. What
cannot be read raises ImageError with one clear line.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from densepure_viz.errors import InputError

MAX_PIXELS = 40_000_000  # refuse images above this many pixels (Pillow's own bomb limit is ~89M)
MAX_BYTES = 25 * 2**20  # refuse files larger than 25 MiB
WORK_SIZE = 512  # images are reduced to at most this side before any further processing
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class ImageError(InputError):
    """An input that is not a usable image; the message says why in one line."""


def open_image(source: str | Path | bytes | Image.Image | np.ndarray) -> Image.Image:
    """Decode `source` (path, bytes, PIL image or HxW[xC] uint8/float array) into a loaded PIL image."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source)
    data = source if isinstance(source, bytes) else _read_file(Path(source))
    if len(data) > MAX_BYTES:
        raise ImageError(f"image file is {len(data) / 2**20:.0f} MiB; the limit is {MAX_BYTES // 2**20} MiB")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.seek(0)  # first frame of an animation
            img.draft("RGB", (WORK_SIZE, WORK_SIZE))  # JPEG: decode at 1/2..1/8 scale (a 48 MP photo passes)
            if img.width * img.height > MAX_PIXELS:  # the size that would be decoded
                raise ImageError(f"image is {img.width}x{img.height} pixels; the limit is {MAX_PIXELS:,} pixels")
            img.load()
            return img.copy()
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image is too large to decode safely ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError("not an image file Pillow can read (expected PNG, JPEG, GIF, BMP, WebP or TIFF)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"image file is corrupt or truncated ({exc})") from None


def _read_file(path: Path) -> bytes:
    if not path.is_file():
        raise ImageError(f"no such image file: {path}")
    if path.stat().st_size > MAX_BYTES:
        raise ImageError(f"image file is {path.stat().st_size / 2**20:.0f} MiB; the limit is {MAX_BYTES // 2**20} MiB")
    return path.read_bytes()


def _from_array(array: np.ndarray) -> Image.Image:
    """A PIL image from an (H, W), (H, W, 1|3|4) uint8 array or a float array in [0, 1]."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)) or min(array.shape[:2]) < 1:
        raise ImageError(f"image array must be HxW or HxWxC with C in 1, 3, 4; got shape {array.shape}")
    if array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise ImageError(f"image is {array.shape[1]}x{array.shape[0]} pixels; the limit is {MAX_PIXELS:,} pixels")
    if array.dtype != np.uint8:
        array = (np.nan_to_num(array.astype(np.float64)).clip(0, 1) * 255).round().astype(np.uint8)
    return Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array)


def _flatten(img: Image.Image, background: int) -> Image.Image:
    """RGB or L without alpha: transparency composited onto a uniform `background` grey level."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray((arr.clip(0, hi) / hi * 255).round().astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (background,) * 3 + (255,))
        img = Image.alpha_composite(canvas, rgba)
    return img.convert("RGB") if img.mode not in ("L", "RGB") else img


@dataclass
class ConvertedImage:
    """An image as a model sees it, and what the conversion changed (for a note next to the picture)."""

    tensor: torch.Tensor  # (channels, size, size) float32 in [0, 1]
    notes: list[str]  # e.g. ["resized from 640x480 to 16x16", "colour turned to grey", "inverted ..."]


def convert_image(
    source: str | Path | bytes | Image.Image | np.ndarray,
    channels: int,
    size: int,
    dark_background: bool = False,
) -> ConvertedImage:
    """Image -> (channels, size, size) float32 in [0, 1], with notes on what changed.

    The image is padded to a square (with its border colour), reduced with antialiasing, and
    converted to grey or RGB. With `dark_background` (models trained on light strokes on black, like
    the digits), an image whose border is light is inverted, so a pen drawing on white paper works.
    """
    img = open_image(source)
    if min(img.size) < 1:
        raise ImageError("image has no pixels")
    width, height = img.size
    img = _flatten(img, background=0 if dark_background else 255)
    img.thumbnail((WORK_SIZE, WORK_SIZE), Image.Resampling.BOX)
    rgb = np.asarray(img) if img.mode == "RGB" else None
    colour = rgb is not None and bool((rgb != rgb[..., :1]).any())  # some pixel is not grey
    img = img.convert("L" if channels == 1 else "RGB")
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = arr[..., None] if arr.ndim == 2 else arr  # (H, W, C)
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]]).mean(axis=0)  # (C,)
    inverted = dark_background and border.mean() > 0.5
    if inverted:
        arr, border = 1.0 - arr, 1.0 - border
    h, w = arr.shape[:2]
    side = max(h, w)
    square = np.broadcast_to(border, (side, side, arr.shape[2])).copy()
    square[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = arr
    tensor = torch.from_numpy(square).permute(2, 0, 1).unsqueeze(0)  # (1, C, side, side)
    tensor = torch.nn.functional.interpolate(tensor, size=(size, size), mode="area" if side >= size else "bilinear")
    notes = [f"padded to a square ({width}x{height})"] if width != height else []
    notes += [f"resized from {width}x{height} to {size}x{size}"] if (width, height) != (size, size) else []
    notes += ["colour turned to grey"] if colour and channels == 1 else []
    notes += ["inverted: light background, and the model was trained on light strokes on black"] if inverted else []
    return ConvertedImage(tensor[0].clamp(0, 1).contiguous(), notes)


def to_tensor(
    source: str | Path | bytes | Image.Image | np.ndarray,
    channels: int,
    size: int,
    dark_background: bool = False,
) -> torch.Tensor:
    """Image -> (channels, size, size) float32 in [0, 1] (convert_image without its notes)."""
    return convert_image(source, channels, size, dark_background).tensor


def to_pil(image: torch.Tensor, scale: int = 1) -> Image.Image:
    """(C, H, W) in [0, 1] -> PIL image, enlarged `scale` times with nearest-neighbour for legibility."""
    arr = (image.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    img = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST) if scale > 1 else img


def save_image(image: torch.Tensor, path: str | Path) -> None:
    """Write (C, H, W) in [0, 1] as an 8-bit PNG (or any suffix Pillow knows)."""
    to_pil(image).save(path)


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
