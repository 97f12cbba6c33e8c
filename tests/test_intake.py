"""Image intake: every format a phone or camera produces becomes upright RGB; unusable files are refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from models.intake import MIN_SIDE_PX, IntakeError, decode_image, decode_reduced, read_image_file
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


# ----------------------------------------------------------------------------- bounded decodes


@pytest.fixture
def decode_settings(monkeypatch):
    """Set intake settings through the environment; the settings cache is cleared around the test."""
    from app.core.settings import get_settings

    def apply(**values):
        for name, value in values.items():
            monkeypatch.setenv(f"FACETYPE_{name.upper()}", str(value))
        get_settings.cache_clear()

    yield apply
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def draft_calls(monkeypatch):
    """Records the sizes JPEG decodes were asked to reduce to (PIL's DCT scaling)."""
    from PIL import JpegImagePlugin

    calls = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size, *args, **kwargs):
        calls.append(tuple(size))
        return original(self, mode, size, *args, **kwargs)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    return calls


def test_a_large_jpeg_is_decoded_reduced_to_max_side_by_dct_scaling(draft_calls):
    data = encode(gradient_rgb(4000, 3000), "JPEG", quality=80)
    array = decode_image(data, max_side=1000)
    assert_rgb(array, 1000, 750)
    assert draft_calls == [(1000, 750)]  # the decoder produced 1/4 of each side, not the whole photo


def test_max_side_keeps_a_photo_that_already_fits_whole(draft_calls):
    data = encode(gradient_rgb(1280, 960), "JPEG", quality=80)
    assert_rgb(decode_image(data, max_side=2048), 1280, 960)
    assert draft_calls == []


def test_max_side_shrinks_what_dct_scaling_leaves_larger(draft_calls):
    data = encode(gradient_rgb(1600, 1200), "JPEG", quality=80)
    array = decode_image(data, max_side=700)  # 1/2 gives 800x600, then resized
    assert draft_calls == [(800, 600)]
    assert_rgb(array, 700, 525)
    # the content is the photo's, reduced: compare with a plain resize of the full decode
    expected = np.asarray(Image.fromarray(decode_image(data)).resize((700, 525), Image.Resampling.BILINEAR))
    assert np.abs(array.astype(int) - expected.astype(int)).mean() < 4


def test_a_jpeg_over_the_decode_budget_is_decoded_reduced_to_fit(decode_settings, draft_calls):
    decode_settings(max_decode_pixels=300_000)
    data = encode(gradient_rgb(1200, 900), "JPEG", quality=80)  # 1.08 M pixels
    assert_rgb(decode_image(data), 600, 450)  # 1/2 a side fits 300 000
    assert draft_calls == [(600, 450)]


def test_a_jpeg_too_large_even_at_one_eighth_is_refused(decode_settings):
    decode_settings(max_decode_pixels=10_000)
    data = encode(gradient_rgb(1200, 900), "JPEG", quality=80)  # 1/8: 150x113 = 16 950 pixels
    with pytest.raises(IntakeError) as error:
        decode_image(data)
    assert error.value.reason == "too_large"


def test_other_formats_over_the_decode_budget_are_refused_before_decoding(decode_settings, monkeypatch):
    decode_settings(max_decode_pixels=300_000)
    data = encode(gradient_rgb(1200, 900), "PNG")
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded a PNG over the budget"))
    with pytest.raises(IntakeError) as error:
        decode_image(data)  # within max_pixels, over the decode budget
    assert error.value.reason == "too_large"


def test_a_progressive_jpeg_over_the_decode_budget_is_refused_not_decoded_reduced(decode_settings, draft_calls):
    """A progressive JPEG holds every coefficient of the full-size photo however reduced it is
    decoded (a 40 MP one cost 240 MB): its full size is held to the decode budget."""
    decode_settings(max_decode_pixels=300_000)
    image = gradient_rgb(1200, 900)  # 1.08 M pixels
    with pytest.raises(IntakeError) as error:
        decode_image(encode(image, "JPEG", quality=80, progressive=True), max_side=300)
    assert error.value.reason == "too_large"
    assert draft_calls == []
    assert_rgb(decode_image(encode(image, "JPEG", quality=80), max_side=300), 300, 225)  # a baseline one is reduced


