"""Canvas conversions: scale to fit, boxes to Fabric objects and back to original pixels exactly."""

from __future__ import annotations

import random

import pytest

from app.core.vocabulary import REGION_COLORS

from labeling.canvas import (
    CanvasBox,
    boxes_to_drawing,
    check_canvas_boxes,
    drawing_to_boxes,
    fit_canvas,
    missing_regions,
)

BOXES = {"face": [212.3, 140.7, 1490.0, 1833.1], "tzone": [540.0, 420.5, 1180.2, 1100.0], "jaw": [380.0, 1100.0, 1320.9, 1900.4]}


def test_large_photos_are_scaled_down_small_ones_kept():
    fit = fit_canvas(4032, 3024, 800, 800)
    assert (fit.canvas_width, fit.canvas_height) == (800, 600)
    tall = fit_canvas(1000, 3000, 800, 800)
    assert tall.canvas_height == 800 and tall.canvas_width == 267
    small = fit_canvas(640, 480, 800, 800)
    assert (small.canvas_width, small.canvas_height) == (640, 480)
    assert small.scale_x == small.scale_y == 1.0
    with pytest.raises(ValueError):
        fit_canvas(0, 10)


@pytest.mark.parametrize("size", [(4032, 3024), (1999, 2999), (640, 480), (3000, 1001), (123, 4567)])
def test_round_trip_is_exact_in_original_pixels(size):
    fit = fit_canvas(*size, 800, 700)
    rng = random.Random(size[0])
    for _ in range(200):
        x0, x1 = sorted(round(rng.uniform(0, size[0]), 2) for _ in range(2))
        y0, y1 = sorted(round(rng.uniform(0, size[1]), 2) for _ in range(2))
        drawing = boxes_to_drawing({"jaw": [x0, y0, x1, y1]}, fit)
        (back,) = drawing_to_boxes(drawing, fit)
        assert back.label == "jaw"
        assert back.box == (x0, y0, x1, y1)


def test_drawing_has_distinct_colored_labeled_rects_face_first():
    fit = fit_canvas(2000, 2000, 800, 800)
    drawing = boxes_to_drawing({"jaw": BOXES["jaw"], "face": BOXES["face"], "tzone": BOXES["tzone"]}, fit)
    objects = drawing["objects"]
    assert [o["label"] for o in objects] == ["face", "tzone", "jaw"]
    assert {o["type"] for o in objects} == {"LabeledRect"}
    assert {o["originX"] for o in objects} == {"left"} and {o["originY"] for o in objects} == {"top"}
    assert len({o["stroke"] for o in objects}) == 3
    assert objects[0]["stroke"] == REGION_COLORS["face"]
    assert objects[0]["left"] == pytest.approx(212.3 * 0.4)


def test_moved_and_resized_boxes_convert_back():
    fit = fit_canvas(2000, 1500, 800, 800)  # scale 0.4
    drawing = boxes_to_drawing({"jaw": [400, 1000, 1200, 1400]}, fit)
    obj = drawing["objects"][0]
    obj["left"] += 20  # moved right 20 canvas px = 50 original px
    obj["top"] -= 8
    obj["scaleX"] = 1.5  # resized in the editor
    (back,) = drawing_to_boxes(drawing, fit)
    assert back.box == (450.0, 980.0, 450.0 + 800 * 1.5, 1380.0)


def test_other_origins_and_plain_rects():
    fit = fit_canvas(1000, 1000, 500, 500)  # scale 0.5
    drawing = {"objects": [
        {"type": "Rect", "label": "tzone", "left": 100, "top": 100, "width": 50, "height": 40,
         "originX": "center", "originY": "center", "scaleX": 2, "scaleY": 1},
        {"type": "path", "path": []},
    ]}
    (back,) = drawing_to_boxes(drawing, fit)
    assert back == CanvasBox("tzone", (100.0, 160.0, 300.0, 240.0))


def test_boxes_are_clipped_to_the_photo():
    fit = fit_canvas(1000, 800, 500, 500)
    drawing = {"objects": [{"type": "LabeledRect", "label": "face", "left": -10, "top": 390, "width": 100, "height": 100}]}
    (back,) = drawing_to_boxes(drawing, fit)
    assert back.box == (0.0, 780.0, 180.0, 800.0)


def test_check_canvas_boxes_reports_problems():
    regions, problems = check_canvas_boxes([
        CanvasBox("face", (0, 0, 100, 100)),
        CanvasBox("face", (0, 0, 90, 90)),
        CanvasBox("", (0, 0, 50, 50)),
        CanvasBox("jaw", (10, 10, 11, 30)),
    ])
    assert regions == {"face": [0, 0, 100, 100]}
    assert len(problems) == 3
    assert any("two face boxes" in p for p in problems)
    assert missing_regions(regions) == ["tzone", "jaw"]


def test_each_canvas_module_patch_applies_once_to_the_installed_module():
    """The Labeling canvas changes streamlit-drawable-canvas's module in the browser (no Edit mode needed):
    a patch whose text is not found exactly once would leave the canvas unpatched, so a package upgrade
    that moves that text fails here, not silently in the browser."""
    from pages.labeling_widgets import CANVAS_MODULE_PATCHES, canvas_module_path

    source = canvas_module_path().read_text()
    for find, replace in CANVAS_MODULE_PATCHES:
        assert source.count(find) == 1, find[:80]
        assert find != replace
        source = source.replace(find, replace)
    assert "if (e.target) return;" in source and "h.perPixelTargetFind = !0" in source
