"""The image loader against the nasty-file corpus (tests/nasty_files.py): each converts sensibly or fails in one line."""

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from nasty_files import BAD, CONVERTIBLE, animated_gif, digit_like, encode, exif_rotated, sixteen_bit_png, transparent_png
from PIL import Image

from densepure_viz.models.images import ImageError, open_image, to_pil, to_tensor


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_files_fail_with_one_clear_line(name, tmp_path):
    make, message = BAD[name]
    data = make()
    with pytest.raises(ImageError, match=message) as info:
        to_tensor(data, 1, 16)
    assert "\n" not in str(info.value)
    (tmp_path / name).write_bytes(data)  # from a file as from bytes
    with pytest.raises(ImageError, match=message):
        to_tensor(tmp_path / name, 1, 16)


@pytest.mark.parametrize("name", sorted(CONVERTIBLE))
@pytest.mark.parametrize("channels", [1, 3])
def test_odd_modes_and_shapes_convert(name, channels):
    x = to_tensor(CONVERTIBLE[name](), channels, 16)
    assert x.shape == (channels, 16, 16) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1 and torch.isfinite(x).all()


def test_big_jpeg_is_decoded_at_reduced_scale():
    img = open_image(CONVERTIBLE["big-photo.jpg"]())
    assert max(img.size) <= 1000  # 8000x6000 drafted at 1/8: never decoded at full size
    assert to_tensor(CONVERTIBLE["big-photo.jpg"](), 1, 16)[0, :, 7:9].mean() > 0.5  # the bar survives


def test_sixteen_bit_keeps_its_range():
    x = to_tensor(sixteen_bit_png(), 1, 16)
    assert x[0, :, :6].max() < 0.05 and x[0, :, 10:].min() > 0.95


def test_dark_background_inverts_pen_on_paper():
    ink_on_paper = digit_like(ink=0, paper=255)
    x = to_tensor(encode(ink_on_paper), 1, 16, dark_background=True)
    assert x[0, :, 7:9].mean() > 0.7 and x[0, :, :4].max() < 0.05  # light stroke on black, like the digits


def test_transparent_background_becomes_the_model_background():
    x = to_tensor(transparent_png(), 1, 16, dark_background=True)
    assert x[0, :, :4].max() < 0.05 and x[0, :, 7:9].mean() > 0.7


def test_exif_rotation_is_applied():
    rotated = to_tensor(exif_rotated(), 1, 16)  # a vertical bar in a landscape image, EXIF: rotate 90 degrees
    plain = to_tensor(encode(digit_like(size=(40, 20)), "JPEG"), 1, 16)
    # after rotation the bar is horizontal: rows vary more than columns
    assert rotated[0].mean(dim=1).std() > rotated[0].mean(dim=0).std()
    assert plain[0].mean(dim=0).std() > plain[0].mean(dim=1).std()


def test_animated_gif_gives_first_frame():
    assert Image.open(io.BytesIO(animated_gif())).n_frames == 2
    assert to_tensor(animated_gif(), 1, 16).max() > 0.5


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
