"""Pictures of stored photos for the Labeling pages: the canvas background and previews with the
region boxes drawn on (conflict panel, queue thumbnails). No Streamlit here; the pages cache them."""

from __future__ import annotations

import io
from typing import Iterable, Mapping

from PIL import Image, ImageColor, ImageDraw, ImageFont

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
    # Pillow's built-in bitmap font is 11 px whatever the picture's size: unreadable once a 640 px preview is
    # shown half a page wide. Its scalable font at 1/28 of the picture's longer side reads as ~14 px there.
    font = ImageFont.load_default(size=max(12, round(max(image.size) / 28)))
    line = max(3, round(max(image.size) / 200))
    for region, box in boxes.items():
        x0, y0, x1, y1 = (float(v) * scale for v in box)
        color = region_color(region)
        draw.rectangle([x0, y0, x1, y1], outline=color, width=line)
        left, top, right, bottom = draw.textbbox((0, 0), region, font=font)
        w, h = right - left + 8, bottom - top + 6
        y = y0 - h if y0 - h >= 0 else y0  # a chip on the box's top edge, as on the canvas; inside at the top
        draw.rectangle([x0, y, x0 + w, y + h], fill=color)
        luma = sum(c * k for c, k in zip(ImageColor.getrgb(color), (0.299, 0.587, 0.114)))
        ink = (0, 0, 0) if luma > 140 else (255, 255, 255)
        draw.text((x0 + 4 - left, y + 3 - top), region, fill=ink, font=font)
    return _jpeg(image)


def with_dashed_boxes(background: bytes, boxes: Mapping[str, Iterable[float]], scale_x: float, scale_y: float,
                      dash: int = 8, width: int = 2) -> bytes:
    """``background`` (canvas JPEG) with ``boxes`` (original pixels, scaled by ``scale_x``/``scale_y``)
    painted as dashed outlines in the region colours: the model's boxes, shown beside the editable
    ones and never picked up as boxes themselves, because they are pixels of the background."""
    image = Image.open(io.BytesIO(background)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for region, box in boxes.items():
        x0, y0, x1, y1 = (float(box[0]) * scale_x, float(box[1]) * scale_y, float(box[2]) * scale_x,
                          float(box[3]) * scale_y)
        color = region_color(region)
        for (ax, ay), (bx, by) in (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))):
            length = max(abs(bx - ax), abs(by - ay))
            steps = max(1, int(length // dash))
            for i in range(0, steps, 2):
                t0, t1 = i / steps, min(1.0, (i + 1) / steps)
                draw.line([(ax + (bx - ax) * t0, ay + (by - ay) * t0), (ax + (bx - ax) * t1, ay + (by - ay) * t1)],
                          fill=color, width=width)
        label = f"model {region}"
        left, top, right, bottom = draw.textbbox((0, 0), label)
        w, h = right - left + 6, bottom - top + 4
        # corners apart from the editable boxes' labels (top left) and from each other
        x, y = {"face": (x1 - w - 2, y0 + 2), "tzone": (x0 + 2, y1 - h - 2)}.get(region, (x1 - w - 2, y1 - h - 2))
        draw.rectangle([x, y, x + w, y + h], fill=(255, 255, 255))
        draw.text((x + 3, y + 2 - top), label, fill=color)
    return _jpeg(image)
