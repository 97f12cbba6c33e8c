"""Pure conversions between a photo's original pixels and the labeling canvas.

The Labeling page shows a photo scaled to fit the canvas (never enlarged) and draws the region
boxes on it as streamlit-drawable-canvas ``LabeledRect`` objects (Fabric.js JSON). Everything
the page needs to go from stored boxes (original pixels, ``[x0, y0, x1, y1]``) to the canvas
and back lives here, with no Streamlit import, so it can be tested on its own.

The two scales are per axis (``canvas_width / width`` and ``canvas_height / height``): the canvas
has whole-pixel sides, so one rounded scale would shift the far edge. Converting back divides by
the same scales and rounds to :data:`PRECISION` decimals, so a box that was not touched comes
back exactly as it was stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from app.core.vocabulary import REGION_COLORS, REGIONS

UNKNOWN_COLOR = "#9e9e9e"
STROKE_WIDTH = 3
#: Decimals kept on original-pixel coordinates read back from the canvas.
PRECISION = 2
#: Fabric origin names -> fraction of the box's size between ``left`` and the box's left edge.
_ORIGIN_OFFSET = {"left": 0.0, "top": 0.0, "center": 0.5, "right": 1.0, "bottom": 1.0}
_RECT_TYPES = {"labeledrect", "rect"}


@dataclass(frozen=True)
class CanvasFit:
    """How a ``width`` x ``height`` photo is shown on a ``canvas_width`` x ``canvas_height`` canvas."""

    width: int
    height: int
    canvas_width: int
    canvas_height: int

    @property
    def scale_x(self) -> float:
        return self.canvas_width / self.width

    @property
    def scale_y(self) -> float:
        return self.canvas_height / self.height

    def to_canvas(self, box: Iterable[float]) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = (float(v) for v in box)
        return (x0 * self.scale_x, y0 * self.scale_y, x1 * self.scale_x, y1 * self.scale_y)

    def to_original(self, box: Iterable[float], precision: int | None = PRECISION) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = (float(v) for v in box)
        out = (x0 / self.scale_x, y0 / self.scale_y, x1 / self.scale_x, y1 / self.scale_y)
        return tuple(round(v, precision) for v in out) if precision is not None else out


def fit_canvas(width: int, height: int, max_width: int = 800, max_height: int = 800) -> CanvasFit:
    """Scale a photo down (never up) to fit ``max_width`` x ``max_height``, keeping its aspect ratio."""
    if width <= 0 or height <= 0:
        raise ValueError(f"photo size must be positive, got {width}x{height}")
    scale = min(1.0, max_width / width, max_height / height)
    return CanvasFit(int(width), int(height), max(1, round(width * scale)), max(1, round(height * scale)))


@dataclass(frozen=True)
class CanvasBox:
    """A box read back from the canvas, in original pixels."""

    label: str
    box: tuple[float, float, float, float]


def region_color(region: str) -> str:
    return REGION_COLORS.get(region, UNKNOWN_COLOR)


def boxes_to_drawing(boxes: Mapping[str, Iterable[float]] | Iterable[tuple[str, Iterable[float]]],
                     fit: CanvasFit, font_size: int = 14) -> dict[str, Any]:
    """An ``initial_drawing`` with one ``LabeledRect`` per region, in :data:`REGIONS` order
    (face first, so the smaller T-zone and jaw boxes lie on top and can be picked)."""
    items = list(boxes.items()) if isinstance(boxes, Mapping) else list(boxes)
    order = {name: i for i, name in enumerate(REGIONS)}
    items.sort(key=lambda item: order.get(item[0], len(order)))
    objects = []
    for label, box in items:
        x0, y0, x1, y1 = fit.to_canvas(box)
        objects.append({
            "type": "LabeledRect",
            "label": label,
            "left": x0,
            "top": y0,
            "width": x1 - x0,
            "height": y1 - y0,
            "originX": "left",
            "originY": "top",
            "scaleX": 1,
            "scaleY": 1,
            "angle": 0,
            "stroke": region_color(label),
            "strokeWidth": STROKE_WIDTH,
            "strokeUniform": True,
            "fill": "rgba(0, 0, 0, 0)",
            "lockRotation": True,
            "fontSize": font_size,
        })
    return {"version": "6.0.0", "objects": objects}


def drawing_to_boxes(drawing: Mapping[str, Any] | None, fit: CanvasFit, clip: bool = True) -> list[CanvasBox]:
    """The rectangles of a canvas drawing (``json_data``), in original pixels.

    Handles moved (``left``/``top``), resized (``scaleX``/``scaleY``) and flipped boxes and any
    origin. Other objects (free lines, circles) are ignored. With ``clip`` boxes are clipped to
    the photo.
    """
    result = []
    for obj in (drawing or {}).get("objects", []) or []:
        if str(obj.get("type", "")).lower() not in _RECT_TYPES:
            continue
        width = float(obj.get("width", 0)) * abs(float(obj.get("scaleX", 1) or 1))
        height = float(obj.get("height", 0)) * abs(float(obj.get("scaleY", 1) or 1))
        left = float(obj.get("left", 0)) - _ORIGIN_OFFSET.get(obj.get("originX", "left"), 0.0) * width
        top = float(obj.get("top", 0)) - _ORIGIN_OFFSET.get(obj.get("originY", "top"), 0.0) * height
        x0, y0, x1, y1 = fit.to_original((left, top, left + width, top + height))
        if clip:
            x0, x1 = (min(max(v, 0.0), float(fit.width)) for v in (x0, x1))
            y0, y1 = (min(max(v, 0.0), float(fit.height)) for v in (y0, y1))
        result.append(CanvasBox(str(obj.get("label", "") or "").strip(), (x0, y0, x1, y1)))
    return result


def check_canvas_boxes(boxes: Iterable[CanvasBox], min_side: float = 2.0) -> tuple[dict[str, list[float]], list[str]]:
    """Turn canvas boxes into ``{region: [x0, y0, x1, y1]}`` and a list of problems that block a
    save: unknown labels, a region drawn twice, boxes too small to be a region."""
    problems: list[str] = []
    regions: dict[str, list[float]] = {}
    for item in boxes:
        if item.label not in REGIONS:
            shown = repr(item.label) if item.label else "no label"
            problems.append(f"A box has {shown}; label it one of {', '.join(REGIONS)} (Edit, then click the selected box's label).")
            continue
        if item.label in regions:
            problems.append(f"There are two {item.label} boxes; delete one (press its edge to select it, then Delete).")
            continue
        x0, y0, x1, y1 = item.box
        if x1 - x0 < min_side or y1 - y0 < min_side:
            problems.append(f"The {item.label} box is smaller than {min_side:g} pixels; redraw it.")
            continue
        regions[item.label] = [x0, y0, x1, y1]
    return regions, problems


def missing_regions(regions: Iterable[str]) -> list[str]:
    present = set(regions)
    return [r for r in REGIONS if r not in present]
