"""Turn uploaded bytes into an upright 8-bit RGB array, or refuse them with a reason.

Every photo in the project enters through :func:`decode_image`. It accepts what phones and
cameras produce (EXIF-rotated JPEGs, CMYK, palette, grayscale, 16-bit, transparent PNGs,
animations: the first frame is used) and refuses, with an :class:`IntakeError`, what cannot be
used. The pixel budget is checked on the header, before any pixel is decoded, so a small file
that claims to be a 30000x30000 image costs nothing; memory per decode is bounded by a second,
lower budget (JPEGs are decoded reduced to fit it), and decodes running at once are limited.
"""

from __future__ import annotations

import io
import math
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from app.core.settings import get_settings

MIN_SIDE_PX = 32
#: The photo formats the pages ask for, by name (uploaders' labels, refusals).
PHOTO_FORMATS = "JPEG, PNG or WebP"

INTAKE_MESSAGES: dict[str, str] = {
    "empty": "The file is empty. Choose a photo file and upload it again.",
    "not_an_image": f"This file is not a photo we can read. Upload a {PHOTO_FORMATS} photo.",
    "truncated": "The photo file is incomplete or damaged. Upload the original photo again.",
    "too_large": "The photo has too many pixels. Upload a smaller photo (for example a phone photo "
    "resized to at most a few thousand pixels a side).",
    "too_small": f"The photo is too small. Upload a photo at least {MIN_SIDE_PX} pixels on each side; "
    "a face needs a few hundred pixels to be recognised.",
}


#: How stored photos are named and served: PIL format -> (file extension, content type).
PHOTO_FILE_TYPES: dict[str, tuple[str, str]] = {
    "jpeg": ("jpg", "image/jpeg"),
    "png": ("png", "image/png"),
    "webp": ("webp", "image/webp"),
    "gif": ("gif", "image/gif"),
}
UNKNOWN_FILE_TYPE = ("bin", "application/octet-stream")


class IntakeError(Exception):
    """An upload that cannot be used; ``reason`` is a short code, ``message`` tells the person what to do."""

    def __init__(self, reason: str, message: str | None = None):
        self.reason = reason
        self.message = message or INTAKE_MESSAGES[reason]
        super().__init__(f"{reason}: {self.message}")


def decode_image(data: bytes, max_pixels: int | None = None, max_side: int | None = None) -> np.ndarray:
    """Decode photo bytes to an upright HxWx3 uint8 RGB array; raise IntakeError when unusable.

    ``max_side`` (default: none) reduces the result to at most that many pixels a side: a JPEG
    is decoded reduced by DCT scaling, anything else decoded whole and then shrunk. The memory a
    decode holds is bounded by ``settings.max_decode_pixels``: a larger JPEG is decoded reduced
    (so the result is smaller than the photo), any other image that large is refused as
    ``too_large``. At most ``settings.max_concurrent_decodes`` decodes run at once per process."""
    return _decode(data, max_pixels, max_side, max_side)[0]


def decode_reduced(data: bytes, min_side: int, max_pixels: int | None = None,
                   max_side: int | None = None) -> tuple[np.ndarray, float]:
    """(image, scale): the photo as :func:`decode_image` gives it, but a JPEG decoded reduced by DCT
    scaling alone (1/2, 1/4 or 1/8, no resampling after) as far as its longer side stays at least
    ``min_side``; what is still longer than ``max_side`` (a PNG or WebP, or a JPEG decoded whole) is
    then shrunk to it. ``scale`` is original pixels per pixel of the image (1 when whole)."""
    return _decode(data, max_pixels, min_side, max_side)


def _decode(data: bytes, max_pixels: int | None, draft_side: int | None,
            max_side: int | None) -> tuple[np.ndarray, float]:
    """(image, scale): a JPEG drafted (DCT-reduced) as far as its longer side stays ``draft_side``
    (:func:`_draft`), then anything still longer than ``max_side`` shrunk to it."""
    if not data:
        raise IntakeError("empty")
    settings = get_settings()
    if max_pixels is None:
        max_pixels = settings.max_pixels
    try:
        with warnings.catch_warnings():
            # Our own budget check below replaces PIL's bomb warning; its hard limit stays as a backstop.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise IntakeError("too_large") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise IntakeError("not_an_image") from None

    width, height = image.size
    if width * height > max_pixels:
        raise IntakeError("too_large")
    if width < MIN_SIDE_PX or height < MIN_SIDE_PX:
        raise IntakeError("too_small")

    with _decode_slot(settings.max_concurrent_decodes):
        try:
            image.seek(0)  # first frame of an animation
            scale = 1
            if image.format == "JPEG" and not image.info.get("progressive"):
                scale = _draft(image, settings.max_decode_pixels, draft_side)
            elif width * height > settings.max_decode_pixels // FULL_SIZE_COPIES.get(image.format, 1):
                raise IntakeError("too_large")
            elif image.format == "JPEG":
                scale = _draft(image, settings.max_decode_pixels, draft_side)
            image.load()
            orientation = image.getexif().get(EXIF_ORIENTATION)
            if max_side and max(image.size) > max_side:
                if _has_alpha(image):  # flattened first, the resize holds no premultiplied copy
                    image = _flatten(image)
                decoded_width = image.size[0]
                image = _shrink(image, max_side)
                scale = scale * decoded_width / image.size[0]
            if orientation in ORIENTATION_TRANSPOSE:
                image = image.transpose(ORIENTATION_TRANSPOSE[orientation])
            rgb = _to_rgb(image)
            return np.array(rgb, dtype=np.uint8), scale  # writable, so callers may draw on it
        except Image.DecompressionBombError:
            raise IntakeError("too_large") from None
        except (OSError, ValueError, SyntaxError, EOFError):
            raise IntakeError("truncated") from None


