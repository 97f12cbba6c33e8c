"""The face gate: decides whether a photo shows exactly one usable face, and where its regions are.

Steps, all coordinates in pixels of the original upright image:

1. MediaPipe face detection (full-range model, so small faces in large photos are found) on a
   copy scaled to at most ``settings.detect_max_side``.
2. Zero faces: ``no_face``; two or more comparable faces: ``several_faces``. A face less than a
   third as wide as the largest one is a bystander in the background and is ignored.
3. MediaPipe face mesh on a crop around the detected face, padded with a grey border so that
   landmarks can fall outside the photo; that is how a cut-off face is recognised.
4. Checks on the landmarks, in order: ``face_cut_off``, ``face_too_small`` (brow-to-chin distance
   under ``settings.min_face_px``), ``face_turned`` (yaw or pitch beyond the settings).

MediaPipe solution objects are not thread-safe, so :meth:`FaceGate.check` holds a lock.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from app.core.settings import Settings, get_settings
from models.geometry import (
    CHIN,
    EYEBROWS,
    LEFT_CHEEK,
    RIGHT_CHEEK,
    RegionBox,
    brow_to_chin_px,
    regions_from_landmarks,
)
from models.intake import INTAKE_MESSAGES, IntakeError, decode_image, decode_reduced

FRAMING_ADVICE = (
    "Choose a photo framed like the example: one face, looking at the camera, "
    "whole head inside the picture."
)
GATE_MESSAGES: dict[str, str] = {
    **INTAKE_MESSAGES,
    "no_face": "We could not find a face in this photo. " + FRAMING_ADVICE,
    "several_faces": "This photo shows more than one face. Crop it to one person, or " + FRAMING_ADVICE[0].lower() + FRAMING_ADVICE[1:],
    "face_cut_off": "Part of the face is outside the picture. " + FRAMING_ADVICE,
    "face_too_small": "The face is too small in this photo. Move closer or crop the photo around the face. "
    + FRAMING_ADVICE,
    "face_turned": "The face is turned or tilted away from the camera. " + FRAMING_ADVICE,
    "unreadable": "The file could not be read. Check that it exists and upload it again.",
}
OK_MESSAGE = "The photo shows one face, ready to use."

#: A detected face narrower than this fraction of the largest one does not count as a second face.
BYSTANDER_WIDTH_RATIO = 1 / 3
#: The mesh sees the detected face with this much of its width added as context on every side.
MESH_CONTEXT = 0.6
#: Mesh crops are scaled to at most this side; the mesh itself works at 192 px.
MESH_MAX_SIDE = 384
MESH_INPUT_SIDE = 192
#: A face narrower than this in a photo decoded reduced gives the mesh a crop smaller than its
#: input: the photo is decoded whole and checked again, so the decision is made at full detail.
MESH_MIN_FACE_WIDTH = MESH_INPUT_SIDE / (1 + 2 * MESH_CONTEXT)
#: Landmarks may lie this fraction of the face size outside the photo before it counts as cut off
#: (the mesh's forehead and chin points wobble by a few pixels).
CUT_OFF_TOLERANCE = 0.02


@dataclass
class GateResult:
    ok: bool
    reason: str | None
    message: str
    face: tuple[float, float, float, float] | None = None
    landmarks: np.ndarray | None = field(default=None, repr=False)
    regions: dict[str, RegionBox] | None = None
    image_size: tuple[int, int] = (0, 0)
    detection_score: float | None = None
    yaw_deg: float | None = None
    pitch_deg: float | None = None
    #: Original pixels per pixel of the image checked: above 1 when the photo was decoded reduced
    #: (:meth:`FaceGate.decode_and_check`); the coordinates above are the checked image's.
    scale: float = 1.0

    def to_json(self, file: str) -> dict:
        """The command-line contract: one JSON object per photo (boxes are pixel lists, in pixels of
        the original photo)."""
        return {
            "file": file,
            "ok": self.ok,
            "reason": self.reason,
            "message": self.message,
            "face": [round(v * self.scale, 1) for v in self.face] if self.face else None,
            "regions": {name: [round(v * self.scale, 1) for v in box.as_list()] for name, box in self.regions.items()}
            if self.regions else None,
        }


def refusal(reason: str, image_size: tuple[int, int] = (0, 0), **details) -> GateResult:
    return GateResult(ok=False, reason=reason, message=GATE_MESSAGES[reason], image_size=image_size, **details)


def head_pose_deg(landmarks3d: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in degrees from mesh landmarks (N x 3, x/y/z in the same pixel units).

    Yaw is the angle of the cheek-to-cheek axis out of the image plane; pitch the angle of the
    chin-to-brow axis out of it, both 0 for a face looking straight at the camera. The depth is
    the mesh's own estimate; on frontal test photos both angles stay within about 15 degrees.
    """
    right_axis = landmarks3d[LEFT_CHEEK] - landmarks3d[RIGHT_CHEEK]
    up_axis = landmarks3d[list(EYEBROWS)].mean(axis=0) - landmarks3d[CHIN]
    yaw = math.degrees(math.atan2(right_axis[2], math.hypot(right_axis[0], right_axis[1])))
    pitch = math.degrees(math.atan2(up_axis[2], math.hypot(up_axis[0], up_axis[1])))
    return yaw, pitch


