"""The image loader against a corpus of nasty files made here: each converts sensibly or fails in one line."""

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from densepure_viz.images import MAX_BYTES, ImageError, to_pil, to_tensor


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


@pytest.mark.parametrize("data, message", [
    (b"hello, I am not an image", "not an image"),
    (b"", "not an image"),
    (encode(digit_like())[:60], "corrupt or truncated"),
    (png_header_only(100_000, 100_000), "limit"),
    (b"\x00" * (MAX_BYTES + 1), "limit"),
])
def test_bad_files_fail_with_one_clear_line(data, message):
    with pytest.raises(ImageError, match=message) as info:
        to_tensor(data, 1, 16)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("img, fmt", [
    (digit_like("CMYK"), "JPEG"),
    (digit_like("RGB"), "JPEG"),
    (digit_like("P"), "GIF"),
    (digit_like("LA"), "PNG"),
    (digit_like("RGBA"), "WEBP"),
    (digit_like("1"), "BMP"),
    (digit_like("L").convert("I;16"), "PNG"),
    (digit_like("L", size=(1, 1)), "PNG"),
    (digit_like("L", size=(4000, 3)), "PNG"),
    (digit_like("L", size=(3, 4000)), "TIFF"),
])
@pytest.mark.parametrize("channels", [1, 3])
def test_odd_modes_and_shapes_convert(img, fmt, channels):
    x = to_tensor(encode(img, fmt), channels, 16)
    assert x.shape == (channels, 16, 16) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1 and torch.isfinite(x).all()


def test_sixteen_bit_keeps_its_range():
    arr = np.zeros((16, 16), np.uint16)
    arr[:, 8:] = 65535
    x = to_tensor(encode(Image.fromarray(arr)), 1, 16)
    assert x[0, :, :6].max() < 0.05 and x[0, :, 10:].min() > 0.95


def test_dark_background_inverts_pen_on_paper():
    ink_on_paper = digit_like(ink=0, paper=255)
    x = to_tensor(encode(ink_on_paper), 1, 16, dark_background=True)
    assert x[0, :, 7:9].mean() > 0.7 and x[0, :, :4].max() < 0.05  # light stroke on black, like the digits


def test_transparent_background_becomes_the_model_background():
    rgba = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    rgba.paste((255, 255, 255, 255), (8, 0, 12, 20))
    x = to_tensor(encode(rgba), 1, 16, dark_background=True)
    assert x[0, :, :4].max() < 0.05 and x[0, :, 7:9].mean() > 0.7


def test_exif_rotation_is_applied():
    img = digit_like(size=(40, 20))  # a vertical bar in a landscape image
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    rotated = to_tensor(encode(img, "JPEG", exif=exif.tobytes()), 1, 16)
    plain = to_tensor(encode(img, "JPEG"), 1, 16)
    # after rotation the bar is horizontal: rows vary more than columns
    assert rotated[0].mean(dim=1).std() > rotated[0].mean(dim=0).std()
    assert plain[0].mean(dim=0).std() > plain[0].mean(dim=1).std()


def test_animated_gif_gives_first_frame():
    first, second = digit_like("P"), Image.new("P", (32, 32), 0)
    data = encode(first, "GIF", save_all=True, append_images=[second], duration=100)
    assert to_tensor(data, 1, 16).max() > 0.5


def test_round_trip_of_a_model_sized_image():
    x = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0))
    back = to_tensor(encode(to_pil(x)), 1, 16)
    assert (back - x).abs().max() <= 1 / 255 + 1e-6


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40), st.sampled_from([1, 3, 4]))),
       st.sampled_from([1, 3]), st.booleans())
def test_any_small_array_converts(array, channels, dark):
    x = to_tensor(array, channels, 16, dark_background=dark)
    assert x.shape == (channels, 16, 16) and 0 <= x.min() and x.max() <= 1


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data):
    try:
        x = to_tensor(data, 1, 16)
    except ImageError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert x.shape == (1, 16, 16)
