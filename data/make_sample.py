"""Build the sample project data in ``data/sample/`` (deterministic, offline).

Run ``.venv/bin/python data/make_sample.py`` from the repository root; it rewrites everything
below ``data/sample/`` except ``README.md``. Nothing is downloaded.

What it makes
-------------
* ``people.csv``: 30 synthetic reference people ``p01``..``p30`` named "Composite 01".. .
* ``photos/<person_id>/<n>.jpg``: three portraits of each reference person.
* ``framing_example.jpg``: one well-framed portrait for the "frame your photo like this" hint.
* ``ratings.csv``: a made-up survey, 100 raters (r001..r100) x 30 people, scores 1..5.
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
4. A seeded draw picks 4-6 faces per reference person (no two people share more than two
   faces), and the warped faces are averaged.
5. The tight 25x25 crop cuts off the forehead and chin, which makes a face gate fail. The
   averaged face is therefore cut out with a feathered oval (convex hull of the mean shape),
   placed on a synthetic portrait: a soft vertical background gradient, dark shoulders,
   a shaded neck, a dark hair shape behind the head, and the region between the oval and
   the hair filled by inpainting the face's own edges. Mild unsharp masking and film grain
   follow, then a slight warm tint; the result is a 480x600 RGB JPEG (quality 90).
6. Each person's three photos vary framing (scale, position), rotation (<= 5 degrees),
   brightness/contrast and background. Every saved JPEG is decoded again and checked with
   MediaPipe directly: exactly one face from ``face_detection`` with model_selection 0 *and*
   1; ``face_mesh`` (static_image_mode) finds one face whose 468 landmarks all lie inside the
   image with a margin of 2% of the short side; brow (landmark 9) to chin (152) >= 100 px;
   the face not turned (nose tip between the cheek landmarks at a ratio in 0.3..0.7, and
   nose height between eyes and chin at a ratio in 0.2..0.6). A photo that fails is redrawn
   with other variations, and a person whose photos keep failing gets another combination
   of faces. So every committed photo passes.

The survey data
---------------
``ratings.csv``: every person has a latent value (normal, mean 3, sd 0.8); each rater has
a bias (sd 0.4); score = round(latent + bias + noise(sd 0.7)) clipped to 1..5. Raters get a
made-up age group and gender. ``type_choices.csv``: 500 choices with counts 109/107/112/96/76
(Alpha..Omega) = 21.8/21.4/22.4/19.2/15.2 %, the closest integer counts summing to 500 to the
target shares 21.8/21.4/22.5/19.2/15.2 % (which themselves sum to 100.1), shuffled.
"""

from __future__ import annotations

import argparse
import csv
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
N_PEOPLE = 30
PHOTOS_PER_PERSON = 3
N_RATERS = 100
N_CHOOSERS = 500

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

    def texture(self, ids) -> np.ndarray:
        return np.mean([self.warped[i] for i in ids], 0)

    def render(self, tex: np.ndarray, look: dict, shot: dict, seed: int) -> np.ndarray:
        """One 480x600 RGB portrait of the averaged face ``tex``."""
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
        fw = cv2.warpAffine(face.astype(np.float32), M, (W, H), flags=cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_REPLICATE)
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
        out = out + rng.normal(0, 0.008, out.shape).astype(np.float32)
        t = look["tint"]
        rgb = np.stack([out * t[0], out * t[1], out * t[2]], -1)
        return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def _jpeg(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90, optimize=True)
    return buf.getvalue()


def _decode(b: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))


def _draw_look(rng) -> dict:
    warm = rng.uniform(0.0, 0.08)
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


def _make_photos(out_dir: Path, portraits: Portraits, check: FaceCheck, rng, log) -> dict:
    photos_dir = out_dir / "photos"
    used: list[frozenset] = []
    results = {}
    for n in range(1, N_PEOPLE + 1):
        pid = f"p{n:02d}"
        for attempt in itertools.count():
            if attempt > 20:
                raise RuntimeError(f"could not make passing photos for {pid}")
            k = int(rng.integers(4, 7))
            ids = frozenset(int(x) for x in rng.choice(portraits.keys, k, replace=False))
            if any(len(ids & u) > 2 for u in used):
                continue
            tex = portraits.texture(sorted(ids))
            look = _draw_look(rng)
            shots = []
            for j in range(PHOTOS_PER_PERSON):
                for _ in range(6):
                    shot = _draw_shot(rng, j)
                    b = _jpeg(portraits.render(tex, look, shot, seed=int(rng.integers(2**31))))
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
    # Framing example: a six-face composite none of the people use exactly, centred.
    for _ in range(50):
        ids = sorted(int(x) for x in rng.choice(portraits.keys, 6, replace=False))
        if any(len(set(ids) & u) > 2 for u in used):
            continue
        look = _draw_look(rng)
        look.update(bg=0.62, bg_slope=-0.12, cloth=0.25, hair=0.15)
        shot = {"scale": 13.0, "cx": 0.5, "cy": 0.46, "angle": 0.0, "contrast": 1.0,
                "bright": 0.0, "bg": 0.0}
        b = _jpeg(portraits.render(portraits.texture(ids), look, shot, seed=SEED))
        ok, _ = check(_decode(b))
        if ok:
            (out_dir / "framing_example.jpg").write_bytes(b)
            break
    else:
        raise RuntimeError("could not make a passing framing example")
    return results


# ----------------------------------------------------------------------------- tables
def _write_csv(path: Path, header, rows):
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _make_tables(out_dir: Path, rng):
    people = [(f"p{n:02d}", f"Composite {n:02d}") for n in range(1, N_PEOPLE + 1)]
    _write_csv(out_dir / "people.csv", ["person_id", "name"], people)

    latent = rng.normal(3.0, 0.8, N_PEOPLE)
    rows = []
    for r in range(1, N_RATERS + 1):
        bias = rng.normal(0, 0.4)
        age = ["20s", "30s", "40s", "50+"][int(rng.choice(4, p=[0.32, 0.28, 0.22, 0.18]))]
        gender = ["female", "male", "other"][int(rng.choice(3, p=[0.48, 0.47, 0.05]))]
        for (pid, _), mu in zip(people, latent):
            score = int(np.clip(np.rint(mu + bias + rng.normal(0, 0.7)), 1, 5))
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=SAMPLE_DIR, help="output folder (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=SEED, help="random seed (default: %(default)s)")
    ap.add_argument("--tables-only", action="store_true", help="skip the photos")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)

    def log(msg):
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    _make_tables(out, np.random.default_rng(args.seed))
    log("tables written")
    if args.tables_only:
        return 0
    if (out / "photos").exists():
        shutil.rmtree(out / "photos")
    portraits = Portraits()
    log(f"face pool: {len(portraits.keys)} of 100 LFW faces")
    _make_photos(out, portraits, FaceCheck(), np.random.default_rng(args.seed + 1), log)
    log("photos written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