class FaceGate:
    """Owns the MediaPipe models; create once per process (see :func:`get_face_gate`)."""

    def __init__(self, settings: Settings | None = None):
        import mediapipe as mp  # heavy import, only where the models are built

        self.settings = settings or get_settings()
        self._lock = threading.Lock()
        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=self.settings.face_detection_confidence
        )
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=False, min_detection_confidence=0.3
        )

    def check_bytes(self, data: bytes) -> GateResult:
        """Decode the whole photo and check it; unusable files become a refusal with the intake's
        reason. Coordinates are in pixels of the original photo."""
        try:
            image = decode_image(data, max_pixels=self.settings.max_pixels)
        except IntakeError as error:
            return GateResult(ok=False, reason=error.reason, message=error.message)
        return self.check(image)

    def decode_and_check(self, data: bytes, min_side: int | None = None,
                         max_side: int | None = None) -> tuple[GateResult, np.ndarray | None]:
        """Decode and check an upload for classifying it: a JPEG is decoded reduced (DCT scaling) as
        far as its longer side stays ``min_side`` (default ``settings.gate_decode_side``; 0: whole),
        which is all the gate and the type model need (see :func:`models.serving.decode_side`); a
        refusal, or a face too small for the mesh at that size, is checked again on the whole photo,
        so decisions are made at full detail, or at ``max_side`` when given: an image longer than
        that (a large PNG, or the JPEG decoded whole) is shrunk to it before the gate sees it, which
        bounds a request's memory. Returns the result and the upright image it was made on (None
        when the file could not be decoded); ``result.scale`` maps the image's pixels to the
        original photo's."""
        max_pixels = self.settings.max_pixels
        if min_side is None:
            min_side = self.settings.gate_decode_side
        try:
            image, scale = decode_reduced(data, min_side, max_pixels=max_pixels, max_side=max_side)
        except IntakeError as error:
            return GateResult(ok=False, reason=error.reason, message=error.message), None
        result = self.check(image, scale=scale)
        finer = scale > 1 and not (max_side and max(image.shape[:2]) >= max_side)
        if finer and (not result.ok or result.face[2] - result.face[0] < MESH_MIN_FACE_WIDTH):
            # reduced only past the decode budget or to max_side
            image, scale = decode_reduced(data, 0, max_pixels=max_pixels, max_side=max_side)
            result = self.check(image, scale=scale)
        return result, image

    def check(self, image: np.ndarray, scale: float = 1.0) -> GateResult:
        """Check an upright HxWx3 uint8 RGB image; ``scale`` is original pixels per pixel of it when
        it was decoded reduced (the minimum face size is in original pixels)."""
        height, width = image.shape[:2]
        size = (width, height)
        with self._lock:
            faces = self._detect_faces(image)
            if not faces:
                return refusal("no_face", size, scale=scale)
            faces.sort(key=lambda f: f[1][2] - f[1][0], reverse=True)
            score, face_box = faces[0]
            largest_width = face_box[2] - face_box[0]
            if any(box[2] - box[0] >= BYSTANDER_WIDTH_RATIO * largest_width for _, box in faces[1:]):
                return refusal("several_faces", size, face=face_box, detection_score=score, scale=scale)
            landmarks3d = self._mesh_landmarks(image, face_box)

        if landmarks3d is None:
            # The detector saw a face the mesh could not follow: usually half a face at the edge.
            reason = "face_cut_off" if _box_leaves_image(face_box, size) else "no_face"
            return refusal(reason, size, face=face_box, detection_score=score, scale=scale)
        landmarks = landmarks3d[:, :2]
        regions = regions_from_landmarks(landmarks, size, detection_score=score)
        yaw, pitch = head_pose_deg(landmarks3d)
        details = dict(face=face_box, landmarks=landmarks, regions=regions, detection_score=score,
                       yaw_deg=round(yaw, 1), pitch_deg=round(pitch, 1), scale=scale)

        face_px = brow_to_chin_px(landmarks)
        tolerance = CUT_OFF_TOLERANCE * face_px
        if (landmarks.min(axis=0) < -tolerance).any() or (landmarks.max(axis=0) > np.array(size) + tolerance).any():
            return refusal("face_cut_off", size, **details)
        if face_px * scale < self.settings.min_face_px:
            return refusal("face_too_small", size, **details)
        if abs(yaw) > self.settings.max_yaw_deg or abs(pitch) > self.settings.max_pitch_deg:
            return refusal("face_turned", size, **details)
        return GateResult(ok=True, reason=None, message=OK_MESSAGE, image_size=size, **details)

    def _detect_faces(self, image: np.ndarray) -> list[tuple[float, tuple[float, float, float, float]]]:
        import cv2  # loaded with MediaPipe by the gate's constructor; not at the top, which pages import

        height, width = image.shape[:2]
        scale = min(1.0, self.settings.detect_max_side / max(height, width))
        small = image if scale == 1.0 else cv2.resize(
            image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
        )
        found = self._detector.process(small).detections or []
        faces = []
        for detection in found:
            rel = detection.location_data.relative_bounding_box
            box = (rel.xmin * width, rel.ymin * height, (rel.xmin + rel.width) * width,
                   (rel.ymin + rel.height) * height)
            faces.append((float(detection.score[0]), box))
        return faces

    def _mesh_landmarks(self, image: np.ndarray, face_box) -> np.ndarray | None:
        """468 x 3 landmarks (x, y, z in original pixels) from a padded crop around the face."""
        left, top, side = mesh_window(face_box)
        crop = _padded_crop(image, left, top, side)
        scale = min(1.0, MESH_MAX_SIDE / side)
        if scale < 1.0:
            import cv2

            crop = cv2.resize(crop, (round(side * scale),) * 2, interpolation=cv2.INTER_AREA)
        found = self._mesh.process(crop).multi_face_landmarks
        if not found:
            return None
        crop_side = crop.shape[0] / scale
        points = np.array([(p.x, p.y, p.z) for p in found[0].landmark], dtype=np.float64) * crop_side
        points[:, 0] += left
        points[:, 1] += top
        return points


