"""Image intake: every format a phone or camera produces becomes upright RGB; unusable files are refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from models.intake import MIN_SIDE_PX, IntakeError, decode_image, read_image_file
from tests.conftest_paths import TEST_DATA

FACES = TEST_DATA / "faces"
BAD = TEST_DATA / "bad"


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def gradient_rgb(width=120, height=80) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    y = np.linspace(0, 255, height, dtype=np.uint8)
    pixels = np.stack([np.tile(x, (height, 1)), np.tile(y[:, None], (1, width)), np.full((height, width), 60, np.uint8)], -1)
    return Image.fromarray(pixels, "RGB")


def assert_rgb(array: np.ndarray, width: int, height: int) -> None:
    assert array.dtype == np.uint8
    assert array.shape == (height, width, 3)


def test_exif_orientation_is_applied():
    image = gradient_rgb(120, 80)
    image.putpixel((0, 0), (255, 0, 0))
    # Store the pixels rotated and let orientation 6 ("rotate 90 clockwise to show") undo it.
    stored = image.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    array = decode_image(encode(stored, "PNG", exif=exif))
    assert_rgb(array, 120, 80)
    assert np.abs(array.astype(int) - np.asarray(image).astype(int)).max() == 0


def test_shared_exif_rotated_photo_matches_the_upright_one():
    upright = read_image_file(FACES / "obama.jpg")
    rotated = read_image_file(FACES / "obama_exif_rotated.jpg")
    assert rotated.shape == upright.shape
    assert np.abs(rotated.astype(int) - upright.astype(int)).mean() < 8


def test_cmyk_jpeg_becomes_rgb_with_the_right_colours():
    image = gradient_rgb()
    array = decode_image(encode(image.convert("CMYK"), "JPEG", quality=95))
    assert_rgb(array, 120, 80)
    assert np.abs(array.astype(int) - np.asarray(image).astype(int)).mean() < 6


def test_shared_cmyk_photo_matches_the_rgb_one():
    rgb = read_image_file(FACES / "obama.jpg")
    cmyk = read_image_file(FACES / "obama_cmyk.jpg")
    assert cmyk.shape == rgb.shape
    assert np.abs(cmyk.astype(int) - rgb.astype(int)).mean() < 8


def test_rgba_is_composited_on_white():
    image = Image.new("RGBA", (64, 64), (0, 0, 255, 255))
    for x in range(32, 64):
        for y in range(64):
            image.putpixel((x, y), (0, 0, 0, 0))  # fully transparent black
    array = decode_image(encode(image, "PNG"))
    assert_rgb(array, 64, 64)
    assert tuple(array[10, 10]) == (0, 0, 255)
    assert tuple(array[10, 50]) == (255, 255, 255)


def test_palette_image_with_transparency():
    image = gradient_rgb().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    array = decode_image(encode(image, "PNG", transparency=0))
    assert_rgb(array, 120, 80)


def test_palette_gif():
    image = gradient_rgb().convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    expected = np.asarray(image.convert("RGB"))
    array = decode_image(encode(image, "GIF"))
    assert_rgb(array, 120, 80)
    assert np.abs(array.astype(int) - expected.astype(int)).max() <= 8


def test_grayscale_becomes_three_equal_channels():
    image = gradient_rgb().convert("L")
    array = decode_image(encode(image, "PNG"))
    assert_rgb(array, 120, 80)
    assert (array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all()
    assert (array[..., 0] == np.asarray(image)).all()


def test_sixteen_bit_grayscale_keeps_its_contrast():
    ramp = np.tile(np.linspace(0, 65535, 100).astype(np.uint16), (50, 1))
    image = Image.fromarray(ramp)
    assert image.mode == "I;16"
    array = decode_image(encode(image, "PNG"))
    assert_rgb(array, 100, 50)
    assert array[0, 0, 0] == 0 and array[0, -1, 0] == 255
    assert 100 < array[0, 50, 0] < 160  # mid-grey, not clipped to white


def test_animated_gif_gives_the_first_frame():
    red = Image.new("RGB", (64, 48), (255, 0, 0))
    green = Image.new("RGB", (64, 48), (0, 255, 0))
    data = encode(red, "GIF", save_all=True, append_images=[green], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    array = decode_image(data)
    assert_rgb(array, 64, 48)
    assert tuple(array[20, 20]) == (255, 0, 0)


def test_webp_and_bmp_are_accepted():
    for fmt in ("WEBP", "BMP"):
        assert_rgb(decode_image(encode(gradient_rgb(), fmt)), 120, 80)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"this is a text file, not a photo\n", "not_an_image"),
        (b"\xff\xd8\xff\xe0 not really a jpeg", "not_an_image"),
    ],
)
def test_refuses_bytes_that_are_not_photos(data, reason):
    with pytest.raises(IntakeError) as error:
        decode_image(data)
    assert error.value.reason == reason
    assert error.value.message


def test_refuses_a_truncated_photo():
    data = encode(gradient_rgb(400, 300), "JPEG", quality=90)
    with pytest.raises(IntakeError) as error:
        decode_image(data[: len(data) // 3])
    assert error.value.reason == "truncated"


def test_pixel_budget_is_checked_before_decoding():
    image = gradient_rgb(200, 100)
    data = encode(image, "PNG")
    assert decode_image(data, max_pixels=200 * 100).shape == (100, 200, 3)
    with pytest.raises(IntakeError) as error:
        decode_image(data, max_pixels=200 * 100 - 1)
    assert error.value.reason == "too_large"


def test_too_small():
    ok = encode(Image.new("RGB", (MIN_SIDE_PX, MIN_SIDE_PX)), "PNG")
    assert decode_image(ok).shape == (MIN_SIDE_PX, MIN_SIDE_PX, 3)
    with pytest.raises(IntakeError) as error:
        decode_image(encode(Image.new("RGB", (400, MIN_SIDE_PX - 1)), "PNG"))
    assert error.value.reason == "too_small"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty.png", "empty"),
        ("not_an_image.jpg", "not_an_image"),
        ("truncated.jpg", "truncated"),
        ("pixel_bomb.png", "too_large"),
        ("tiny_8x8.png", "too_small"),
    ],
)
def test_shared_bad_files_get_their_reason(name, reason):
    with pytest.raises(IntakeError) as error:
        read_image_file(BAD / name)
    assert error.value.reason == reason
    assert len(error.value.message) > 20


def test_every_shared_face_photo_decodes():
    for path in sorted(FACES.iterdir()):
        if path.suffix != ".json":
            array = read_image_file(path)
            assert array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3


@pytest.mark.parametrize("fmt, expected", [("JPEG", ("jpg", "image/jpeg")), ("PNG", ("png", "image/png")),
                                           ("WEBP", ("webp", "image/webp")), ("GIF", ("gif", "image/gif")),
                                           ("BMP", ("bin", "application/octet-stream"))])
def test_photo_file_type_names_stored_photos(fmt, expected):
    from models.intake import photo_file_type

    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), "gray").save(buffer, format=fmt)
    assert photo_file_type(buffer.getvalue()) == expected
    assert photo_file_type(b"not an image") == ("bin", "application/octet-stream")