EXIF_ORIENTATION = 0x0112
#: EXIF orientation -> the transpose that shows the photo upright (as ImageOps.exif_transpose).
ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
#: The reductions a JPEG decoder can apply while decoding (DCT scaling).
JPEG_SCALES = (1, 2, 4, 8)
#: Formats whose decode holds more than the image at full size, in units of the decode budget
#: (``max_decode_pixels``), so their full size must fit a smaller share of it. A progressive JPEG
#: keeps every DCT coefficient of the full-size image (2 bytes a sample) however reduced it is
#: decoded, so it is not reduced past the budget but held to it; Pillow decodes WebP through libwebp's
#: animation decoder, which holds two more full RGBA frames besides the image.
FULL_SIZE_COPIES = {"JPEG": 1, "WEBP": 2}


def _draft(image: Image.Image, max_decode_pixels: int, max_side: int | None) -> int:
    """Configure a JPEG to decode reduced: the least reduction that keeps within the decode budget,
    or more, as long as the result stays at least ``max_side`` a side; returns the reduction."""
    width, height = image.size
    fitting = [d for d in JPEG_SCALES if math.ceil(width / d) * math.ceil(height / d) <= max_decode_pixels]
    if not fitting:
        raise IntakeError("too_large")
    scale = fitting[0]
    if max_side:
        scale = max([scale] + [d for d in fitting if max(width, height) / d >= max_side])
    if scale > 1:
        # PIL reduces by the largest DCT scale that keeps the result at least the size asked for, by
        # whole divisions: asking for the rounded-up size would often get half the reduction.
        image.draft(image.mode, (width // scale, height // scale))
    return next(d for d in JPEG_SCALES if math.ceil(width / d) == image.size[0])


def _shrink(image: Image.Image, max_side: int) -> Image.Image:
    """The image resized to ``max_side`` on its longer side, in a mode that resizing keeps exact."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode == "PA":
        image = image.convert("RGBA")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode.startswith("I;16"):
        image = image.convert("I")
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


_decode_slots: dict[int, threading.BoundedSemaphore] = {}
_decode_slots_lock = threading.Lock()


def _decode_slot(limit: int) -> threading.BoundedSemaphore:
    """The process's semaphore that lets ``limit`` decodes run at once."""
    limit = max(1, int(limit))
    with _decode_slots_lock:
        if limit not in _decode_slots:
            _decode_slots[limit] = threading.BoundedSemaphore(limit)
        return _decode_slots[limit]


def photo_file_type(data: bytes) -> tuple[str, str]:
    """(file extension, content type) of photo bytes, from their header alone."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = (image.format or "").lower()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        fmt = ""
    return PHOTO_FILE_TYPES.get(fmt, UNKNOWN_FILE_TYPE)


def read_image_file(path: str | Path) -> np.ndarray:
    """Read and decode a photo file (same rules as :func:`decode_image`)."""
    return decode_image(Path(path).read_bytes())


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info)


def _to_rgb(image: Image.Image) -> Image.Image:
    """The image in RGB, with as few full-size copies as the mode allows (none for an RGB one);
    transparency is composited on white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return _sixteen_bit_to_rgb(image)
    if _has_alpha(image):
        image = _flatten(image)
    # CMYK JPEGs: PIL's conversion applies the Adobe inversion recorded in the file.
    return image if image.mode == "RGB" else image.convert("RGB")


def _flatten(image: Image.Image) -> Image.Image:
    """A transparent image composited on white: gray stays gray (L), anything else becomes RGB."""
    if image.mode == "LA":
        white = Image.new("L", image.size, 255)
        white.paste(image.getchannel("L"), mask=image.getchannel("A"))
        return white
    if image.mode != "RGBA":
        image = image.convert("RGBA")
    white = Image.new("RGB", image.size, (255, 255, 255))
    white.paste(image, mask=image)  # the alpha band blends the colour bands onto white
    return white


def _sixteen_bit_to_rgb(image: Image.Image) -> Image.Image:
    values = np.asarray(image)  # 16-bit unsigned, or 32-bit signed for mode I
    if values.dtype.kind != "u":
        values = np.clip(values, 0, 65535)
    # PIL converts 16-bit grayscale by clipping at 255, which turns most photos white.
    gray = values // 257 if values.max() > 255 else values  # 65535 // 257 == 255
    return Image.fromarray(gray.astype(np.uint8)).convert("RGB")
