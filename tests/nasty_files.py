"""A corpus of nasty image files, made on the fly: shared by the loader tests and the API tests.

`BAD` files must be refused with one line matching their pattern; `CONVERTIBLE` files must become a
sensible tensor. Each entry builds its bytes when called, so importing this module costs nothing.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image

from densepure_viz.models.images import MAX_BYTES, MAX_PIXELS


def encode(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height, with one tiny IDAT: a decompression-bomb shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def digit_like(mode: str = "L", size=(32, 32), ink=255, paper=0) -> Image.Image:
    """A bar in the middle: ink on paper."""
    arr = np.full(size[::-1], paper, np.uint8)
    arr[:, size[0] // 2 - 2 : size[0] // 2 + 2] = ink
    return Image.fromarray(arr, "L").convert(mode)


def exif_rotated() -> bytes:
    """A JPEG of a vertical bar in a landscape frame, with EXIF orientation 6 (rotate 90 degrees on display)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(digit_like(size=(40, 20)), "JPEG", exif=exif.tobytes())


def animated_gif() -> bytes:
    """Two frames: a bar, then black (the loader must take the first)."""
    return encode(digit_like("P"), "GIF", save_all=True, append_images=[Image.new("P", (32, 32), 0)], duration=100)


def transparent_png() -> bytes:
    """A white bar on a fully transparent background."""
    rgba = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    rgba.paste((255, 255, 255, 255), (8, 0, 12, 20))
    return encode(rgba)


def sixteen_bit_png() -> bytes:
    """A 16-bit greyscale PNG, dark left half and full-scale (65535) right half."""
    arr = np.zeros((16, 16), np.uint16)
    arr[:, 8:] = 65535
    return encode(Image.fromarray(arr))


def big_photo_jpeg() -> bytes:
    """An 8000x6000 (48 MP) JPEG: above MAX_PIXELS, accepted because JPEGs are decoded at 1/8 scale."""
    arr = np.zeros((6000, 8000), np.uint8)
    arr[:, 3500:4500] = 255  # a bar an eighth of the width: it survives the downscaling
    return encode(Image.fromarray(arr, "L"), "JPEG", quality=50)


# name -> (bytes factory, regex the one-line error must match)
BAD: dict[str, tuple[Callable[[], bytes], str]] = {
    "text.png": (lambda: b"hello, I am not an image", "not an image"),
    "empty.png": (lambda: b"", "not an image"),
    "truncated.png": (lambda: encode(digit_like())[:60], "corrupt or truncated"),
    "truncated.jpg": (lambda: encode(digit_like("RGB", size=(64, 64)), "JPEG")[:200], "corrupt or truncated"),
    "bomb.png": (lambda: png_header_only(100_000, 100_000), "limit"),  # Pillow's own bomb guard
    "huge.png": (lambda: png_header_only(8000, 6000), "limit"),  # 48 MP PNG: above MAX_PIXELS, never decoded
    "oversize.png": (lambda: b"\x00" * (MAX_BYTES + 1), "limit"),  # above the file-size cap
}

# name -> bytes factory; each converts to a tensor in [0, 1] of the requested shape
CONVERTIBLE: dict[str, Callable[[], bytes]] = {
    "cmyk.jpg": lambda: encode(digit_like("CMYK"), "JPEG"),
    "rgb.jpg": lambda: encode(digit_like("RGB"), "JPEG"),
    "palette.gif": lambda: encode(digit_like("P"), "GIF"),
    "grey-alpha.png": lambda: encode(digit_like("LA"), "PNG"),
    "rgba.webp": lambda: encode(digit_like("RGBA"), "WEBP"),
    "bilevel.bmp": lambda: encode(digit_like("1"), "BMP"),
    "sixteen-bit.png": sixteen_bit_png,
    "one-pixel.png": lambda: encode(digit_like("L", size=(1, 1)), "PNG"),
    "wide.png": lambda: encode(digit_like("L", size=(4000, 3)), "PNG"),
    "tall.tiff": lambda: encode(digit_like("L", size=(3, 4000)), "TIFF"),
    "exif-rotated.jpg": exif_rotated,
    "animated.gif": animated_gif,
    "transparent.png": transparent_png,
    "big-photo.jpg": big_photo_jpeg,
}

assert 8000 * 6000 > MAX_PIXELS  # huge.png and big-photo.jpg straddle the pixel cap
