"""Widgets shared by the Labeling pages (Review, Import photos, Quality, Export / import, Retrain):
the annotator's name, the queue counts, the keyboard shortcuts and the cached photo pictures.
Imported by those page scripts; not a page itself."""

from __future__ import annotations

import base64
import functools
import threading
from pathlib import Path

import sqlalchemy as sa
import streamlit as st

from app.core.db import session_scope
from app.core.vocabulary import REGION_COLORS, REGIONS
from labeling import previews, queue

#: Shortcut -> what it does, shown on the Review page (the keyboard component below implements them).
SHORTCUTS = {
    "1 / 2 / 3": "label for a new box: face / T-zone / jaw",
    "E": "canvas Edit mode on/off (select, move, resize, relabel boxes)",
    "Delete": "delete the selected box (in Edit mode)",
    "Ctrl+Z / Ctrl+Y": "undo / redo on the canvas",
    "Enter": "accept and open the next photo",
    "F": "flag for a second look",
    "R": "reject (asks for a reason)",
    "J or → / K or ←": "next / previous photo",
}

# Runs in the page's own document (components v2 mount there, not in an iframe), so one keydown
# listener serves the whole page. It clicks the page's keyed widgets (class st-key-KEY) and the
# canvas toolbar buttons inside the canvas component's shadow root; typing in a field is left alone.
_KEYS_JS = """
export default function (component) {
  const clickIn = (root, selector) => {
    const element = root.querySelector(selector);
    if (!element || element.disabled) return false;
    element.click();
    return true;
  };
  const canvasButton = (label) => {
    for (const host of document.querySelectorAll('[data-testid="stMain"] *')) {
      if (host.shadowRoot && clickIn(host.shadowRoot, `button[aria-label="${label}"]`)) return true;
    }
    return false;
  };
  const pickLabel = (index) => {
    const options = document.querySelectorAll('.st-key-labeling-label input[type="radio"]');
    if (options[index]) options[index].click();
  };
  const actions = {
    '1': () => pickLabel(0), '2': () => pickLabel(1), '3': () => pickLabel(2),
    'e': () => canvasButton('Edit'),
    'Delete': () => canvasButton('Delete selected'), 'Backspace': () => canvasButton('Delete selected'),
    'Enter': () => clickIn(document, '.st-key-labeling-accept button'),
    'f': () => clickIn(document, '.st-key-labeling-flag button'),
    'r': () => clickIn(document, '.st-key-labeling-reject button'),
    'j': () => clickIn(document, '.st-key-labeling-next button'),
    'ArrowRight': () => clickIn(document, '.st-key-labeling-next button'),
    'k': () => clickIn(document, '.st-key-labeling-previous button'),
    'ArrowLeft': () => clickIn(document, '.st-key-labeling-previous button'),
  };
  const onKey = (event) => {
    const target = event.target;
    const tag = ((target && target.tagName) || '').toLowerCase();
    if (['input', 'textarea', 'select'].includes(tag) || (target && target.isContentEditable)) return;
    if (document.querySelector('[role="dialog"]')) return;
    if (event.ctrlKey || event.metaKey) {
      const key = event.key.toLowerCase();
      if (key === 'z' && !event.shiftKey) { event.preventDefault(); canvasButton('Undo'); }
      else if (key === 'y' || (key === 'z' && event.shiftKey)) { event.preventDefault(); canvasButton('Redo'); }
      return;
    }
    if (event.altKey || (event.key === 'Enter' && tag === 'button')) return;  // a focused button takes its Enter
    const action = actions[event.key.length === 1 ? event.key.toLowerCase() : event.key];
    if (action) { event.preventDefault(); action(); }
  };
  if (window.__facetypeLabelingKeys) document.removeEventListener('keydown', window.__facetypeLabelingKeys);
  window.__facetypeLabelingKeys = onKey;
  document.addEventListener('keydown', onKey);
  return () => {
    document.removeEventListener('keydown', onKey);
    if (window.__facetypeLabelingKeys === onKey) window.__facetypeLabelingKeys = null;
  };
}
"""

def keyboard_shortcuts() -> None:
    """Install the page's keyboard shortcuts (see :data:`SHORTCUTS`)."""
    # Declared on every run, as in a page script: the component registry belongs to the runtime, and a
    # declaration made once at import would be missing from a second runtime (each AppTest has its own).
    keys = st.components.v2.component("facetype_labeling_keys", html="<span></span>", js=_KEYS_JS)
    keys(key="labeling-keys", width="content", height="content")


