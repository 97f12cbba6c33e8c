"""Try it's live camera: the framing guide (app.services.framing) over the camera's video, the button
that takes the latest frame that passed, and the simple camera where the live one is missing or fails.
Imported by pages/try_it.py; not a page itself."""

from __future__ import annotations

from types import ModuleType

import streamlit as st

from app.services import framing
from models.gate import get_face_gate

#: No STUN or TURN server: nothing is fetched from outside, and the browser reaches the app by its host
#: addresses (same machine or network). Where that fails, the visitor switches to the simple camera.
LIVE_RTC_CONFIGURATION = {"iceServers": []}
LIVE_VIDEO = {"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}, "audio": False}
#: Small enough that the hint and the button below stay in view on a desktop screen.
LIVE_VIDEO_HTML = {"autoPlay": True, "controls": False, "muted": True, "style": {"width": "100%", "maxWidth": "560px"}}
LIVE_STATUS_EVERY_S = 1.0  # the hint in the page's text; the video shows it on every frame
SIMPLE_CAMERA_LABEL = "Use the simple camera instead (if the live camera does not start)"


class TakenPhoto:
    """A frame taken with the live camera, read like an upload."""

    name = "the photo taken with the camera"

    def __init__(self, data: bytes):
        self._data = data

    def getvalue(self) -> bytes:
        return self._data


def framing_guide() -> framing.FramingGuide:
    """This session's live guide (its verdicts outlive the reruns; the camera's frames arrive on
    another thread)."""
    if "try_guide" not in st.session_state:
        st.session_state["try_guide"] = framing.FramingGuide(get_face_gate())
    return st.session_state["try_guide"]


def live_status(guide: framing.FramingGuide) -> None:
    """The guide's latest hint as text (the video shows it too), refreshed while the camera runs."""
    verdict = guide.verdict
    if verdict is None:
        st.info("Framing: checking…", icon=":material/hourglass_top:")
    elif verdict.ready:
        st.success("Framing: ready. Hold still and take the photo.", icon=":material/check_circle:")
    else:
        st.warning(f"Framing: {verdict.hint}", icon=":material/center_focus_weak:")


def live_camera(photo_n: int, webrtc: ModuleType) -> TakenPhoto | None:
    """The live framing guide: the camera's video with the face box and a hint drawn on it, and a
    button that takes the latest frame that passed."""
    guide = framing_guide()
    st.caption("Press **Start the camera** and allow it. The video shows, live, whether your framing passes: "
               "one face, whole head in the picture, close enough, looking at the camera. The frames are "
               "checked in this app's memory and nothing is stored.")
    context = webrtc.webrtc_streamer(
        key="try_live", mode=webrtc.WebRtcMode.SENDRECV, rtc_configuration=LIVE_RTC_CONFIGURATION,
        media_stream_constraints=LIVE_VIDEO, video_frame_callback=guide.on_video_frame,
        translations={"start": "Start the camera", "stop": "Stop the camera"}, video_html_attrs=LIVE_VIDEO_HTML,
    )
    already_taken = st.session_state.get("try_live_photo", (None, None))[0] == photo_n
    if context.state.playing and already_taken:  # no refreshing while the questions are answered
        st.caption("Photo taken: it is shown below. Take the photo again to replace it.")
    elif context.state.playing:
        st.fragment(live_status, run_every=LIVE_STATUS_EVERY_S)(guide)
    if context.state.playing:
        if st.button("Take the photo", type="primary", key="try_live_take"):
            data = guide.photo_jpeg()
            if data is None:
                verdict = guide.verdict
                st.warning("Not yet: " + (verdict.hint if verdict else "the framing is still being checked")
                           + ". Take the photo when the video says ready.")
            else:
                st.session_state["try_live_photo"] = (photo_n, data)
    taken_n, data = st.session_state.get("try_live_photo", (None, None))
    return TakenPhoto(data) if taken_n == photo_n and data else None


def camera_photo(photo_n: int, webrtc: ModuleType | None):
    """The photo taken for this page's ``photo_n``-th photo (None until one is taken): with the live
    guide, or with Streamlit's simple camera when the visitor asks for it or ``webrtc`` (the
    streamlit_webrtc module, imported by the page once the camera is asked for) is missing."""
    simple_camera = webrtc is None or st.toggle(SIMPLE_CAMERA_LABEL, key="try_simple_camera")
    if simple_camera:
        return st.camera_input("Take a photo: one face, looking at the camera", key=f"try_camera_{photo_n}")
    return live_camera(photo_n, webrtc)
