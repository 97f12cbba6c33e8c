"""Make test photos and videos from the test photos: a face turned in 3D, rendered from its own mesh; a
photo placed on a webcam-sized frame; a still video for Chromium's fake camera."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial import Delaunay

from models.geometry import FACE_OVAL


def turn_face(image: np.ndarray, landmarks3d: np.ndarray, yaw_deg: float = 0.0, pitch_deg: float = 0.0) -> np.ndarray:
    """Re-render the face as if the head turned by yaw (about the vertical axis) and pitch.

    The face is a textured triangle mesh on its own 468 landmarks (x, y, z in pixels); triangles
    are drawn far to near with an orthographic camera. The old face area is first filled with a
    blur so that no second half-face remains beside the turned one.
    """
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    rot_y = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
    rot_x = np.array([[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]])
    center = landmarks3d.mean(axis=0)
    moved = (landmarks3d - center) @ (rot_x @ rot_y).T + center

    out = image.copy()
    oval = landmarks3d[list(FACE_OVAL), :2].astype(np.int32)
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(oval), 255)
    blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=max(image.shape) / 20)
    out[mask > 0] = blurred[mask > 0]

    triangles = Delaunay(landmarks3d[:, :2]).simplices
    depth = moved[triangles, 2].mean(axis=1)
    for tri in triangles[np.argsort(-depth)]:
        src = landmarks3d[tri, :2].astype(np.float32)
        dst = moved[tri, :2].astype(np.float32)
        # Skip triangles seen from behind.
        edge1, edge2 = dst[1] - dst[0], dst[2] - dst[0]
        src1, src2 = src[1] - src[0], src[2] - src[0]
        if np.sign(edge1[0] * edge2[1] - edge1[1] * edge2[0]) != np.sign(src1[0] * src2[1] - src1[1] * src2[0]):
            continue
        x, y, w, h = cv2.boundingRect(dst)
        if w == 0 or h == 0:
            continue
        affine = cv2.getAffineTransform(src, dst - np.float32([x, y]))
        patch = cv2.warpAffine(image, affine, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        tri_mask = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(tri_mask, np.round(dst - [x, y]).astype(np.int32), 255)
        y0, x0 = max(y, 0), max(x, 0)
        y1, x1 = min(y + h, image.shape[0]), min(x + w, image.shape[1])
        region = out[y0:y1, x0:x1]
        sub_mask = tri_mask[y0 - y:y1 - y, x0 - x:x1 - x] > 0
        region[sub_mask] = patch[y0 - y:y1 - y, x0 - x:x1 - x][sub_mask]
    return out


def webcam_frame(photo: np.ndarray, height: int, size=(640, 480)) -> np.ndarray:
    """``photo`` scaled to ``height`` pixels tall and centred on a grey frame of ``size`` (width, height)."""
    width, frame_height = size
    scale = height / photo.shape[0]
    small = cv2.resize(photo, (round(photo.shape[1] * scale), height), interpolation=cv2.INTER_AREA)
    frame = np.full((frame_height, width, 3), 128, np.uint8)
    top, left = (frame_height - small.shape[0]) // 2, (width - small.shape[1]) // 2
    frame[top:top + small.shape[0], left:left + small.shape[1]] = small
    return frame


def write_y4m(path: Path, frame: np.ndarray, frames: int = 2, fps: int = 5) -> Path:
    """A still video of ``frame`` (RGB, even sides) in the YUV4MPEG2 4:2:0 format that Chromium's fake
    camera plays in a loop (``--use-file-for-fake-video-capture``)."""
    height, width = frame.shape[:2]
    planes = cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes()
    with open(path, "wb") as video:
        video.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            video.write(b"FRAME\n" + planes)
    return path
