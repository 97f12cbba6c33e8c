"""Image operations shared by serving and training: downscaling, and augmentations that move
the boxes with the pixels (crop, scale, flip); colour jitter leaves the boxes alone."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image


def resize_max_side(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale so the longest side is at most ``max_side``; returns (image, scale)."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w)) if max_side else 1.0
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR)), scale


def scale_boxes(boxes: dict, scale: float) -> dict:
    return {r: [v * scale for v in b] for r, b in boxes.items()}


# ----------------------------------------------------------------------------- augmentation


def clip_boxes(boxes: dict, width: int, height: int) -> dict:
    return {
        r: [min(max(b[0], 0.0), width), min(max(b[1], 0.0), height),
            min(max(b[2], 0.0), width), min(max(b[3], 0.0), height)]
        for r, b in boxes.items()
    }


def random_crop(image: np.ndarray, boxes: dict, rng: random.Random, min_frac: float = 0.6):
    """Crop a random window that still holds every box whole; boxes move with it."""
    h, w = image.shape[:2]
    ux0 = min(b[0] for b in boxes.values())
    uy0 = min(b[1] for b in boxes.values())
    ux1 = max(b[2] for b in boxes.values())
    uy1 = max(b[3] for b in boxes.values())
    cw = max(int(w * rng.uniform(min_frac, 1.0)), int(np.ceil(ux1 - ux0)) + 1)
    ch = max(int(h * rng.uniform(min_frac, 1.0)), int(np.ceil(uy1 - uy0)) + 1)
    cw, ch = min(cw, w), min(ch, h)
    lo_x, hi_x = max(0, int(np.ceil(ux1)) - cw), min(int(ux0), w - cw)
    lo_y, hi_y = max(0, int(np.ceil(uy1)) - ch), min(int(uy0), h - ch)
    x0 = rng.randint(lo_x, hi_x) if hi_x >= lo_x else max(0, min(w - cw, lo_x))
    y0 = rng.randint(lo_y, hi_y) if hi_y >= lo_y else max(0, min(h - ch, lo_y))
    cropped = image[y0 : y0 + ch, x0 : x0 + cw]
    moved = {r: [b[0] - x0, b[1] - y0, b[2] - x0, b[3] - y0] for r, b in boxes.items()}
    return np.ascontiguousarray(cropped), clip_boxes(moved, cw, ch)


def random_scale(image: np.ndarray, boxes: dict, rng: random.Random, lo: float = 0.8, hi: float = 1.2):
    """Resize by a random factor; boxes scale with the pixels (per axis, exact)."""
    h, w = image.shape[:2]
    factor = rng.uniform(lo, hi)
    nw, nh = max(8, round(w * factor)), max(8, round(h * factor))
    sx, sy = nw / w, nh / h
    resized = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
    return resized, {r: [b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for r, b in boxes.items()}


def hflip(image: np.ndarray, boxes: dict):
    w = image.shape[1]
    return np.ascontiguousarray(image[:, ::-1]), {r: [w - b[2], b[1], w - b[0], b[3]] for r, b in boxes.items()}


def color_jitter(image: np.ndarray, rng: random.Random, strength: float = 0.2) -> np.ndarray:
    brightness = rng.uniform(1 - strength, 1 + strength)
    contrast = rng.uniform(1 - strength, 1 + strength)
    x = image.astype(np.float32)
    mean = x.mean()
    x = (x - mean) * contrast + mean * brightness
    return np.clip(x, 0, 255).astype(np.uint8)


def augment(image: np.ndarray, boxes: dict, rng: random.Random, crop=True, scale=True, flip=True, color=True):
    """The training augmentation: crop, scale, flip (boxes follow) and colour jitter."""
    if crop and rng.random() < 0.8:
        image, boxes = random_crop(image, boxes, rng)
    if scale:
        image, boxes = random_scale(image, boxes, rng)
    if flip and rng.random() < 0.5:
        image, boxes = hflip(image, boxes)
    if color:
        image = color_jitter(image, rng)
    return image, boxes
