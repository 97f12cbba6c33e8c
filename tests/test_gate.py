"""The face gate on the shared photos, and one made-up photo for each reason it refuses."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from app.core.settings import PROJECT_ROOT
from models.geometry import RegionBox, box_iou, brow_to_chin_px, regions_from_landmarks
from models.gate import GATE_MESSAGES, get_face_gate, head_pose_deg
from models.intake import read_image_file
from tests.conftest_paths import TEST_DATA
from tests.face_synth import turn_face

FACES = TEST_DATA / "faces"
BAD = TEST_DATA / "bad"
EXPECTED = json.loads((FACES / "expected.json").read_text())


@pytest.fixture(scope="module")
def gate():
    return get_face_gate()


@pytest.fixture(scope="module")
def obama():
    return read_image_file(FACES / "obama.jpg")


def verdict(result) -> str:
    return "pass" if result.ok else result.reason


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shared_photo_gets_the_expected_verdict_and_regions(gate, name):
    expected = EXPECTED[name]
    result = gate.check_bytes((FACES / name).read_bytes())
    assert verdict(result) in [v.strip() for v in expected["gate"].split(" or ")], result.message
    assert result.message
    if result.ok:
        for region in ("tzone", "jaw"):
            assert box_iou(result.regions[region], expected[region]) >= 0.8, region
        width, height = result.image_size
        for box in result.regions.values():
            assert 0 <= box.x0 < box.x1 <= width and 0 <= box.y0 < box.y1 <= height
            assert 0 < box.confidence <= 1
        assert result.landmarks.shape == (468, 2)


@pytest.mark.parametrize("name", sorted(p.name for p in BAD.iterdir()))
def test_shared_bad_file_is_refused_with_a_clear_reason(gate, name):
    result = gate.check_bytes((BAD / name).read_bytes())
    assert not result.ok
    assert result.reason in {"empty", "not_an_image", "truncated", "too_large", "too_small"}
    assert result.message == GATE_MESSAGES[result.reason]


def test_every_message_tells_the_person_what_to_do():
    for reason, message in GATE_MESSAGES.items():
        assert any(word in message for word in ("Choose", "Upload", "upload", "Crop", "Move")), reason


def test_regions_stay_in_original_pixels_when_detection_is_downscaled(gate, obama):
    # Doubling the photo must double the boxes: detection runs on a downscaled copy.
    big = np.asarray(Image.fromarray(obama).resize((obama.shape[1] * 2, obama.shape[0] * 2)))
    small, large = gate.check(obama), gate.check(big)
    assert small.ok and large.ok
    for region in ("face", "tzone", "jaw"):
        doubled = [v * 2 for v in small.regions[region].as_list()]
        assert box_iou(doubled, large.regions[region]) > 0.9


def test_no_face(gate, obama):
    body_only = obama[600:, :]  # below the chin: suit and hands
    assert verdict(gate.check(body_only)) == "no_face"
    assert verdict(gate.check(obama[100:, :])) == "pass"  # the same cut above the head keeps the face


def test_several_faces_made_by_pasting_two_photos(gate, obama):
    half = np.asarray(Image.fromarray(obama).resize((obama.shape[1] // 2, obama.shape[0] // 2)))
    two = np.concatenate([half, half[:, ::-1]], axis=1)
    one = np.concatenate([half, np.full_like(half, 200)], axis=1)
    assert verdict(gate.check(two)) == "several_faces"
    assert verdict(gate.check(one)) == "pass"


def test_a_small_face_in_the_background_is_not_a_second_face(gate, obama):
    canvas = obama.copy()
    tiny = np.asarray(Image.fromarray(obama).resize((obama.shape[1] // 5, obama.shape[0] // 5)))
    canvas[-tiny.shape[0]:, -tiny.shape[1]:] = tiny
    assert verdict(gate.check(canvas)) == "pass"


@pytest.mark.parametrize(("cut", "expected"), [(0.3, "face_cut_off"), (0.15, "face_cut_off"), (0.0, "pass")])
def test_face_cut_off_at_the_top(gate, obama, cut, expected):
    face = gate.check(obama).regions["face"]
    top = round(face.y0 + cut * face.height)
    assert verdict(gate.check(obama[top:, :])) == expected


def test_face_cut_off_at_the_side(gate, obama):
    face = gate.check(obama).regions["face"]
    right = round(face.x1 - 0.25 * face.width)
    assert verdict(gate.check(obama[:, :right])) == "face_cut_off"


def test_face_too_small(gate, obama):
    settings = gate.settings
    face_px = gate.check(obama).regions["face"].height
    for factor, expected in [(0.5 * settings.min_face_px / face_px, "face_too_small"), (2.0 * settings.min_face_px / face_px, "pass")]:
        size = (round(obama.shape[1] * factor), round(obama.shape[0] * factor))
        assert verdict(gate.check(np.asarray(Image.fromarray(obama).resize(size, Image.LANCZOS)))) == expected


def test_small_face_in_a_large_photo_is_found(gate, obama):
    # A 4000x3000 photo whose face is about 180 px tall: the detector sees it at 1024 px.
    canvas = np.full((3000, 4000, 3), 90, np.uint8)
    face = np.asarray(Image.fromarray(obama).resize((obama.shape[1] * 2 // 3, obama.shape[0] * 2 // 3)))
    canvas[1500:1500 + face.shape[0], 2500:2500 + face.shape[1]] = face
    result = gate.check(canvas)
    assert result.ok, result.reason
    assert result.regions["face"].x0 > 2500 and result.regions["face"].y0 > 1500


def jpeg(pixels: np.ndarray | Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    (pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)).save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


def obama_on_canvas(obama, face_px: float, canvas=(1400, 1050)) -> np.ndarray:
    """The obama photo scaled so its brow-to-chin distance is about ``face_px``, top left on a grey canvas."""
    factor = face_px / 228.8  # obama.jpg's own brow-to-chin distance
    face = np.asarray(Image.fromarray(obama).resize((round(obama.shape[1] * factor), round(obama.shape[0] * factor)),
                                                    Image.LANCZOS))
    pixels = np.full((canvas[1], canvas[0], 3), 120, np.uint8)
    pixels[:face.shape[0], :face.shape[1]] = face
    return pixels


def test_the_minimum_face_size_is_in_original_pixels_when_the_image_was_decoded_reduced(gate, obama, monkeypatch):
    face_px = brow_to_chin_px(gate.check(obama).landmarks)
    monkeypatch.setattr(gate, "settings", gate.settings.model_copy(update={"min_face_px": round(face_px * 1.5)}))
    assert verdict(gate.check(obama)) == "face_too_small"
    assert verdict(gate.check(obama, scale=2)) == "pass"  # the same pixels stand for a face twice as large


def test_a_small_face_is_still_refused_when_the_photo_is_decoded_reduced(gate, obama):
    data = jpeg(obama_on_canvas(obama, 0.85 * gate.settings.min_face_px))  # 1400 px: decodable at 1/2
    assert verdict(gate.check_bytes(data)) == "face_too_small"
    result, image = gate.decode_and_check(data)
    assert verdict(result) == "face_too_small"
    assert image.shape[:2] == (1050, 1400) and result.scale == 1  # decided on the whole photo


def test_a_large_jpeg_is_checked_reduced_with_the_regions_of_the_whole_photo(gate, obama):
    data = jpeg(obama_on_canvas(obama, 160))
    whole = gate.check_bytes(data)
    result, image = gate.decode_and_check(data)
    assert whole.ok and result.ok
    assert result.scale == 2 and image.shape[:2] == (525, 700) and result.image_size == (700, 525)
    line = result.to_json("photo.jpg")
    for region in ("face", "tzone", "jaw"):
        assert box_iou([v * 2 for v in result.regions[region].as_list()], whole.regions[region]) > 0.9
        assert line["regions"][region] == pytest.approx([v * 2 for v in result.regions[region].as_list()], abs=0.1)
    assert line["face"] == pytest.approx([v * 2 for v in result.face], abs=0.1)  # the CLI speaks original pixels


def test_an_exif_rotated_jpeg_decoded_reduced_gives_the_regions_of_the_upright_photo(gate):
    # obama_exif_rotated.jpg stores the pixels turned, with orientation 6; enlarged so it decodes at 1/2.
    stored = Image.open(FACES / "obama_exif_rotated.jpg")
    exif = stored.getexif()
    enlarged = stored.resize((stored.width * 2, stored.height * 2), Image.LANCZOS)
    data = jpeg(enlarged, exif=exif)
    whole = gate.check_bytes(data)
    result, image = gate.decode_and_check(data)
    assert whole.ok and result.ok and result.scale == 2
    assert image.shape[:2] == (stored.width, stored.height)  # upright: taller than wide
    for region in ("face", "tzone", "jaw"):
        assert box_iou([v * 2 for v in result.regions[region].as_list()], whole.regions[region]) > 0.9
    for region in ("tzone", "jaw"):  # enlarged 2x, decoded at 1/2: the original upright photo's pixels
        assert box_iou(result.regions[region], EXPECTED["obama_exif_rotated.jpg"][region]) > 0.8


def test_a_model_working_on_larger_images_gets_the_photo_decoded_less_reduced(gate, obama):
    from models.kinds.head import HeadModel
    from models.serving import decode_side

    assert decode_side(HeadModel()) == gate.settings.gate_decode_side == 640
    assert decode_side(HeadModel({"max_side": 1024})) == 1024
    assert decode_side(HeadModel({"max_side": None})) == 0  # a model on whole photos gets them whole
    data = jpeg(obama_on_canvas(obama, 160))  # 1400x1050
    for min_side, scale in [(640, 2), (1024, 1), (0, 1)]:
        result, image = gate.decode_and_check(data, min_side=min_side)
        assert result.ok and result.scale == scale and image.shape[1] == 1400 // scale


@pytest.mark.parametrize("name", sorted([*EXPECTED, *(p.name for p in BAD.iterdir())]))
def test_decode_and_check_decides_as_the_whole_photo_check(gate, name):
    data = ((FACES if name in EXPECTED else BAD) / name).read_bytes()
    assert verdict(gate.decode_and_check(data)[0]) == verdict(gate.check_bytes(data))


@pytest.mark.parametrize(
    ("photo", "yaw", "pitch", "depth", "expected"),
    [
        ("obama.jpg", 0, -45, 1, "face_turned"),
        ("obama.jpg", 0, 0, 1, "pass"),
        ("obama.jpg", 0, -15, 1, "pass"),
        ("obama2.jpg", 50, 0, 2, "face_turned"),
        ("obama2.jpg", 0, 0, 2, "pass"),
    ],
)
def test_face_turned(gate, photo, yaw, pitch, depth, expected):
    """The photo's face re-rendered from its own mesh as if the head turned (see tests/face_synth.py)."""
    image = read_image_file(FACES / photo)
    landmarks3d = gate._mesh_landmarks(image, gate.check(image).face)
    landmarks3d[:, 2] *= depth  # the mesh's depth is shallow; a deeper head turns more convincingly
    assert verdict(gate.check(turn_face(image, landmarks3d, yaw, pitch))) == expected