def mesh_window(face_box) -> tuple[int, int, int]:
    """(left, top, side) of the square window around a detected face that the mesh is given
    (``MESH_CONTEXT`` of the face's size added on every side; it may reach past the image)."""
    x0, y0, x1, y1 = face_box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * MESH_CONTEXT)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return round(cx - side / 2), round(cy - side / 2), round(side)


def _padded_crop(image: np.ndarray, left: int, top: int, side: int) -> np.ndarray:
    height, width = image.shape[:2]
    crop = np.full((side, side, 3), 127, dtype=np.uint8)
    src_x0, src_y0 = max(left, 0), max(top, 0)
    src_x1, src_y1 = min(left + side, width), min(top + side, height)
    if src_x1 > src_x0 and src_y1 > src_y0:
        crop[src_y0 - top:src_y1 - top, src_x0 - left:src_x1 - left] = image[src_y0:src_y1, src_x0:src_x1]
    return crop


def _box_leaves_image(box, size: tuple[int, int]) -> bool:
    x0, y0, x1, y1 = box
    return x0 < 0 or y0 < 0 or x1 > size[0] or y1 > size[1]


_gate: FaceGate | None = None
_gate_lock = threading.Lock()


def get_face_gate() -> FaceGate:
    """The process's face gate; its models load on first use."""
    global _gate
    with _gate_lock:
        if _gate is None:
            _gate = FaceGate()
        return _gate


def check_bytes(data: bytes) -> GateResult:
    """Decode and check an upload with the process's face gate."""
    return get_face_gate().check_bytes(data)

