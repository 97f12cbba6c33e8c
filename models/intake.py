"""Turn uploaded bytes into an upright 8-bit RGB array, or refuse them with a reason.

Every photo in the project enters through :func:`decode_image`. It accepts what phones and
cameras produce (EXIF-rotated JPEGs, CMYK, palette, grayscale, 16-bit, transparent PNGs,
animations: the first frame is used) and refuses, with an :class:`IntakeError`, what cannot be
used. The pixel budget is checked on the header, before any pixel is decoded, so a small file
that claims to be a 30000x30000 image costs nothing.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from app.core.settings import get_settings

MIN_SIDE_PX = 32

INTAKE_MESSAGES: dict[str, str] = {
    "empty": "The file is empty. Choose a photo file and upload it again.",
    "not_an_image": "This file is not a photo we can read. Upload a JPEG, PNG or WebP photo.",
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


def decode_image(data: bytes, max_pixels: int | None = None) -> np.ndarray:
    """Decode photo bytes to an upright HxWx3 uint8 RGB array; raise IntakeError when unusable."""
    if not data:
        raise IntakeError("empty")
    if max_pixels is None:
        max_pixels = get_settings().max_pixels
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

    try:
        image.seek(0)  # first frame of an animation
        image.load()
        image = ImageOps.exif_transpose(image)
        rgb = _to_rgb(image)
    except Image.DecompressionBombError:
        raise IntakeError("too_large") from None
    except (OSError, ValueError, SyntaxError, EOFError):
        raise IntakeError("truncated") from None
    return np.array(rgb, dtype=np.uint8)  # writable, so callers may draw on it


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


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return _sixteen_bit_to_rgb(image)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    # CMYK JPEGs: PIL's conversion applies the Adobe inversion recorded in the file.
    return image.convert("RGB")


def _sixteen_bit_to_rgb(image: Image.Image) -> Image.Image:
    values = np.clip(np.asarray(image, dtype=np.int64), 0, 65535)
    # PIL converts 16-bit grayscale by clipping at 255, which turns most photos white.
    peak = 65535 if values.max() > 255 else 255
    gray = (values * 255 // peak).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")