# streamlit-drawable-canvas's own module, loaded from where Streamlit serves that package's assets and
# mounted with one change: the report of the background's size ("backgroundFit") stays in the browser.
# Every new canvas (each photo has its own) sends that report once its background has loaded, and a
# component's report reruns the page: a second run after every Accept for a value this page never reads.
_CANVAS_JS = """
const canvasModule = import(new URL(%r, document.baseURI).href);
export default function (component) {
  const mount = { ...component, setStateValue: (name, value) => {
    if (name !== 'backgroundFit') component.setStateValue(name, value);
  } };
  let cleanup = null, unmounted = false;
  canvasModule.then((module) => { if (!unmounted) cleanup = module.default(mount); });
  return () => { unmounted = true; if (cleanup) cleanup(); };
}
"""


@functools.cache
def _canvas_assets() -> tuple[str, str]:
    """The canvas module's served address (relative to the page) and the package's stylesheet."""
    import streamlit_drawable_canvas

    build = Path(streamlit_drawable_canvas.__file__).parent / "frontend" / "build"
    (module,) = build.glob("index-*.js")
    return (f"_stcore/bidi-components/streamlit-drawable-canvas.streamlit_drawable_canvas/{module.name}",
            (build / "index-style.css").read_text())


@functools.lru_cache(maxsize=8)
def _data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def box_canvas(*, background_jpeg: bytes, width: int, height: int, label: str, stroke_color: str,
               initial_drawing: dict, key: str, stroke_width: int = 3, font_size: int = 14,
               max_display_height: int | None = None) -> dict | None:
    """A streamlit-drawable-canvas ``labeled_rect`` canvas over ``background_jpeg``, as ``st_canvas``
    draws it (same frontend and drawing JSON), without the rerun its background report causes (above).
    Returns the drawing (Fabric JSON, ``st_canvas(...).json_data``)."""
    import streamlit_drawable_canvas  # noqa: F401  (registers the package's component, which serves the module)

    module_url, css = _canvas_assets()
    canvas = st.components.v2.component("facetype_box_canvas", html='<div class="canvas-root"></div>', css=css,
                                        js=_CANVAS_JS % module_url, isolate_styles=True)
    drawing = {**initial_drawing, "background": ""}
    data = {
        "fillColor": "rgba(0, 0, 0, 0)", "strokeWidth": stroke_width, "strokeColor": stroke_color,
        "backgroundColor": "", "backgroundImageURL": _data_url(background_jpeg), "realtimeUpdateStreamlit": True,
        "canvasWidth": width, "canvasHeight": height, "drawingMode": "labeled_rect", "initialDrawing": drawing,
        "displayRadius": 3, "returnImageData": False, "disabled": False, "backgroundImageFit": "stretch",
        "maxDisplayHeight": max_display_height, "fontSize": font_size, "label": label,
    }
    result = canvas(data=data, key=key, default={"drawing": {"raw": drawing, "data": None}},
                    on_drawing_change=lambda: None, width="content", height="content")
    return (result.get("drawing") or {}).get("raw", drawing)


def annotator_name() -> str:
    """The signed-in account's name, for showing (app/main.py refreshes it from the session cookie on every
    run); without a sign-in the page says so and stops. Saves ask ``pages.team_account`` who acts, not this."""
    name = (st.session_state.get("annotator") or "").strip()
    if name:
        return name
    st.info("Sign in to use the team pages: every save is recorded under your account.")
    st.stop()


def queue_counts() -> None:
    """One line: photos per review status, and the region colours of the boxes."""
    try:
        with session_scope() as s:
            counts = queue.status_counts(s)
    except sa.exc.SQLAlchemyError as exc:
        st.error(f"The database is unavailable: {str(exc).splitlines()[0]}")
        st.stop()
    colours = ", ".join(f'<span style="color:{REGION_COLORS[r]}">■ {r}</span>' for r in REGIONS)
    st.markdown(f"<small>{' · '.join(f'{n} {status}' for status, n in counts.items())} — boxes: {colours}</small>",
                unsafe_allow_html=True)


@functools.lru_cache(maxsize=32)  # not st.cache_data: prefetch_canvas_background fills it from a thread
def canvas_background(object_key: str, width: int, height: int) -> bytes:
    return previews.canvas_background(object_key, width, height)


def prefetch_canvas_background(object_key: str, width: int, height: int) -> None:
    """Decode and scale the photo the annotator will most likely open next, off the page's run, so
    Accept -> next photo does not wait for it."""
    def warm() -> None:
        try:
            canvas_background(object_key, width, height)
        except Exception:  # the page reports an unreadable photo when it opens it
            pass

    threading.Thread(target=warm, name="labeling-prefetch", daemon=True).start()


@st.cache_data(max_entries=64, show_spinner=False)
def boxes_preview(object_key: str, boxes: dict, max_side: int = 640) -> bytes:
    return previews.boxes_preview(object_key, boxes, max_side)