def test_a_progressive_jpeg_within_the_decode_budget_is_still_decoded_reduced(decode_settings, draft_calls):
    decode_settings(max_decode_pixels=2_000_000)
    array = decode_image(encode(gradient_rgb(1200, 900), "JPEG", quality=80, progressive=True), max_side=300)
    assert_rgb(array, 300, 225)
    assert draft_calls == [(300, 225)]


def test_a_webp_is_held_to_half_the_decode_budget(decode_settings):
    """libwebp's decoder (as Pillow uses it) holds two more full-size frames than the image."""
    decode_settings(max_decode_pixels=1_000_000)
    assert_rgb(decode_image(encode(gradient_rgb(700, 700), "WEBP")), 700, 700)  # 490 000 pixels
    with pytest.raises(IntakeError) as error:
        decode_image(encode(gradient_rgb(800, 800), "WEBP"))  # 640 000 pixels
    assert error.value.reason == "too_large"


@pytest.mark.parametrize("max_side", [None, 32])
def test_gray_with_alpha_is_composited_on_white(max_side):
    image = Image.new("LA", (64, 64), (40, 255))
    for x in range(32, 64):
        for y in range(64):
            image.putpixel((x, y), (0, 0))  # fully transparent black
    array = decode_image(encode(image, "PNG"), max_side=max_side)
    side = max_side or 64
    assert_rgb(array, side, side)
    assert tuple(array[side // 4, side // 8]) == (40, 40, 40)
    assert tuple(array[side // 4, side - 2]) == (255, 255, 255)


@pytest.mark.parametrize("max_side", [None, 32])
def test_palette_transparency_is_white_and_half_alpha_is_blended(max_side):
    image = Image.new("P", (64, 64), 1)
    image.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    for x in range(32, 64):
        for y in range(64):
            image.putpixel((x, y), 0)
    array = decode_image(encode(image, "PNG", transparency=0), max_side=max_side)
    side = max_side or 64
    assert tuple(array[side // 4, side // 8]) == (0, 0, 255)
    assert tuple(array[side // 4, side - 2]) == (255, 255, 255)
    half = decode_image(encode(Image.new("RGBA", (64, 64), (0, 0, 0, 128)), "PNG"), max_side=max_side)
    assert abs(int(half[5, 5, 0]) - 127) <= 1  # black at half alpha over white


def test_sixteen_bit_values_scale_exactly():
    values = np.array([[0, 257, 257 * 100, 65535]], dtype=np.uint16).repeat(40, axis=0).repeat(10, axis=1)
    array = decode_image(encode(Image.fromarray(values), "PNG"))
    assert [int(array[0, 10 * i, 0]) for i in range(4)] == [0, 1, 100, 255]


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("P", "PNG"), ("1", "PNG"), ("L", "PNG"), ("RGBA", "PNG"), ("LA", "PNG"), ("CMYK", "JPEG"), ("RGB", "WEBP")],
)
def test_max_side_shrinks_every_mode(mode, fmt):
    image = gradient_rgb(800, 400).convert(mode)
    full = decode_image(encode(image, fmt))
    array = decode_image(encode(image, fmt), max_side=200)
    assert_rgb(array, 200, 100)
    expected = np.asarray(Image.fromarray(full).resize((200, 100), Image.Resampling.BILINEAR))
    assert np.abs(array.astype(int) - expected.astype(int)).mean() < 12


def test_max_side_keeps_sixteen_bit_contrast():
    ramp = np.tile(np.linspace(0, 65535, 400).astype(np.uint16), (200, 1))
    array = decode_image(encode(Image.fromarray(ramp), "PNG"), max_side=100)
    assert_rgb(array, 100, 50)
    assert array[0, 0, 0] < 10 and array[0, -1, 0] > 245
    assert 100 < array[0, 50, 0] < 160


def test_max_side_applies_the_exif_orientation():
    image = gradient_rgb(400, 200)
    stored = image.transpose(Image.Transpose.ROTATE_90)  # 200 x 400 as stored
    exif = Image.Exif()
    exif[0x0112] = 6
    for fmt in ("PNG", "JPEG"):
        array = decode_image(encode(stored, fmt, exif=exif), max_side=100)
        assert_rgb(array, 100, 50)
        expected = np.asarray(image.resize((100, 50), Image.Resampling.BILINEAR))
        assert np.abs(array.astype(int) - expected.astype(int)).mean() < 8, fmt


def test_no_more_decodes_run_at_once_than_the_setting(decode_settings, monkeypatch):
    import threading

    import models.intake as intake

    decode_settings(max_concurrent_decodes=2)
    lock = threading.Lock()
    running, most = [0], [0]
    pairs = threading.Barrier(2, timeout=10)  # two decodes must be able to meet inside
    original = intake._to_rgb

    def counting(image):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            pairs.wait()
            return original(image)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(intake, "_to_rgb", counting)
    data = encode(gradient_rgb(200, 100), "PNG")
    errors = []

    def decode():
        try:
            decode_image(data)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=decode) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert most[0] == 2


def test_decode_reduced_gets_the_dct_reduction_it_chose_for_sides_not_divisible_by_it():
    # PIL, asked for the rounded-up size (569x711), reduces by 2 only; 1/4 still keeps 640 a side.
    data = encode(gradient_rgb(2275, 2842), "JPEG", quality=80)
    array, scale = decode_reduced(data, 640)
    assert scale == 4
    assert_rgb(array, 569, 711)  # ceil(2275 / 4) x ceil(2842 / 4): DCT scaling only, no resampling after


def test_decode_reduced_stops_before_the_longer_side_falls_under_min_side():
    array, scale = decode_reduced(encode(gradient_rgb(1279, 960), "JPEG", quality=80), 640)
    assert scale == 1
    assert_rgb(array, 1279, 960)
    array, scale = decode_reduced(encode(gradient_rgb(1280, 960), "JPEG", quality=80), 640)
    assert scale == 2
    assert_rgb(array, 640, 480)


def test_decode_reduced_gives_other_formats_whole():
    array, scale = decode_reduced(encode(gradient_rgb(1600, 1200), "PNG"), 640)
    assert scale == 1
    assert_rgb(array, 1600, 1200)


def test_decode_reduced_shrinks_what_is_still_longer_than_max_side():
    """A PNG (no DCT scaling), or a JPEG decoded whole, is shrunk to ``max_side`` in the decoder, so
    no full-size array reaches the gate; the scale says how much."""
    array, scale = decode_reduced(encode(gradient_rgb(3000, 2000), "PNG"), 640, max_side=1000)
    assert_rgb(array, 1000, 667)
    assert scale == 3.0
    array, scale = decode_reduced(encode(gradient_rgb(2400, 1800), "JPEG", quality=80), 0, max_side=1000)
    assert_rgb(array, 1000, 750)
    assert scale == pytest.approx(2.4)
    # DCT 1/2 (1200 x 900) keeps 640 a side; what is left over 1000 is resampled
    array, scale = decode_reduced(encode(gradient_rgb(2400, 1800), "JPEG", quality=80), 640, max_side=1000)
    assert_rgb(array, 1000, 750)
    assert scale == pytest.approx(2.4)
    array, scale = decode_reduced(encode(gradient_rgb(1600, 1200), "PNG"), 640, max_side=2048)
    assert_rgb(array, 1600, 1200)  # within max_side: untouched
    assert scale == 1


def test_decode_reduced_applies_the_exif_orientation_after_reducing():
    image = gradient_rgb(1600, 1200)
    image.paste((255, 0, 0), (0, 0, 64, 64))  # top-left corner of the upright photo
    stored = image.transpose(Image.Transpose.ROTATE_90)  # what the camera wrote: 1200x1600
    exif = Image.Exif()
    exif[0x0112] = 6
    array, scale = decode_reduced(encode(stored, "JPEG", quality=90, exif=exif), 640)
    assert scale == 2
    assert_rgb(array, 800, 600)
    assert array[8, 8, 0] > 200 and array[8, 8, 1] < 60  # the red corner is top left again
