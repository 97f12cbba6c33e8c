"""Where the three face regions lie, computed from MediaPipe's 468-point face mesh.

All region geometry of the project lives here. Coordinates are pixels of the upright image,
``x`` to the right and ``y`` down; boxes are ``[x0, y0, x1, y1]``.

Regions (the definitions of the project's reference labels, which come from dlib's 68-point
model; the index sets below are the mesh points that correspond to dlib's points):

``face``
    Bounding box of the face oval (:data:`FACE_OVAL`, forehead top to chin, ear to ear).
``tzone``
    Bounding box of the eyebrows and the nose. dlib's eyebrow points run along the *top* of the
    brows, so :data:`EYEBROWS` is the upper brow contour; dlib's nose points run down the bridge
    to the tip and across the nose base (points 27-35), so :data:`NOSE` is the bridge, the tip,
    the subnasal point and the outer nostril bases.
``jaw``
    From the nose base (the bottom of the T-zone) down to the chin, and across the jawline points
    (:data:`JAWLINE`, the lower face oval from ear to ear, like dlib's points 0-16) that lie
    between those heights. dlib's chin point sits on the bony contour, about 3 % of the
    brow-to-chin height below the mesh's chin point (152), so the jaw box's lower edge is moved
    down by :data:`CHIN_DROP` of that height; with it the boxes agree with the reference labels
    at IoU >= 0.9 on the project's test photos.

Confidence of a box: the face detector's score, multiplied by the fraction of the box that lies
inside the image (a region cut by the photo's edge was partly guessed by the mesh), and by 0.5
when the box is implausible (for example a T-zone wider than the face or a jaw above the nose).
It is a ranking hint for reviewers, not a calibrated probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.core.vocabulary import REGIONS

FACE_OVAL: tuple[int, ...] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
#: Upper contour of the right then the left eyebrow (the person's right is the image's left).
EYEBROWS: tuple[int, ...] = (70, 63, 105, 66, 107, 336, 296, 334, 293, 300)
#: Nose bridge top to tip (168 ... 1), the subnasal point (2) and the nostril bases.
NOSE: tuple[int, ...] = (168, 6, 197, 195, 5, 4, 1, 2, 98, 97, 326, 327)
#: The face oval below the eyes, from the right ear down round the chin to the left ear.
JAWLINE: tuple[int, ...] = (
    234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361,
    323, 454,
)
CHIN = 152
FOREHEAD_TOP = 10
#: Face sides at eye height, used for the head's left-right axis.
RIGHT_CHEEK, LEFT_CHEEK = 234, 454
CHIN_DROP = 0.03


@dataclass(frozen=True)
class RegionBox:
    x0: float
    y0: float
    x1: float
    y1: float
    confidence: float = 1.0

    def as_list(self) -> list[float]:
        return [self.x0, self.y0, self.x1, self.y1]

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)


def box_iou(a, b) -> float:
    """Intersection over union of two boxes given as RegionBox or ``[x0, y0, x1, y1]``."""
    a = a.as_list() if isinstance(a, RegionBox) else list(a)
    b = b.as_list() if isinstance(b, RegionBox) else list(b)
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def brow_to_chin_px(landmarks: np.ndarray) -> float:
    """Distance from the middle of the eyebrows' top to the chin: the face's size in pixels."""
    brow = landmarks[list(EYEBROWS)].mean(axis=0)
    return float(np.linalg.norm(landmarks[CHIN][:2] - brow[:2]))


def region_boxes_unclipped(landmarks: np.ndarray) -> dict[str, tuple[float, float, float, float]]:
    """The three boxes from mesh landmarks (N x 2 or N x 3, pixels), possibly reaching outside the image."""
    points = np.asarray(landmarks, dtype=np.float64)[:, :2]
    oval = points[list(FACE_OVAL)]
    tzone_points = points[list(EYEBROWS) + list(NOSE)]
    tzone = _bounds(tzone_points)

    nose_base_y = tzone[3]
    jawline = points[list(JAWLINE)]
    below_nose = jawline[jawline[:, 1] >= nose_base_y]
    if len(below_nose) < 2:  # implausible mesh: no jawline under the nose
        below_nose = jawline
    chin_y = jawline[:, 1].max() + CHIN_DROP * (jawline[:, 1].max() - tzone[1])
    jaw = (below_nose[:, 0].min(), nose_base_y, below_nose[:, 0].max(), chin_y)
    return {"face": _bounds(oval), "tzone": tzone, "jaw": jaw}


def regions_from_landmarks(
    landmarks: np.ndarray, image_size: tuple[int, int], detection_score: float = 1.0
) -> dict[str, RegionBox]:
    """Region boxes clipped to the image ``(width, height)``, each with a confidence (see module doc)."""
    width, height = image_size
    raw = region_boxes_unclipped(landmarks)
    face_width = raw["face"][2] - raw["face"][0]
    plausible = {
        "face": face_width > 0 and raw["face"][3] > raw["face"][1],
        "tzone": 0 < raw["tzone"][2] - raw["tzone"][0] <= face_width * 1.05,
        "jaw": raw["jaw"][3] > raw["jaw"][1] and raw["jaw"][2] > raw["jaw"][0],
    }
    boxes = {}
    for name, (x0, y0, x1, y1) in raw.items():
        clipped = (min(max(x0, 0.0), width), min(max(y0, 0.0), height),
                   min(max(x1, 0.0), width), min(max(y1, 0.0), height))
        full_area = max(x1 - x0, 0.0) * max(y1 - y0, 0.0)
        inside_area = (clipped[2] - clipped[0]) * (clipped[3] - clipped[1])
        inside = inside_area / full_area if full_area > 0 else 0.0
        confidence = detection_score * inside * (1.0 if plausible[name] else 0.5)
        boxes[name] = RegionBox(*(round(float(v), 1) for v in clipped), confidence=round(confidence, 3))
    return boxes


def _bounds(points: np.ndarray) -> tuple[float, float, float, float]:
    return (float(points[:, 0].min()), float(points[:, 1].min()),
            float(points[:, 0].max()), float(points[:, 1].max()))


# ----------------------------------------------------------------------------- regions from a gate result


def box_list(box) -> list[float]:
    """[x0, y0, x1, y1] from a RegionBox-like object (``as_list()`` or x0..y1) or a sequence."""
    if box is None:
        raise ValueError("no box")
    if hasattr(box, "as_list"):
        return [float(v) for v in box.as_list()]
    if hasattr(box, "x0"):
        return [float(box.x0), float(box.y0), float(box.x1), float(box.y1)]
    values = [float(v) for v in box]
    if len(values) != 4:
        raise ValueError(f"a box needs 4 numbers, got {values}")
    return values


def regions_from_face(face, width: int | None = None, height: int | None = None) -> dict[str, list[float]]:
    """Rough regions inside a face box, for when the gate gives a face but no landmark regions."""
    x0, y0, x1, y1 = box_list(face)
    w, h = x1 - x0, y1 - y0
    return {
        "face": [x0, y0, x1, y1],
        "tzone": [x0 + 0.3 * w, y0 + 0.15 * h, x0 + 0.7 * w, y0 + 0.7 * h],
        "jaw": [x0 + 0.1 * w, y0 + 0.65 * h, x0 + 0.9 * w, y1],
    }


def landmark_regions(image: np.ndarray, gate_result) -> dict[str, list[float]]:
    """The landmark locator's regions from the gate result; derived from the face box, or
    from the whole image, when the gate did not provide them (never empty)."""
    regions = getattr(gate_result, "regions", None) or {}
    out = {}
    for r in REGIONS:
        if regions.get(r) is not None:
            out[r] = box_list(regions[r])
    if len(out) == len(REGIONS):
        return out
    face = getattr(gate_result, "face", None)
    h, w = image.shape[:2]
    derived = regions_from_face(face if face is not None else (0, 0, w, h))
    return {r: out.get(r, derived[r]) for r in REGIONS}
