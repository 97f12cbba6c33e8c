"""Pictures of a result: the region overlay and the shareable PNG card."""

from __future__ import annotations

import io
import logging
import textwrap
from datetime import date, datetime

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from app.core.vocabulary import REGION_LABELS, REGIONS, region_rgb
from app.services.analysis import VisitResult

log = logging.getLogger(__name__)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def draw_regions(image: np.ndarray | Image.Image, boxes: dict, max_side: int | None = None,
                 crop_margin: float | None = None) -> Image.Image:
    """The photo with the region boxes drawn and labelled (a new RGB image).

    ``crop_margin`` crops to the regions' bounding box grown by that fraction on every side;
    ``max_side`` scales the result down before drawing, so lines and labels stay readable."""
    canvas = (image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))).convert("RGB")
    boxes = {r: [float(v) for v in b] for r, b in (boxes or {}).items() if r in REGIONS}
    if crop_margin is not None and boxes:
        xs0, ys0, xs1, ys1 = zip(*boxes.values())
        x0, y0, x1, y1 = min(xs0), min(ys0), max(xs1), max(ys1)
        mx, my = (x1 - x0) * crop_margin, (y1 - y0) * crop_margin
        left, top = max(0, int(x0 - mx)), max(0, int(y0 - my))
        right, bottom = min(canvas.width, int(x1 + mx)), min(canvas.height, int(y1 + my))
        if right - left > 8 and bottom - top > 8:
            canvas = canvas.crop((left, top, right, bottom))
            boxes = {r: [b[0] - left, b[1] - top, b[2] - left, b[3] - top] for r, b in boxes.items()}
    canvas = canvas.copy()
    if max_side and max(canvas.size) > max_side:
        scale = max_side / max(canvas.size)
        canvas = canvas.resize((max(1, round(canvas.width * scale)), max(1, round(canvas.height * scale))),
                               Image.LANCZOS)
        boxes = {r: [v * scale for v in b] for r, b in boxes.items()}
    line = max(2, round(max(canvas.size) / 250))
    draw = ImageDraw.Draw(canvas)
    font = _font(max(12, round(max(canvas.size) / 40)))
    for region in REGIONS:
        if region not in boxes:
            continue
        x0, y0, x1, y1 = boxes[region]
        color = region_rgb(region)
        draw.rectangle([x0, y0, x1, y1], outline=color, width=line)
        label = REGION_LABELS[region]
        size = getattr(font, "size", 12)
        tx = x0 + line
        ty = max(0.0, y0 - size - 2 * line) if region == "face" else y0 + line
        bbox = draw.textbbox((tx, ty), label, font=font)
        draw.rectangle([bbox[0] - 2, bbox[1] - 2, bbox[2] + 2, bbox[3] + 2], fill=color)
        draw.text((tx, ty), label, fill=(255, 255, 255), font=font)
    return canvas


def _type_badge(draw: ImageDraw.ImageDraw, type_name: str, box: tuple[int, int, int, int]) -> None:
    """A filled disc with the type's initial, in the space a photo would take."""
    x0, y0, x1, y1 = box
    side = min(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    draw.ellipse([cx - side // 2, cy - side // 2, cx + side // 2, cy + side // 2], fill=(90, 70, 160))
    draw.text((cx, cy), (type_name or "?")[:1], fill=(255, 255, 255), font=_font(side // 2), anchor="mm")


#: Characters the bundled default font has no glyph for, and what the card writes instead.
_CARD_TEXT = str.maketrans({"→": "->", "–": "-", "—": "-"})


def result_card_png(
    type_name: str,
    description: str,
    image: np.ndarray | Image.Image | None = None,
    boxes: dict | None = None,
    when: date | datetime | None = None,
    confidence: float | None = None,
    explanation: str = "",
) -> bytes:
    """A shareable PNG card: type, how it was worked out, description, a thumbnail of the face
    with the three regions, the date and the for-fun line. ``image`` may be None (a card without
    photo)."""
    width, height = 900, 540
    card = Image.new("RGB", (width, height), (250, 248, 244))
    draw = ImageDraw.Draw(card)
    draw.rectangle([0, 0, width, 10], fill=(90, 70, 160))
    title_font, body_font, small_font = _font(44), _font(20), _font(16)
    if image is not None:
        thumb = draw_regions(image, boxes or {}, max_side=400, crop_margin=0.35 if boxes else None)
        thumb.thumbnail((340, 400), Image.LANCZOS)
        card.paste(thumb, (40, 50))
        draw.rectangle([39, 49, 40 + thumb.width, 50 + thumb.height], outline=(200, 200, 200))
        text_x = 40 + max(thumb.width, 200) + 40
    else:  # no photo (a shared result link): a badge of the type takes the photo's place
        _type_badge(draw, type_name, (40, 60, 340, 420))
        text_x = 40 + 300 + 40
    y = 50
    draw.text((text_x, y), "My facetype", fill=(110, 110, 110), font=body_font)
    y += 32
    draw.text((text_x, y), type_name, fill=(90, 70, 160), font=title_font)
    y += 64
    if confidence is not None:
        draw.text((text_x, y), f"Confidence {confidence:.0%}", fill=(80, 80, 80), font=body_font)
        y += 36
    chars = max(20, (width - text_x - 30) // 11)
    for line in textwrap.wrap(explanation.translate(_CARD_TEXT), chars + 8)[:3]:
        draw.text((text_x, y), line, fill=(90, 70, 160), font=small_font)
        y += 22
    if explanation:
        y += 10
    for line in textwrap.wrap((description or "").translate(_CARD_TEXT), chars)[:10]:
        draw.text((text_x, y), line, fill=(40, 40, 40), font=body_font)
        y += 28
    moment = when or date.today()
    day = moment.date() if isinstance(moment, datetime) else moment
    draw.text((40, height - 62), day.isoformat(), fill=(110, 110, 110), font=small_font)
    draw.text((40, height - 36), "For fun, not a measure of worth.", fill=(110, 110, 110), font=small_font)
    buffer = io.BytesIO()
    card.save(buffer, format="PNG", compress_level=1)  # made on every result: speed over a few kB
    return buffer.getvalue()


def visit_card_png(visit: VisitResult) -> bytes:
    """:func:`result_card_png` for a fresh visit."""
    return result_card_png(visit.type_name or "", visit.description, visit.image, visit.image_boxes(),
                           visit.created_at, visit.confidence, visit.explanation)
