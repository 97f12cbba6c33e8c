"""The Labeling previews (conflict panel): boxes drawn on the photo with labels large enough to read."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from app.core.storage import LocalStore
from app.core.vocabulary import region_rgb
from labeling.previews import boxes_preview


def test_box_labels_are_chips_big_enough_to_read_at_the_conflict_preview_size(tmp_path):
    """A 1280 x 960 photo previewed at 640 px (shown about half as wide again on the page): each region's
    label is a chip in its colour on the box's top edge, at least 20 px tall, with its text in contrasting
    ink at least 12 px tall (Pillow's default bitmap font drew 11 px text in the box colour)."""
    store = LocalStore(tmp_path / "store")
    out = io.BytesIO()
    Image.new("RGB", (1280, 960), (128, 128, 128)).save(out, format="PNG")
    store.put("reference/1/photo.png", out.getvalue(), "image/png")
    boxes = {"face": (200.0, 200.0, 1000.0, 900.0), "tzone": (400.0, 400.0, 800.0, 600.0)}
    preview = np.asarray(Image.open(io.BytesIO(boxes_preview("reference/1/photo.png", boxes, 640, store=store))).convert("RGB"))
    assert preview.shape[:2] == (480, 640)
    for region, box in boxes.items():
        x0, y0 = round(box[0] / 2), round(box[1] / 2)
        chip = preview[y0 - 40:y0, x0 + 1:x0 + 60].astype(int)  # above the box's top-left corner
        in_colour = (np.abs(chip - region_rgb(region)).sum(axis=2) < 60)
        assert in_colour.any(axis=1).sum() >= 20, region
        ink_rows = ((np.abs(chip - 128).sum(axis=2) > 150) & ~in_colour).any(axis=1)  # neither grey nor chip colour
        assert ink_rows.sum() >= 12, region
