"""Pictures of stored photos for the Labeling pages: the canvas background and previews with the
region boxes drawn on (conflict panel, queue thumbnails). No Streamlit here; the pages cache them."""

from __future__ import annotations

import io
from typing import Iterable, Mapping

from PIL import Image, ImageDraw

from app.core.storage import ObjectStore, get_store
from labeling.canvas import region_color
from models.intake import decode_image


def _upright(object_key: str, store: ObjectStore | None = None) -> Image.Image:
    return Image.fromarray(decode_image((store or get_store()).get(object_key)))


def _jpeg(image: Image.Image, quality: int = 88) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def canvas_background(object_key: str, width: int, height: int, store: ObjectStore | None = None) -> bytes:
    """The photo, upright, scaled to ``width`` x ``height`` (the canvas), as JPEG bytes."""
    return _jpeg(_upright(object_key, store).resize((width, height), Image.Resampling.LANCZOS))


def boxes_preview(object_key: str, boxes: Mapping[str, Iterable[float]], max_side: int = 640,
                  store: ObjectStore | None = None) -> bytes:
    """The photo scaled to fit ``max_side`` with ``boxes`` (original pixels) drawn in the region colours, as JPEG."""
    image = _upright(object_key, store)
    scale = min(1.0, max_side / max(image.size))
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                         Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(image)
    for region, box in boxes.items():
        x0, y0, x1, y1 = (float(v) * scale for v in box)
        draw.rectangle([x0, y0, x1, y1], outline=region_color(region), width=3)
        draw.text((x0 + 4, y0 + 2), region, fill=region_color(region))
    return _jpeg(image)
