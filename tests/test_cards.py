"""The shareable result card: without the photo a type badge fills the photo's space, and text
the bundled font cannot draw is written with plain characters."""

from __future__ import annotations

import io
from datetime import date

import numpy as np
from PIL import Image

from app.services import cards


def card(**kwargs) -> np.ndarray:
    png = cards.result_card_png("Gamma", "A description " * 10, None, None, date(2024, 5, 6), 0.42,
                                "Face Delta 24 + T-zone Gamma 22 + Jaw Gamma 6 = 52 → Beta (52–53)", **kwargs)
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def test_card_without_photo_fills_the_photo_space_with_a_badge():
    pixels = card()
    left = pixels[60:420, 40:340]
    accent = (np.abs(left - np.array([90, 70, 160])).sum(axis=2) < 30).mean()
    assert accent > 0.5  # the disc covers most of the space a photo would take
    background = pixels[200:420, 700:880]
    assert (np.abs(background - np.array([250, 248, 244])).sum(axis=2) < 10).mean() > 0.9


def test_card_text_avoids_glyphs_the_font_lacks():
    assert "→" not in "x → y".translate(cards._CARD_TEXT)
    assert "Beta (52-53)" in "= 52 → Beta (52–53)".translate(cards._CARD_TEXT)
