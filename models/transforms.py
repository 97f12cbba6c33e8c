"""Image operations shared by serving and training: downscaling, and augmentations that move
the boxes with the pixels (crop, scale, flip); colour jitter leaves the boxes alone."""

from __future__ import annotations

import random

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F


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
# The geometry is torchvision.transforms.v2's: the image as a tv_tensors.Image and the boxes as one
# tv_tensors.BoundingBoxes move together through the same functional call (crop, resize, flip; the
# crop clamps the boxes to the window). The random parameters come from the caller's ``rng``, so a
# seeded dataset draws the same augmentations run after run.


def _to_tv(image: np.ndarray, boxes: dict) -> tuple[tv_tensors.Image, tv_tensors.BoundingBoxes]:
    h, w = image.shape[:2]
    coords = torch.tensor([boxes[r] for r in boxes], dtype=torch.float32).reshape(-1, 4)
    return (tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)),
            tv_tensors.BoundingBoxes(coords, format="XYXY", canvas_size=(h, w)))


def _from_tv(image: torch.Tensor, coords: torch.Tensor, regions) -> tuple[np.ndarray, dict]:
    return (np.ascontiguousarray(image.permute(1, 2, 0).numpy()),
            {r: [float(v) + 0.0 for v in b] for r, b in zip(regions, coords.tolist(), strict=True)})  # no -0.0


def _crop_window(height: int, width: int, coords: torch.Tensor, rng: random.Random, min_frac: float):
    """(top, left, height, width) of a random window that still holds every box whole."""
    ux0, uy0 = coords[:, 0].min().item(), coords[:, 1].min().item()
    ux1, uy1 = coords[:, 2].max().item(), coords[:, 3].max().item()
    cw = max(int(width * rng.uniform(min_frac, 1.0)), int(np.ceil(ux1 - ux0)) + 1)
    ch = max(int(height * rng.uniform(min_frac, 1.0)), int(np.ceil(uy1 - uy0)) + 1)
    cw, ch = min(cw, width), min(ch, height)
    lo_x, hi_x = max(0, int(np.ceil(ux1)) - cw), min(int(ux0), width - cw)
    lo_y, hi_y = max(0, int(np.ceil(uy1)) - ch), min(int(uy0), height - ch)
    x0 = rng.randint(lo_x, hi_x) if hi_x >= lo_x else max(0, min(width - cw, lo_x))
    y0 = rng.randint(lo_y, hi_y) if hi_y >= lo_y else max(0, min(height - ch, lo_y))
    return y0, x0, ch, cw


def _crop(image, coords, rng: random.Random, min_frac: float = 0.6):
    window = _crop_window(*image.shape[-2:], coords, rng, min_frac)
    return F.crop(image, *window), F.crop(coords, *window)


def _scale(image, coords, rng: random.Random, lo: float = 0.8, hi: float = 1.2):
    """Resize by a random factor; the boxes scale per axis with the pixels."""
    h, w = image.shape[-2:]
    factor = rng.uniform(lo, hi)
    size = [max(8, round(h * factor)), max(8, round(w * factor))]
    return F.resize(image, size), F.resize(coords, size)


def _flip(image, coords):
    return F.horizontal_flip(image), F.horizontal_flip(coords)


def random_crop(image: np.ndarray, boxes: dict, rng: random.Random, min_frac: float = 0.6):
    """Crop a random window that still holds every box whole; boxes move with it."""
    return _from_tv(*_crop(*_to_tv(image, boxes), rng, min_frac), boxes)


def random_scale(image: np.ndarray, boxes: dict, rng: random.Random, lo: float = 0.8, hi: float = 1.2):
    """Resize by a random factor; boxes scale with the pixels (per axis, exact)."""
    return _from_tv(*_scale(*_to_tv(image, boxes), rng, lo, hi), boxes)


def hflip(image: np.ndarray, boxes: dict):
    return _from_tv(*_flip(*_to_tv(image, boxes)), boxes)


def color_jitter(image: np.ndarray, rng: random.Random, strength: float = 0.2) -> np.ndarray:
    brightness = rng.uniform(1 - strength, 1 + strength)
    contrast = rng.uniform(1 - strength, 1 + strength)
    x = image.astype(np.float32)
    mean = x.mean()
    x = (x - mean) * contrast + mean * brightness
    return np.clip(x, 0, 255).astype(np.uint8)


def augment(image: np.ndarray, boxes: dict, rng: random.Random, crop=True, scale=True, flip=True, color=True):
    """The training augmentation: crop, scale, flip (boxes follow) and colour jitter."""
    pixels, coords = _to_tv(image, boxes)
    if crop and rng.random() < 0.8:
        pixels, coords = _crop(pixels, coords, rng)
    if scale:
        pixels, coords = _scale(pixels, coords, rng)
    if flip and rng.random() < 0.5:
        pixels, coords = _flip(pixels, coords)
    image, boxes = _from_tv(pixels, coords, boxes)
    if color:
        image = color_jitter(image, rng)
    return image, boxes
