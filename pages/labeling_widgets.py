"""Widgets shared by the Labeling pages (Review, Import photos, Quality, Export / import, Retrain):
the annotator's name, the queue counts, the keyboard shortcuts and the cached photo pictures.
Imported by those page scripts; not a page itself."""

from __future__ import annotations

import functools
import threading

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
