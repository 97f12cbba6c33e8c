"""The live framing guide (app.services.framing): the face gate's verdict on a webcam frame as a hint and
a face box, checks that skip frames while one runs, and the photo taken when the framing passes."""

from __future__ import annotations

import threading
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from app.services import framing
from models.gate import GateResult, get_face_gate
from models.intake import decode_image, read_image_file
from tests.conftest_paths import TEST_DATA
from tests.face_synth import turn_face, webcam_frame

FACES = TEST_DATA / "faces"


@pytest.fixture(scope="module")
def gate():
    return get_face_gate()


@pytest.mark.parametrize(("photo", "face_height", "ready", "hint"), [
    ("obama.jpg", 480, True, "ready"),
    ("obama2.jpg", 480, True, "ready"),
    ("obama.jpg", 150, False, "move closer"),
    ("several_faces.jpg", 400, False, "only one face please"),
    ("no_face_coffee.jpg", 400, False, "no face found: look into the camera"),
])
def test_webcam_frame_gets_the_gates_verdict_as_a_hint(gate, photo, face_height, ready, hint):
    verdict = framing.frame_verdict(gate, webcam_frame(read_image_file(FACES / photo), face_height))
    assert (verdict.ready, verdict.hint) == (ready, hint)
    if photo != "no_face_coffee.jpg":
        x0, y0, x1, y1 = verdict.box
        assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480


def test_face_cut_off_says_move_back(gate):
    obama = read_image_file(FACES / "obama.jpg")
    face = gate.check(obama).regions["face"]
    verdict = framing.frame_verdict(gate, obama[round(face.y0 + 0.3 * face.height):, :])
    assert (verdict.ready, verdict.reason, verdict.hint) == (False, "face_cut_off", "move back")


def test_turned_face_says_turn_to_the_camera(gate):
    obama = read_image_file(FACES / "obama.jpg")
    landmarks3d = gate._mesh_landmarks(obama, gate.check(obama).face)
    verdict = framing.frame_verdict(gate, turn_face(obama, landmarks3d, 0, -45))
    assert (verdict.ready, verdict.hint) == (False, "turn to the camera")


def test_every_gate_refusal_on_a_frame_has_a_hint():
    for reason in ("no_face", "several_faces", "face_cut_off", "face_too_small", "face_turned"):
        verdict = framing.verdict_of(GateResult(ok=False, reason=reason, message="", face=(1, 2, 3, 4)))
        assert not verdict.ready and verdict.hint == framing.HINTS[reason] and verdict.hint != "ready"
        assert verdict.box == (1.0, 2.0, 3.0, 4.0)


def test_overlay_draws_the_box_and_the_hint_band_in_the_verdicts_colour():
    frame = np.full((240, 320, 3), 128, np.uint8)
    ready = framing.draw_guide(frame, framing.FramingVerdict(True, None, "ready", (100, 80, 200, 200)))
    not_ready = framing.draw_guide(frame, framing.FramingVerdict(False, "face_too_small", "move closer",
                                                                 (100, 80, 200, 200)))
    assert (frame == 128).all(), "the frame itself is not drawn on"
    assert tuple(ready[140, 100]) == framing.READY_BGR[::-1]  # the box's left edge
    assert tuple(not_ready[140, 100]) == framing.NOT_READY_BGR[::-1]
    assert (ready[1, 1] == 0).all() and (ready[1, -2] == 0).all()  # a dark band across the top
    assert (ready[5:15] != not_ready[5:15]).any(), "the hint text differs"
    waiting = framing.draw_guide(frame, None)
    assert (waiting[120:, :] == 128).all(), "no box without a verdict"


class SlowGate:
    """Stands in for the face gate: each check waits until the test lets it finish."""

    def __init__(self, result: GateResult):
        self.result = result
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self.calls = 0

    def check(self, frame):
        self.calls += 1
        self.started.release()
        self.release.wait(10)
        return self.result


def test_frames_arriving_during_a_check_are_shown_but_not_checked():
    gate = SlowGate(GateResult(ok=True, reason=None, message="", face=(10, 10, 50, 50)))
    guide = framing.FramingGuide(gate, interval_s=0.0)
    frame = np.zeros((120, 160, 3), np.uint8)
    guide.on_frame(frame)
    assert gate.started.acquire(timeout=10)
    for _ in range(20):
        shown = guide.on_frame(frame)
        assert shown.shape == frame.shape
    assert gate.calls == 1 and guide.verdict is None  # still checking the first frame
    gate.release.set()
    for _ in range(200):
        if guide.frames_checked:
            break
        threading.Event().wait(0.05)
    assert guide.verdict is not None and guide.verdict.ready
    assert guide.frames_seen == 21 and guide.frames_checked == 1


def test_checks_are_spaced_by_the_interval():
    now = [0.0]
    gate = SlowGate(GateResult(ok=False, reason="no_face", message=""))
    gate.release.set()
    guide = framing.FramingGuide(gate, interval_s=0.5, clock=lambda: now[0])
    frame = np.zeros((60, 80, 3), np.uint8)
    guide.on_frame(frame)
    assert gate.started.acquire(timeout=10)
    for step in range(4):  # 0.1 .. 0.4 s later: too soon
        now[0] = 0.1 * (step + 1)
        guide.on_frame(frame)
    now[0] = 0.6
    for _ in range(100):  # once the first check has finished, the next frame is checked
        guide.on_frame(frame)
        if gate.calls == 2:
            break
        threading.Event().wait(0.05)
    assert gate.calls == 2


def test_photo_is_the_latest_frame_that_passed_while_it_is_recent(gate):
    now = [0.0]
    guide = framing.FramingGuide(gate, clock=lambda: now[0])
    good = webcam_frame(read_image_file(FACES / "obama.jpg"), 480)
    small = webcam_frame(read_image_file(FACES / "obama.jpg"), 150)
    assert guide.photo_jpeg() is None
    assert not guide.check_now(small).ready
    assert guide.photo_jpeg() is None, "no frame has passed"
    assert guide.check_now(good).ready
    now[0] = 1.0
    assert not guide.check_now(small).ready  # a frame failing just after: the good one is still taken
    taken = decode_image(guide.photo_jpeg())
    assert taken.shape == good.shape
    assert np.abs(taken.astype(int) - good.astype(int)).mean() < 4  # the frame that passed, as a JPEG
    assert gate.check(taken).ok, "the taken photo passes the gate the analysis runs"
    now[0] = framing.TAKE_WITHIN_S + 0.5
    assert guide.photo_jpeg() is None, "too long ago"
    now[0] = 1.0 + framing.STALE_AFTER_S + 0.5
    assert guide.verdict is None, "a verdict that old no longer describes the video"


def test_video_frame_callback_keeps_the_timing(gate):
    guide = framing.FramingGuide(gate)
    image = np.asarray(Image.new("RGB", (64, 48), (90, 90, 90)))
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    frame.pts, frame.time_base = 1234, Fraction(1, 90000)
    shown = guide.on_video_frame(frame)
    assert (shown.width, shown.height, shown.pts, shown.time_base) == (64, 48, 1234, Fraction(1, 90000))
