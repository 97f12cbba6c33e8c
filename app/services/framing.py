"""The live framing guide: the face gate's verdict on webcam frames, shown as a one-line hint and the
face box drawn on the video, and the photo taken once the framing passes.

WebRTC hands over frames (25-30 a second) faster than the gate needs them. The guide checks one frame at
a time on a worker thread, at most one every :data:`CHECK_INTERVAL_S`, and skips the frames that arrive
meanwhile; every frame gets the latest verdict drawn on it, so the video stays smooth whatever the
checks cost (``bench/framing_guide.py`` measures the rate). Frames are checked at their own size, as the
taken photo is analysed, so "ready" here means the photo passes the gate there.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

#: gate reason -> the hint shown on the video (None: the framing passes)
HINTS: dict[str | None, str] = {
    None: "ready",
    "no_face": "no face found: look into the camera",
    "several_faces": "only one face please",
    "face_cut_off": "move back",
    "face_too_small": "move closer",
    "face_turned": "turn to the camera",
}
WAITING_HINT = "checking the framing..."
#: At most this many checks a second per visitor, to leave the CPU to the others on a busy server.
CHECK_INTERVAL_S = 0.1
#: A verdict older than this no longer describes the video (the checks stalled or the camera stopped);
#: generous, as a busy server gets only a frame or two a second through WebRTC.
STALE_AFTER_S = 10.0
#: "Take the photo" takes the latest frame that passed, if it passed this recently: the visitor reacts
#: to "ready" a moment after it is shown (seconds on a busy server), and a frame or two may fail
#: meanwhile (a blink, a blur). The analysis checks the taken photo again.
TAKE_WITHIN_S = 5.0
READY_BGR = (60, 180, 60)
NOT_READY_BGR = (0, 165, 255)
JPEG_QUALITY = 92


@dataclass(frozen=True)
class FramingVerdict:
    """What the gate says of one frame: ``ready`` when it passes; ``hint`` for the visitor; ``box`` the
    largest face found, ``[x0, y0, x1, y1]`` in pixels of the frame (None when there is none)."""

    ready: bool
    reason: str | None
    hint: str
    box: tuple[float, float, float, float] | None = None


def verdict_of(gate_result) -> FramingVerdict:
    """A :class:`models.gate.GateResult` as a framing verdict."""
    reason = None if gate_result.ok else gate_result.reason
    box = tuple(float(v) for v in gate_result.face) if gate_result.face is not None else None
    return FramingVerdict(ready=bool(gate_result.ok), reason=reason, hint=HINTS.get(reason, "hold still"), box=box)


def frame_verdict(gate, frame: np.ndarray) -> FramingVerdict:
    """Check one upright HxWx3 uint8 RGB frame with the face gate."""
    return verdict_of(gate.check(frame))


def draw_guide(frame: np.ndarray, verdict: FramingVerdict | None) -> np.ndarray:
    """A copy of ``frame`` (RGB) with the face box and the hint drawn on a band at the top."""
    import cv2  # here, not at the top: the Try it page imports this module and draws before OpenCV loads

    shown = np.ascontiguousarray(frame).copy()
    height, width = shown.shape[:2]
    bgr = READY_BGR if verdict is not None and verdict.ready else NOT_READY_BGR
    rgb = bgr[::-1]
    line = max(2, round(width / 200))
    if verdict is not None and verdict.box is not None:
        x0, y0, x1, y1 = (round(v) for v in verdict.box)
        cv2.rectangle(shown, (x0, y0), (x1, y1), rgb, line)
    text = verdict.hint if verdict is not None else WAITING_HINT
    if verdict is not None and verdict.ready:
        text = "ready: take the photo"
    band = max(24, round(height * 0.09))
    cv2.rectangle(shown, (0, 0), (width, band), (0, 0, 0), -1)
    cv2.rectangle(shown, (0, band - line), (width, band), rgb, -1)
    scale = band / 40
    thickness = max(1, round(scale * 2))
    (text_w, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    if text_w > width - 16:  # a narrow frame: shrink the text to fit
        scale *= (width - 16) / text_w
        (text_w, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    origin = ((width - text_w) // 2, (band - line + text_h) // 2)
    cv2.putText(shown, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return shown


class FramingGuide:
    """One visitor's live guide; ``on_video_frame`` is the WebRTC frame callback (any thread)."""

    def __init__(self, gate, interval_s: float = CHECK_INTERVAL_S, clock=time.monotonic):
        self._gate = gate
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._busy = False
        self._last_start = -float("inf")
        self._verdict: FramingVerdict | None = None
        self._verdict_at = -float("inf")
        self._ready_frame: np.ndarray | None = None
        self._ready_at = -float("inf")
        self.frames_seen = 0
        self.frames_checked = 0

    @property
    def verdict(self) -> FramingVerdict | None:
        """The latest verdict, or None before the first check or when it is stale."""
        with self._lock:
            if self._clock() - self._verdict_at > STALE_AFTER_S:
                return None
            return self._verdict

    def on_frame(self, frame: np.ndarray) -> np.ndarray:
        """Start a check of ``frame`` unless one is running or one started too recently; return the
        frame with the latest verdict drawn."""
        now = self._clock()
        with self._lock:
            self.frames_seen += 1
            start = not self._busy and now - self._last_start >= self._interval_s
            if start:
                self._busy, self._last_start = True, now
        if start:
            threading.Thread(target=self._check, args=(frame.copy(),), name="framing-check", daemon=True).start()
        return draw_guide(frame, self.verdict)

    def on_video_frame(self, frame):
        """The ``video_frame_callback`` of ``streamlit_webrtc.webrtc_streamer``: an ``av.VideoFrame`` in
        and out."""
        shown = frame.from_ndarray(self.on_frame(frame.to_ndarray(format="rgb24")), format="rgb24")
        shown.pts, shown.time_base = frame.pts, frame.time_base
        return shown

    def check_now(self, frame: np.ndarray) -> FramingVerdict:
        """Check ``frame`` on this thread and record the verdict (what the worker thread does)."""
        verdict = frame_verdict(self._gate, frame)
        with self._lock:
            self._verdict, self._verdict_at = verdict, self._clock()
            if verdict.ready:
                self._ready_frame, self._ready_at = frame, self._verdict_at
            self.frames_checked += 1
        return verdict

    def _check(self, frame: np.ndarray) -> None:
        try:
            self.check_now(frame)
        finally:
            with self._lock:
                self._busy = False

    def photo_jpeg(self) -> bytes | None:
        """The latest frame that passed the gate as a JPEG, if it passed within :data:`TAKE_WITHIN_S`;
        else None."""
        with self._lock:
            frame = self._ready_frame if self._clock() - self._ready_at <= TAKE_WITHIN_S else None
        if frame is None:
            return None
        import cv2

        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        return encoded.tobytes() if ok else None