def test_head_pose_follows_a_rotation_of_the_landmarks(gate, obama):
    landmarks3d = gate._mesh_landmarks(obama, gate.check(obama).face)
    yaw0, pitch0 = head_pose_deg(landmarks3d)
    assert abs(yaw0) < 10 and abs(pitch0) < 10
    angle = math.radians(40)
    about_vertical = np.array([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]])
    about_horizontal = np.array([[1, 0, 0], [0, math.cos(angle), -math.sin(angle)], [0, math.sin(angle), math.cos(angle)]])
    center = landmarks3d.mean(axis=0)
    yaw, _ = head_pose_deg((landmarks3d - center) @ about_vertical.T)
    _, pitch = head_pose_deg((landmarks3d - center) @ about_horizontal.T)
    assert abs(abs(yaw - yaw0) - 40) < 3
    assert abs(abs(pitch - pitch0) - 40) < 3


def test_regions_confidence_drops_when_clipped(gate, obama):
    landmarks = gate.check(obama).landmarks
    inside = regions_from_landmarks(landmarks, (1000, 1000), detection_score=0.9)
    assert all(box.confidence == pytest.approx(0.9) for box in inside.values())
    shifted = landmarks - [landmarks[:, 0].min() + 20, 0]
    clipped = regions_from_landmarks(shifted, (1000, 1000), detection_score=0.9)
    assert clipped["face"].x0 == 0 and clipped["face"].confidence < 0.9


def test_box_iou():
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1
    assert box_iou(RegionBox(0, 0, 10, 10), [5, 0, 15, 10]) == pytest.approx(1 / 3)
    assert box_iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0


def test_check_is_safe_from_several_threads(gate, obama):
    results = []
    threads = [threading.Thread(target=lambda: results.append(gate.check(obama))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first = results[0].regions["tzone"].as_list()
    assert len(results) == 4 and all(r.ok and r.regions["tzone"].as_list() == first for r in results)


def test_cli_prints_one_json_line_per_file_and_never_crashes(tmp_path):
    broken = tmp_path / "broken.jpeg"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    files = [str(FACES / "obama.jpg"), str(BAD / "truncated.jpg"), str(broken), str(tmp_path / "missing.jpg")]
    run = subprocess.run([sys.executable, "-m", "models.cascade", "gate", *files, "--json"],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-500:]
    rows = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert [row["file"] for row in rows] == files
    assert [row["reason"] for row in rows] == [None, "truncated", "not_an_image", "unreadable"]
    ok = rows[0]
    assert ok["ok"] and len(ok["face"]) == 4 and set(ok["regions"]) == {"face", "tzone", "jaw"}
    assert all(row["regions"] is None and row["message"] for row in rows[1:])

