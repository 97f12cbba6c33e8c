"""The object a kept visitor photo becomes: upright and without metadata, under a key that carries its
creation time (``visitor/photos/<YYYYmmddTHHMMSS>-<random>.<ext>``, so the orphan sweep of
:mod:`app.services.retention` can judge its age), with a digest keyed by that object key."""

from __future__ import annotations

import hashlib
import io
import secrets
from datetime import datetime, timezone

from PIL import Image

from app.core.db import as_utc, utcnow
from app.core.storage import check_key
from models.intake import decode_image, photo_file_type

VISITOR_PREFIX = "visitor/photos"


def visitor_key(extension: str, now: datetime | None = None) -> str:
    """``visitor/photos/<UTC time>-<32 random hex>.<ext>``; the time lets the orphan sweep judge age."""
    stamp = as_utc(now or utcnow()).astimezone(timezone.utc).strftime("%Y%m%dt%H%M%S")
    return check_key(f"{VISITOR_PREFIX}/{stamp}-{secrets.token_hex(16)}.{extension}")


def key_time(key: str) -> datetime | None:
    """The creation time encoded in a visitor key, or None for a key of another shape."""
    name = key.rsplit("/", 1)[-1]
    try:
        return datetime.strptime(name[:15], "%Y%m%dt%H%M%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def visitor_digest(key: str, data: bytes) -> str:
    """The ``sha256`` kept for a visitor photo: SHA-256 of its object key followed by its bytes.

    Keyed by the (unique, random) object key so the same photo stored twice does not clash with
    the ``(source, sha256)`` uniqueness that deduplicates reference photos, and so a visitor
    photo's hash cannot be matched against the same photo elsewhere. The object can still be
    verified: ``visitor_digest(row.object_key, store.get(row.object_key)) == row.sha256``."""
    return hashlib.sha256(key.encode() + data).hexdigest()


def without_metadata(data: bytes) -> bytes:
    """The photo as it is kept: turned upright by its EXIF orientation, then written again from
    its pixels alone, so no EXIF (GPS position, camera serial, times), XMP, comments or thumbnails
    are kept. JPEGs stay JPEG (quality 95); every other format becomes PNG (lossless)."""
    upright = Image.fromarray(decode_image(data))
    out = io.BytesIO()
    if photo_file_type(data)[0] == "jpg":
        upright.save(out, format="JPEG", quality=95)
    else:
        upright.save(out, format="PNG")
    return out.getvalue()
