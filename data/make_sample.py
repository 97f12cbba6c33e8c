"""Build the sample project data in ``data/sample/`` (deterministic, offline).

Run ``.venv/bin/python data/make_sample.py`` from the repository root; it rewrites everything
below ``data/sample/`` except ``README.md``. Nothing is downloaded. ``--seed N --out DIR`` makes
an independent sample elsewhere, ``--people N`` a smaller one (tests use 4).

What it makes
-------------
* ``people.csv``: 110 synthetic reference people ``p001``..``p110`` named "Composite 001".. .
* ``traits.csv``: each person's planted traits (face, tzone, jaw; standardised), the hidden
  part, the rule score and the appeal the survey follows (see "The planted rule" below).
* ``ceiling.json``: the hidden rule's own type accuracy against the survey's types.
* ``traits_strip.jpg``: one composite at -2..+2 sd of each trait.
* ``photos/<person_id>/<n>.jpg``: three portraits of each reference person.
* ``framing_example.jpg``: one well-framed portrait for the "frame your photo like this" hint.
* ``ratings.csv``: a made-up survey, 100 raters (r001..r100) x 110 people, scores 1..5.
* ``type_choices.csv``: 500 made-up raters (c001..c500) each choosing one type.
* ``types.json``: the five type profiles. The types (Alpha, Beta, Gamma, Delta, Omega), their
  shares and descriptions are invented for entertainment; nothing here measures anything
  about a person.

How the faces are made (no photo of a real, recognisable person is used on its own)
-----------------------------------------------------------------------------------
The only face source is scikit-image's bundled LFW subset (``skimage.data.lfw_subset()``,
shipped inside the wheel; faces are the first 100 of the 200 25x25 grayscale crops).
A single crop is a real person, so it is never used alone; every portrait is a *composite*,
the pixel average of 4-6 different faces, so it is nobody in particular:

1. Each crop is upscaled (Lanczos, x10), padded with its edge pixels, and MediaPipe Face Mesh
   finds its 468 landmarks (crops where it fails, where the head is clearly turned, or where
   the mouth is open, are left out of the pool; 65 of the 100 faces remain).
2. A symmetric mean shape is built from all landmark sets (the mean, averaged with its mirror
   image, so the composite looks straight at the camera).
3. Every face is morphed onto that mean shape (piecewise-affine warp over a Delaunay
   triangulation of the landmarks plus fixed border points) and its brightness/contrast
   normalised. Averaging *morphed* faces keeps eyes, nose and mouth sharp; plain averaging
   of the crops (tried first) gives ghosted double mouths and eyes.
4. A seeded draw picks 4-6 faces per reference person (no two people share more than
   ``MAX_SHARED_FACES`` = 2 faces or the same combination; the ~65-face pool allows that for
   110 people), the warped faces are averaged, and the person's traits are painted on in the
   mean-shape coordinates (``Portraits.trait_layers``).
5. The tight 25x25 crop cuts off the forehead and chin, which makes a face gate fail. The
   averaged face is therefore cut out with a feathered oval (convex hull of the mean shape),
   placed on a synthetic portrait: a soft vertical background gradient, dark shoulders,
   a shaded neck, a dark hair shape behind the head, and the region between the oval and
   the hair filled by inpainting the face's own edges. Mild unsharp masking and film grain
   follow, then a slight warm tint; the result is a 480x600 RGB JPEG (quality 75).
6. Each person's three photos vary framing (scale, position), rotation (<= 5 degrees),
   brightness/contrast and background. Every saved JPEG is decoded again and checked with
   MediaPipe directly: exactly one face from ``face_detection`` with model_selection 0 *and*
   1; ``face_mesh`` (static_image_mode) finds one face whose 468 landmarks all lie inside the
   image with a margin of 2% of the short side; brow (landmark 9) to chin (152) >= 100 px;
   the face not turned (nose tip between the cheek landmarks at a ratio in 0.3..0.7, and
   nose height between eyes and chin at a ratio in 0.2..0.6). A photo that fails is redrawn
   with other variations, and a person whose photos keep failing gets another combination
   of faces. So every committed photo passes.

The planted rule
----------------
Per person, standard normal traits (standardised over the sample): ``face`` = flush (face
colour, rosy vs pale, at the same lightness), ``tzone`` = brow weight (darkness and thickness;
below the mean the composite's own brows fade towards the skin) plus eye shading, ``jaw`` =
stubble shadow. They change tone/colour/texture *inside* the region boxes, because the head
model squashes every box to a 32x32 square (extents and aspect ratios would be normalised away). ``rule = 0.5 face + 0.4 tzone + 0.1 jaw``;
``appeal = rule + HIDDEN_SD * hidden`` (hidden: 5 % of the variance, shown by no photo).

The survey data
---------------
``ratings.csv``: every person has a latent value 3 + 0.8 * standardised appeal; each rater
has a bias (sd 0.4); score = round(latent + bias + noise(sd 0.7)) clipped to 1..5. The
*ceiling* (``ceiling()``) is the type accuracy of the rule on the true traits against the
types the survey gives (same ranking and quotas as ``labeling.quotas``). Raters get a
made-up age group and gender. ``type_choices.csv``: 500 choices with counts 109/107/112/96/76
(Alpha..Omega) = 21.8/21.4/22.4/19.2/15.2 %, the closest integer counts summing to 500 to the
target shares 21.8/21.4/22.5/19.2/15.2 % (which themselves sum to 100.1), shuffled.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import itertools
import json
import shutil
import sys
from pathlib import Path

import numpy as np

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
SEED = 20240611
W, H = 480, 600  # portrait size (width, height)
UP = 10  # upscale factor of the 25x25 crops
MASK_PAD = 60  # pixels of padding around the face masks
N_PEOPLE = 110
PHOTOS_PER_PERSON = 3
#: The hidden rule: latent appeal = sum(weight * standardised trait) + HIDDEN_SD * hidden.
RULE_WEIGHTS = {"face": 0.5, "tzone": 0.4, "jaw": 0.1}
TRAITS = tuple(RULE_WEIGHTS)
#: sd of the person-level part no photo shows: 5 % of the appeal's variance
#: (HIDDEN_SD**2 / (0.5**2 + 0.4**2 + 0.1**2 + HIDDEN_SD**2) = 0.05).
HIDDEN_SD = round(float(np.sqrt(0.42 * 0.05 / 0.95)), 4)
#: Survey: person latent score = 3 + LATENT_SD * appeal / sd(appeal); rater bias and noise.
LATENT_SD, RATER_BIAS_SD, RATER_NOISE_SD = 0.8, 0.4, 0.7
#: At most this many faces in common between any two people (the pool has ~65 faces).
MAX_SHARED_FACES = 2
N_RATERS = 100
N_CHOOSERS = 500
JPEG_QUALITY = 75  # 330 photos in about 4 MB

TYPES = [
    {
        "name": "Alpha",
        "share_percent": 21.8,
        "description": (
            "Alphas are the spark plugs of the group: first to say hello and first to suggest "
            "a plan. They enjoy getting things moving and bringing people along for the ride."
        ),
    },
    {
        "name": "Beta",
        "share_percent": 21.4,
        "description": (
            "Betas are the reliable teammates everyone is glad to have around. They keep "
            "things steady, remember the details, and make a shared project feel easy."
        ),
    },
    {
        "name": "Gamma",
        "share_percent": 22.5,
        "description": (
            "Gammas are curious explorers who love a new idea or an unexpected detour. "
            "They bring fresh angles to a conversation and happily try things a different way."
        ),
    },
    {
        "name": "Delta",
        "share_percent": 19.2,
        "description": (
            "Deltas are warm connectors with a knack for making people feel welcome. "
            "They notice how everyone is doing and turn a crowd into a circle of friends."
        ),
    },
    {
        "name": "Omega",
        "share_percent": 15.2,
        "description": (
            "Omegas are independent, thoughtful originals who follow their own compass. "
            "They think things through, see what others miss, and bring calm insight to any group."
        ),
    },
]
#: Counts of the 500 type choices (Alpha..Omega); see the module docstring.
TYPE_COUNTS = [109, 107, 112, 96, 76]


def _quiet_mediapipe():
    import os

    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import mediapipe as mp

    return mp


# ----------------------------------------------------------------------------- face check
class FaceCheck:
    """The MediaPipe face gate the sample photos must pass (used by the tests too)."""

    def __init__(self):
        mp = _quiet_mediapipe()
        self._fd = [
            mp.solutions.face_detection.FaceDetection(
                model_selection=m, min_detection_confidence=0.5
            )
            for m in (0, 1)
        ]
        self._fm = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=2, refine_landmarks=False,
            min_detection_confidence=0.5,
        )

    def __call__(self, rgb: np.ndarray, margin_frac: float = 0.02) -> tuple[bool, dict]:
        h, w = rgb.shape[:2]
        rgb = np.ascontiguousarray(rgb)
        info: dict = {"detections": [len(f.process(rgb).detections or []) for f in self._fd]}
        faces = self._fm.process(rgb).multi_face_landmarks or []
        info["mesh_faces"] = len(faces)
        if len(faces) != 1:
            return False, info
        p = np.array([[q.x * w, q.y * h] for q in faces[0].landmark])
        m = margin_frac * min(w, h)
        info["landmarks"] = len(p)
        info["inside"] = bool(
            (p[:, 0] >= m).all() and (p[:, 0] <= w - 1 - m).all()
            and (p[:, 1] >= m).all() and (p[:, 1] <= h - 1 - m).all()
        )
        info["brow_chin_px"] = round(float(np.linalg.norm(p[9] - p[152])), 1)
        info["yaw_ratio"] = round(float((p[1, 0] - p[234, 0]) / max(p[454, 0] - p[234, 0], 1e-6)), 3)
        eyes = (p[33] + p[263]) / 2
        info["pitch_ratio"] = round(float((p[1, 1] - eyes[1]) / max(p[152, 1] - eyes[1], 1e-6)), 3)
        ok = (
            info["detections"] == [1, 1]
            and len(p) == 468
            and info["inside"]
            and info["brow_chin_px"] >= 100
            and 0.3 <= info["yaw_ratio"] <= 0.7
            and 0.2 <= info["pitch_ratio"] <= 0.6
        )
        return ok, info


# ----------------------------------------------------------------------------- composites
def _landmark_pool(faces: np.ndarray):
    """MediaPipe landmarks (in 25x25 crop coordinates) of each LFW face it can read."""
    import cv2

    mp = _quiet_mediapipe()
    pad = 150
    out = {}
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, max_num_faces=1, refine_landmarks=False,
        min_detection_confidence=0.5,
    ) as fm:
        for i, f in enumerate(faces):
            g = (f * 255).astype(np.uint8)
            up = cv2.resize(g, (25 * UP, 25 * UP), interpolation=cv2.INTER_CUBIC)
            img = cv2.copyMakeBorder(up, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            r = fm.process(cv2.cvtColor(img, cv2.COLOR_GRAY2RGB))
            if not r.multi_face_landmarks:
                continue
            p = np.array([[q.x, q.y] for q in r.multi_face_landmarks[0].landmark])
            p = (p * img.shape[1::-1] - pad) / UP
            yaw = (p[1, 0] - p[234, 0]) / max(p[454, 0] - p[234, 0], 1e-6)
            mouth_open = np.linalg.norm(p[13] - p[14]) / np.linalg.norm(p[61] - p[291])
            if 0.3 <= yaw <= 0.7 and mouth_open < 0.1:
                out[i] = p
    return out


def _symmetric_mean(shapes: np.ndarray) -> np.ndarray:
    from scipy.spatial import cKDTree

    mean = shapes.mean(0)
    mid = float(np.mean(mean[[1, 10, 152], 0]))
    mirrored = mean.copy()
    mirrored[:, 0] = 2 * mid - mirrored[:, 0]
    idx = cKDTree(mean).query(mirrored)[1]
    return (mean + mirrored[idx]) / 2


def _warp_all(faces, pool, target):
    """Morph every pool face onto ``target`` (piecewise affine), at UP x resolution."""
    import cv2
    from scipy.spatial import Delaunay

    n = 25 * UP
    e = np.linspace(-8, 33, 7)
    border = np.array([[x, y] for x in e for y in e if x in (e[0], e[-1]) or y in (e[0], e[-1])])
    dst = np.vstack([target, border])
    tri = Delaunay(dst)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    q = np.stack([(xx.ravel() + 0.5) / UP - 0.5, (yy.ravel() + 0.5) / UP - 0.5], 1)
    simplex = tri.find_simplex(q)
    simplex[simplex < 0] = 0
    tr = tri.transform[simplex]
    b2 = np.einsum("nij,nj->ni", tr[:, :2], q - tr[:, 2])
    bary = np.concatenate([b2, 1 - b2.sum(1, keepdims=True)], 1)
    verts = tri.simplices[simplex]
    warped = {}
    for i, p in pool.items():
        src = np.vstack([p, border])
        s = np.einsum("ni,nij->nj", bary, src[verts])
        mx = ((s[:, 0] + 0.5) * UP - 0.5).reshape(n, n).astype(np.float32)
        my = ((s[:, 1] + 0.5) * UP - 0.5).reshape(n, n).astype(np.float32)
        up = cv2.resize(faces[i].astype(np.float32), (n, n), interpolation=cv2.INTER_LANCZOS4)
        img = cv2.remap(up, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        warped[i] = img
    return warped


def _face_mask(target: np.ndarray, grow: float = 1.0, blur: float = 0.9) -> np.ndarray:
    """Feathered face-outline mask (convex hull of ``target``, scaled by ``grow``)."""
    import cv2

    n = 25 * UP + 2 * MASK_PAD  # padded so the feathering is not cut at the crop's edges
    centre = (target.min(0) + target.max(0)) / 2
    pts = (target - centre) * grow + centre
    hull = cv2.convexHull(((pts + 0.5) * UP - 0.5 + MASK_PAD).astype(np.float32)).astype(np.int32)
    m = np.zeros((n, n), np.float32)
    cv2.fillConvexPoly(m, hull, 1.0)
    return cv2.GaussianBlur(m, (0, 0), UP * blur)


def _normalised(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    sel = mask[MASK_PAD:-MASK_PAD, MASK_PAD:-MASK_PAD] > 0.8
    mu, sd = float(img[sel].mean()), float(img[sel].std())
    return (img - mu) / (0.5 * max(sd, 1e-3) + 0.5 * 0.18)


class Portraits:
    def __init__(self):
        from skimage import data

        faces = data.lfw_subset()[:100]  # the first 100 of the 200 crops are faces
        self.pool = _landmark_pool(faces)
        self.keys = sorted(self.pool)
        self.target = _symmetric_mean(np.array([self.pool[k] for k in self.keys]))
        self.mask = _face_mask(self.target, grow=0.9)
        self.outline = _face_mask(self.target, grow=1.03, blur=0.6)
        self.centre = (self.target.min(0) + self.target.max(0)) / 2
        self.half = (self.target.max(0) - self.target.min(0)) / 2
        warped = _warp_all(faces, self.pool, self.target)
        self.warped = {k: _normalised(v, self.mask) for k, v in warped.items()}
        self._trait_masks()

    # ------------------------------------------------------------------ planted traits
    def _px(self, idx) -> np.ndarray:
        """Texture pixel coordinates of mean-shape landmarks ``idx``."""
        return (self.target[list(idx)] + 0.5) * UP - 0.5

    def _trait_masks(self):
        """Masks in texture coordinates (all faces share the mean shape, so one set serves all)."""
        import cv2

        n = 25 * UP
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
        self.inside = self.mask[MASK_PAD:-MASK_PAD, MASK_PAD:-MASK_PAD].copy()

        def blob(c, sx, sy):
            return np.exp(-0.5 * (((xx - c[0]) / sx) ** 2 + ((yy - c[1]) / sy) ** 2))

        # T-zone: brow centre lines (between the upper and lower brow contours) and the eyes.
        self.brows = []
        for upper, lower in (((70, 63, 105, 66, 107), (46, 53, 52, 65, 55)),
                             ((300, 293, 334, 296, 336), (276, 283, 282, 295, 285))):
            u, lo = self._px(upper), self._px(lower)
            self.brows.append(((u + lo) / 2, float(np.linalg.norm(u - lo, axis=1).mean())))
        self.brow_area = np.zeros((n, n), np.float32)  # where the faces' own brows are
        for line, width in self.brows:
            cv2.polylines(self.brow_area, [np.rint(line * 4).astype(np.int32)], False, 1.0,
                          thickness=max(1, int(round(2.2 * width))), lineType=cv2.LINE_AA, shift=2)
        self.brow_area = cv2.GaussianBlur(self.brow_area, (0, 0), 0.3 * UP) * self.inside
        eyes = [self._px(e).mean(0) for e in ((33, 133, 159, 145), (362, 263, 386, 374))]
        eye_w = float(np.linalg.norm(self._px([33])[0] - self._px([133])[0]))
        self.eye_shade = sum(blob(c - [0, 0.1 * eye_w], 0.55 * eye_w, 0.3 * eye_w) for c in eyes)
        # Face: cheeks (the flush is strongest there) on top of the whole face.
        cheeks = [self._px([i])[0] for i in (205, 425)]
        self.cheeks = sum(blob(c, 2.2 * UP, 1.8 * UP) for c in cheeks)
        # Jaw: the beard area (jawline below the nose base), lips left out.
        nose_y = float(self._px([2])[0, 1])
        jaw = self._px((132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365,
                        397, 288, 361))
        poly = np.vstack([[jaw[0, 0], nose_y + 0.3 * UP], jaw, [jaw[-1, 0], nose_y + 0.3 * UP]])
        beard = np.zeros((n, n), np.float32)
        cv2.fillPoly(beard, [poly.astype(np.int32)], 1.0)
        lips = self._px((61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17,
                         84, 181, 91, 146))
        hole = np.zeros((n, n), np.float32)
        cv2.fillPoly(hole, [lips.astype(np.int32)], 1.0)
        hole = cv2.GaussianBlur(cv2.dilate(hole, np.ones((9, 9), np.uint8)), (0, 0), 0.4 * UP)
        self.beard = cv2.GaussianBlur(beard, (0, 0), 0.5 * UP) * (1 - hole) * self.inside

    def trait_layers(self, traits: dict, seed: int) -> dict:
        """The per-person planted look: a darkening map and a flush map (texture coordinates).

        ``traits`` holds standardised values (sd 1); each is clipped to +-2.5 before it sets
        an amount, so extremes stay plausible.
        """
        import cv2

        f, t, j = (float(np.clip(traits[k], -2.5, 2.5)) for k in TRAITS)
        n = 25 * UP
        # T-zone: brow weight (darkness and thickness together) and eye shading.
        darkness = float(np.clip(0.42 + 0.17 * t, 0.02, 0.9))
        thick = float(np.clip(1.0 + 0.38 * t, 0.2, 2.0))
        brows = np.zeros((n, n), np.float32)
        for line, width in self.brows:
            cv2.polylines(brows, [np.rint(line * 4).astype(np.int32)], False, 1.0,
                          thickness=max(1, int(round(width * thick))), lineType=cv2.LINE_AA,
                          shift=2)
        brows = cv2.GaussianBlur(brows, (0, 0), 0.18 * UP)
        dark = darkness * brows + float(np.clip(0.22 + 0.1 * t, 0.0, 0.5)) * self.eye_shade
        # Below the mean the composite's own brows fade towards the skin, so that the low end of
        # the trait shows as well as the high end (darkening alone stops at the faces' own brows).
        fade = float(np.clip(-0.45 * t, 0.0, 0.9)) * self.brow_area
        # Jaw: stubble / beard shadow (a fine dot texture, darker with the trait).
        rng = np.random.default_rng(seed)
        dots = cv2.GaussianBlur(rng.random((n, n)).astype(np.float32), (0, 0), 0.8)
        dots = np.clip((dots - dots.mean()) / (dots.std() + 1e-6) * 0.5 + 0.6, 0, 1)
        dark = dark + float(np.clip(0.2 + 0.12 * j, 0.0, 0.55)) * self.beard * dots
        # Face: a flush (rosy and warm vs pale and cool), colour only, lightness kept.
        flush = float(np.clip(0.1 + 0.075 * f, -0.1, 0.3)) * (0.55 * self.inside + self.cheeks)
        return {"dark": np.clip(dark, 0, 0.95).astype(np.float32), "flush": flush.astype(np.float32),
                "fade": fade.astype(np.float32)}

    def texture(self, ids) -> np.ndarray:
        return np.mean([self.warped[i] for i in ids], 0)

    def render(self, tex: np.ndarray, look: dict, shot: dict, seed: int,
               layers: dict | None = None) -> np.ndarray:
        """One 480x600 RGB portrait of the averaged face ``tex`` with the planted ``layers``."""
        import cv2

        rng = np.random.default_rng(seed)
        scale, angle = shot["scale"], np.deg2rad(shot["angle"])
        # Similarity transform: the face centre -> (cx, cy) in the portrait.
        c, s = np.cos(angle) * scale / UP, np.sin(angle) * scale / UP
        centre = (self.centre + 0.5) * UP - 0.5
        tx = W * shot["cx"] - (c * centre[0] - s * centre[1])
        ty = H * shot["cy"] - (s * centre[0] + c * centre[1])
        M = np.array([[c, -s, tx], [s, c, ty]], np.float32)
        face = tex * look["contrast"] * shot["contrast"] + look["skin"] + shot["bright"]
        if layers is not None:
            skin = float(np.median(face[self.inside > 0.8]))
            face = (face + layers["fade"] * (skin - face)) * (1 - layers["dark"])
        fw = cv2.warpAffine(face.astype(np.float32), M, (W, H), flags=cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_REPLICATE)
        flush = np.zeros((H, W), np.float32)
        if layers is not None:
            flush = cv2.warpAffine(layers["flush"], M, (W, H), flags=cv2.INTER_LINEAR)
        Mp = M.copy()
        Mp[:, 2] -= M[:, :2] @ np.array([MASK_PAD, MASK_PAD], np.float32)
        mw = cv2.warpAffine(self.mask, Mp, (W, H), flags=cv2.INTER_LINEAR)
        oval = cv2.warpAffine(self.outline, Mp, (W, H), flags=cv2.INTER_LINEAR)
        # Extend the face's own tones beyond the oval (inpainting at quarter size).
        small = cv2.resize(fw, (W // 4, H // 4), interpolation=cv2.INTER_AREA)
        holes = (cv2.resize(mw, (W // 4, H // 4)) < 0.7).astype(np.uint8)
        ext = cv2.inpaint((np.clip(small, 0, 1) * 255).astype(np.uint8), holes, 12,
                          cv2.INPAINT_TELEA).astype(np.float32) / 255
        ext = cv2.GaussianBlur(cv2.resize(ext, (W, H), interpolation=cv2.INTER_CUBIC), (0, 0), 5)
        skin_layer = fw * mw + ext * (1 - mw)

        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        bg = (look["bg"] + shot["bg"]) + look["bg_slope"] * (yy / H) + 0.06 * (xx / W - 0.5)
        head = np.array([W * shot["cx"], H * shot["cy"]])
        sc = scale  # pixels per crop unit

        def ell(dx_units, dy_units, ax, ay, soft):
            ox = np.cos(angle) * dx_units - np.sin(angle) * dy_units
            oy = np.sin(angle) * dx_units + np.cos(angle) * dy_units
            dx, dy = xx - (head[0] + ox * sc), yy - (head[1] + oy * sc)
            u = (dx * np.cos(angle) + dy * np.sin(angle)) / (ax * sc)
            v = (-dx * np.sin(angle) + dy * np.cos(angle)) / (ay * sc)
            return np.clip((1 - np.sqrt(u * u + v * v)) / soft + 0.5, 0, 1)

        hw, hh = self.half
        shoulders = ell(0, hh + 13.5, 2.3 * hw, 11.0, 0.12)
        neck = ell(0, hh + 3.5, 0.68 * hw, 7.0, 0.35)
        hair = ell(0, -0.22 * hh, (hw + 0.9) * look["hair_w"], hh * 1.12, 0.2)
        skin = float(np.median(fw[mw > 0.8]))
        out = bg
        cloth = look["cloth"] + 0.03 * np.sin(xx / 37.0 + yy / 53.0)
        out = out * (1 - shoulders) + cloth * shoulders
        neck_tone = skin * (0.72 + 0.18 * np.clip((yy - head[1] - sc * hh) / (sc * 8), 0, 1))
        out = out * (1 - neck) + neck_tone * neck
        out = out * (1 - hair) + look["hair"] * hair
        out = out * (1 - oval) + skin_layer * oval
        blur = cv2.GaussianBlur(out, (0, 0), 2)
        out = out + 0.6 * (out - blur)
        out = out + rng.normal(0, 0.006, out.shape).astype(np.float32)
        t = look["tint"]
        a = flush * oval  # red up, blue and green down, at the same luminance
        gain = (1 + a, 1 - 0.412 * a, 1 - 0.5 * a)
        rgb = np.stack([out * t[0] * gain[0], out * t[1] * gain[1], out * t[2] * gain[2]], -1)
        return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def _jpeg(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buf.getvalue()


def _decode(b: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))


def _draw_look(rng) -> dict:
    warm = rng.uniform(0.01, 0.04)
    return {
        "contrast": rng.uniform(0.19, 0.23),
        "skin": rng.uniform(0.5, 0.6),
        "bg": rng.uniform(0.3, 0.55),
        "bg_slope": rng.uniform(-0.15, 0.25),
        "hair": rng.uniform(0.08, 0.3),
        "hair_w": rng.uniform(0.97, 1.06),
        "cloth": rng.uniform(0.12, 0.45),
        "tint": (1.0 + warm, 1.0, 1.0 - warm * 1.1),
    }


def _draw_shot(rng, k: int) -> dict:
    # Photo 1 is a centred head-and-shoulders shot; the others vary framing more.
    if k == 0:
        return {"scale": rng.uniform(12.5, 13.5), "cx": 0.5, "cy": rng.uniform(0.45, 0.48),
                "angle": rng.uniform(-1.5, 1.5), "contrast": 1.0, "bright": 0.0, "bg": 0.0}
    return {
        "scale": rng.uniform(10.5, 14.5),
        "cx": rng.uniform(0.42, 0.58),
        "cy": rng.uniform(0.42, 0.52),
        "angle": rng.uniform(-5.0, 5.0),
        "contrast": rng.uniform(0.85, 1.2),
        "bright": rng.uniform(-0.07, 0.07),
        "bg": rng.uniform(-0.1, 0.1),
    }


def person_ids(n: int) -> list[tuple[str, str]]:
    """(person_id, name) of the first ``n`` reference people: p001 "Composite 001", ..."""
    return [(f"p{i:03d}", f"Composite {i:03d}") for i in range(1, n + 1)]


def _make_photos(out_dir: Path, portraits: Portraits, check: FaceCheck, rng, traits: dict,
                 log) -> dict:
    photos_dir = out_dir / "photos"
    used: list[frozenset] = []
    results = {}
    for pid, _ in person_ids(len(traits)):
        layers = portraits.trait_layers(traits[pid], seed=int(rng.integers(2**31)))
        for attempt in itertools.count():
            if attempt > 20:
                raise RuntimeError(f"could not make passing photos for {pid}")
            for _ in range(1000):  # a combination that shares few faces with everyone so far
                k = int(rng.integers(4, 7))
                ids = frozenset(int(x) for x in rng.choice(portraits.keys, k, replace=False))
                if ids not in used and all(len(ids & u) <= MAX_SHARED_FACES for u in used):
                    break
            else:
                raise RuntimeError(f"no face combination left for {pid}")
            tex = portraits.texture(sorted(ids))
            look = _draw_look(rng)
            shots = []
            for j in range(PHOTOS_PER_PERSON):
                for _ in range(6):
                    shot = _draw_shot(rng, j)
                    b = _jpeg(portraits.render(tex, look, shot, seed=int(rng.integers(2**31)),
                                               layers=layers))
                    ok, info = check(_decode(b))
                    if ok:
                        shots.append((b, info))
                        break
                else:
                    break
            if len(shots) == PHOTOS_PER_PERSON:
                break
            log(f"{pid}: combination {sorted(ids)} failed the gate, drawing another")
        used.append(ids)
        d = photos_dir / pid
        d.mkdir(parents=True, exist_ok=True)
        for j, (b, info) in enumerate(shots, 1):
            (d / f"{j}.jpg").write_bytes(b)
        results[pid] = {"faces": len(ids), "checks": [i for _, i in shots]}
        log(f"{pid}: {len(ids)} faces, brow-chin px "
            f"{[i['brow_chin_px'] for _, i in shots]}")
    # Framing example: a six-face composite none of the people use exactly, centred, traits 0.
    neutral = portraits.trait_layers({k: 0.0 for k in TRAITS}, seed=SEED)
    for _ in range(50):
        ids = sorted(int(x) for x in rng.choice(portraits.keys, 6, replace=False))
        if any(len(set(ids) & u) > MAX_SHARED_FACES for u in used):
            continue
        look = _draw_look(rng)
        look.update(bg=0.62, bg_slope=-0.12, cloth=0.25, hair=0.15)
        shot = {"scale": 13.0, "cx": 0.5, "cy": 0.46, "angle": 0.0, "contrast": 1.0,
                "bright": 0.0, "bg": 0.0}
        b = _jpeg(portraits.render(portraits.texture(ids), look, shot, seed=SEED, layers=neutral))
        ok, _ = check(_decode(b))
        if ok:
            (out_dir / "framing_example.jpg").write_bytes(b)
            break
    else:
        raise RuntimeError("could not make a passing framing example")
    return results


def make_trait_strip(portraits: Portraits, path: Path, seed: int = SEED) -> None:
    """One row per trait: the same composite at -2, -1, 0, +1, +2 sd of that trait (others 0)."""
    import cv2
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    ids = sorted(int(x) for x in rng.choice(portraits.keys, 6, replace=False))
    tex = portraits.texture(ids)
    look = _draw_look(rng)
    look.update(bg=0.62, bg_slope=-0.12, cloth=0.25, hair=0.15, skin=0.55, contrast=0.21,
                tint=(1.025, 1.0, 0.97))
    shot = {"scale": 13.0, "cx": 0.5, "cy": 0.46, "angle": 0.0, "contrast": 1.0,
            "bright": 0.0, "bg": 0.0}
    values = (-2, -1, 0, 1, 2)
    cw, ch, label_w, top = 200, 230, 90, 24
    sheet = Image.new("RGB", (label_w + cw * len(values), top + ch * len(TRAITS)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, v in enumerate(values):
        draw.text((label_w + c * cw + cw // 2 - 12, 6), f"{v:+d} sd" if v else "0", fill="black")
    for r, trait in enumerate(TRAITS):
        draw.text((8, top + r * ch + ch // 2 - 6), {"face": "face:\nflush", "tzone": "T-zone:\nbrows, eyes",
                                                    "jaw": "jaw:\nstubble"}[trait], fill="black")
        for c, v in enumerate(values):
            traits = {k: (v if k == trait else 0.0) for k in TRAITS}
            img = portraits.render(tex, look, shot, seed=seed, layers=portraits.trait_layers(traits, seed))
            crop = img[int(H * 0.2):int(H * 0.72), int(W * 0.25):int(W * 0.75)]
            crop = cv2.resize(crop, (cw - 4, ch - 4), interpolation=cv2.INTER_AREA)
            sheet.paste(Image.fromarray(crop), (label_w + c * cw + 2, top + r * ch + 2))
    sheet.save(path, format="JPEG", quality=85, optimize=True)


# ----------------------------------------------------------------------------- tables
def _write_csv(path: Path, header, rows):
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _standardised(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / (sd if sd > 0 else 1.0)


def draw_traits(n: int, rng) -> dict[str, dict[str, float]]:
    """Per person: the standardised visible traits, the hidden part, the rule score and appeal.

    ``rule`` = 0.5 face + 0.4 tzone + 0.1 jaw (what the photos show); ``appeal`` = rule +
    HIDDEN_SD * hidden (what the survey follows). Traits are standardised over the sample.
    """
    z = {k: _standardised(rng.normal(size=n)) for k in (*TRAITS, "hidden")}
    out = {}
    for i, (pid, _) in enumerate(person_ids(n)):
        row = {k: round(float(z[k][i]), 4) for k in (*TRAITS, "hidden")}
        row["rule"] = round(sum(RULE_WEIGHTS[k] * row[k] for k in TRAITS), 4)
        row["appeal"] = round(row["rule"] + HIDDEN_SD * row["hidden"], 4)
        out[pid] = row
    return out


def _make_tables(out_dir: Path, rng, traits: dict):
    people = person_ids(len(traits))
    _write_csv(out_dir / "people.csv", ["person_id", "name"], people)
    _write_csv(out_dir / "traits.csv", ["person_id", *TRAITS, "hidden", "rule", "appeal"],
               [(pid, *(f"{traits[pid][k]:.4f}" for k in (*TRAITS, "hidden", "rule", "appeal")))
                for pid, _ in people])

    appeal = np.array([traits[pid]["appeal"] for pid, _ in people])
    latent = 3.0 + LATENT_SD * _standardised(appeal)
    rows = []
    for r in range(1, N_RATERS + 1):
        bias = rng.normal(0, RATER_BIAS_SD)
        age = ["20s", "30s", "40s", "50+"][int(rng.choice(4, p=[0.32, 0.28, 0.22, 0.18]))]
        gender = ["female", "male", "other"][int(rng.choice(3, p=[0.48, 0.47, 0.05]))]
        for (pid, _), mu in zip(people, latent):
            score = int(np.clip(np.rint(mu + bias + rng.normal(0, RATER_NOISE_SD)), 1, 5))
            rows.append((f"r{r:03d}", pid, score, age, gender))
    _write_csv(out_dir / "ratings.csv", ["rater_id", "person_id", "score", "age_group", "gender"],
               rows)

    assert sum(TYPE_COUNTS) == N_CHOOSERS
    choices = [t["name"] for t, c in zip(TYPES, TYPE_COUNTS) for _ in range(c)]
    choices = [choices[i] for i in rng.permutation(len(choices))]
    _write_csv(out_dir / "type_choices.csv", ["rater_id", "type"],
               [(f"c{i:03d}", t) for i, t in enumerate(choices, 1)])

    types = [{"name": t["name"], "order": i, "share_percent": t["share_percent"],
              "description": t["description"]} for i, t in enumerate(TYPES)]
    (out_dir / "types.json").write_text(json.dumps(types, indent=2) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- ceiling
def _survey():
    from labeling import survey  # the project is installed into the venv (`make venv`)

    return survey


def _quotas():
    from labeling import quotas

    return quotas


def rule_types(rule: dict[str, float], names=None, shares=None) -> dict[str, str]:
    """Types from the hidden rule: rank people by ``rule`` score (ties as the survey breaks
    them), fill the survey's quotas in type order (labeling.quotas' ranking and quotas)."""
    import pandas as pd

    ranking = _quotas()
    names = list(names or [t["name"] for t in TYPES])
    shares = list(shares or [t["share_percent"] for t in TYPES])
    stats = pd.DataFrame({"person_id": list(rule), "n_ratings": 1,
                          "mean_score": [float(v) for v in rule.values()]})
    ranked = ranking.rank_people(stats)
    quotas = ranking.quota_steps(names, shares, len(ranked))["quota"].tolist()
    labels = ranking.assign_types(ranked, quotas, names)
    return dict(zip(labels["person_id"], labels["type"]))


def ceiling(rule: dict[str, float], survey_types: dict[str, str], names=None, shares=None) -> dict:
    """The ceiling: accuracy of the hidden rule's types against the survey-derived types.

    ``rule`` maps person id -> 0.5 face + 0.4 tzone + 0.1 jaw of the true traits;
    ``survey_types`` maps person id -> the type the survey gave. Returns ``ceiling_accuracy``
    (same type) and ``ceiling_within_one`` (at most one type apart), over all people.
    """
    names = list(names or [t["name"] for t in TYPES])
    predicted = rule_types(rule, names, shares)
    pids = sorted(survey_types)
    if set(pids) != set(predicted):
        raise ValueError("rule scores and survey types cover different people")
    order = {n: i for i, n in enumerate(names)}
    gaps = [abs(order[predicted[p]] - order[survey_types[p]]) for p in pids]
    return {"ceiling_accuracy": round(sum(g == 0 for g in gaps) / len(gaps), 4),
            "ceiling_within_one": round(sum(g <= 1 for g in gaps) / len(gaps), 4),
            "n_people": len(gaps)}


def survey_types(sample_dir: Path) -> dict[str, str]:
    """The types the survey in ``sample_dir`` gives (exactly as app.sample labels them)."""
    survey = _survey()
    types = json.loads((sample_dir / "types.json").read_text(encoding="utf-8"))
    types.sort(key=lambda t: t["order"])
    ratings = survey.parse_ratings(sample_dir / "ratings.csv", (1.0, 5.0))
    result = survey.label_people(ratings, [t["name"] for t in types],
                                 [t["share_percent"] for t in types])
    return dict(zip(result.labels["person_id"], result.labels["type"]))


def read_rule(sample_dir: Path) -> dict[str, float]:
    with (sample_dir / "traits.csv").open(newline="", encoding="utf-8") as f:
        return {r["person_id"]: float(r["rule"]) for r in csv.DictReader(f)}


def sample_ceiling(sample_dir: Path, seed: int | None = None) -> dict:
    """ceiling() of the sample in ``sample_dir`` (its traits.csv against its survey)."""
    out = ceiling(read_rule(sample_dir), survey_types(sample_dir))
    shares = [t["share_percent"] for t in TYPES]
    out["chance_accuracy"] = round(max(shares) / sum(shares), 4)
    if seed is not None:
        out["seed"] = seed
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=SAMPLE_DIR, help="output folder (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=SEED, help="random seed (default: %(default)s)")
    ap.add_argument("--people", type=int, default=N_PEOPLE,
                    help="number of reference people (default: %(default)s)")
    ap.add_argument("--tables-only", action="store_true", help="skip the photos")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)

    def log(msg):
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    traits = draw_traits(args.people, rng)
    _make_tables(out, rng, traits)
    result = sample_ceiling(out, args.seed)
    (out / "ceiling.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log(f"tables written; ceiling {result}")
    if args.tables_only:
        return 0
    if (out / "photos").exists():
        shutil.rmtree(out / "photos")
    portraits = _portraits()
    log(f"face pool: {len(portraits.keys)} of 100 LFW faces")
    make_trait_strip(portraits, out / "traits_strip.jpg", args.seed)
    _make_photos(out, portraits, _face_check(), np.random.default_rng(args.seed + 1), traits, log)
    log("photos written")
    return 0


@functools.cache
def _portraits() -> Portraits:
    return Portraits()


@functools.cache
def _face_check() -> FaceCheck:
    return FaceCheck()


if __name__ == "__main__":
    raise SystemExit(main())
