"""Widgets shared by the Labeling pages (Review, Import photos, Quality, Export / import, Retrain):
the annotator's name, the queue counts, the keyboard shortcuts and the cached photo pictures.
Imported by those page scripts; not a page itself."""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
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
    "Delete": "delete the selected box (a press on a box's edge or label selects it)",
    "Space + drag": "pan the zoomed photo (or drag with the middle mouse button)",
    "E": "canvas Edit mode on/off (there a click on the selected box renames its label)",
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


# streamlit-drawable-canvas 0.13.0's own module (MIT licence, github.com/andfanilo/streamlit-drawable-canvas),
# fetched from where Streamlit serves that package's assets, changed by CANVAS_MODULE_PATCHES in the browser
# and imported from a blob: address, once per page. It is mounted with one more change: the report of the
# background's size ("backgroundFit") stays in the browser. Every new canvas (each photo has its own) sends
# that report once its background has loaded, and a component's report reruns the page: a second run after
# every Accept for a value this page never reads. Pan (Space + drag, or a middle-button drag) scrolls the
# canvas's own scroll box, so the boxes' coordinates (Fabric scene = canvas pixels) do not change with it.
_CANVAS_JS = """
const MODULE_URL = new URL(__MODULE_URL__, document.baseURI).href;
const PATCHES = __PATCHES__;
const loadCanvasModule = () => fetch(MODULE_URL).then((response) => response.text()).then((source) => {
  for (const [find, replace] of PATCHES) {
    const parts = source.split(find);
    if (parts.length !== 2) throw new Error(`the canvas module does not match its patch: ${find.slice(0, 80)}`);
    source = parts[0] + replace + parts[1];
  }
  return import(URL.createObjectURL(new Blob([source], { type: 'text/javascript' })));
}).catch((error) => {
  console.error('facetype: canvas without its patches (Edit mode still works):', error);
  return import(MODULE_URL);
});
window.__facetypeCanvasModules = window.__facetypeCanvasModules || {};
const canvasModule = window.__facetypeCanvasModules[MODULE_URL] =
  window.__facetypeCanvasModules[MODULE_URL] || loadCanvasModule();

const TEXT_FIELDS = 'textarea, select, [contenteditable], input:not([type=radio]):not([type=checkbox]):not([type=button])';
const panWith = (root) => {
  let space = false, over = false, drag = null;
  const scroller = () => root.querySelector('.dc-scroll');
  const canPan = (el) => el.scrollWidth > el.clientWidth || el.scrollHeight > el.clientHeight;
  const showCursor = () => {
    const el = scroller();
    if (el) el.dataset.pan = drag ? 'dragging' : space && over && canPan(el) ? 'ready' : '';
  };
  const onPointerDown = (event) => {
    const el = scroller();
    if (!el || !el.contains(event.target) || !(event.button === 1 || (space && event.button === 0)) || !canPan(el)) return;
    event.preventDefault(); event.stopPropagation();  // the canvas neither draws nor selects
    drag = { el, x: event.clientX, y: event.clientY, left: el.scrollLeft, top: el.scrollTop };
    showCursor();
  };
  const onMouseDown = (event) => { if (drag) { event.preventDefault(); event.stopPropagation(); } };
  const onPointerMove = (event) => {
    const el = scroller(), now = !!el && event.composedPath().includes(el);
    if (now !== over) { over = now; showCursor(); }
    if (!drag) return;
    event.preventDefault();
    drag.el.scrollLeft = drag.left - (event.clientX - drag.x);
    drag.el.scrollTop = drag.top - (event.clientY - drag.y);
  };
  const onPointerUp = () => { if (drag) { drag = null; showCursor(); } };
  const onKey = (event) => {
    if (event.key !== ' ' || (event.target && event.target.matches && event.target.matches(TEXT_FIELDS))) return;
    space = event.type === 'keydown';
    if (over) { event.preventDefault(); event.stopPropagation(); }  // not the page's scroll, nor a focused button's press
    showCursor();
  };
  root.addEventListener('pointerdown', onPointerDown, true);
  root.addEventListener('mousedown', onMouseDown, true);
  window.addEventListener('pointermove', onPointerMove, true);
  window.addEventListener('pointerup', onPointerUp, true);
  window.addEventListener('keydown', onKey, true);
  window.addEventListener('keyup', onKey, true);
  return () => {
    root.removeEventListener('pointerdown', onPointerDown, true);
    root.removeEventListener('mousedown', onMouseDown, true);
    window.removeEventListener('pointermove', onPointerMove, true);
    window.removeEventListener('pointerup', onPointerUp, true);
    window.removeEventListener('keydown', onKey, true);
    window.removeEventListener('keyup', onKey, true);
  };
};

// Zooms the canvas's box (photo and boxes) so that the canvas is at most widthZoom times the width of the
// page's column: a phone shows the whole photo. Fabric reads a press through the canvas's shown size, so
// the boxes stay in canvas pixels (the drawing the page gets back does not change with the zoom).
const fitWith = (root) => {
  const host = root.host || root.getRootNode().host || root;
  const column = host.closest('[data-testid="stVerticalBlock"]') || host.parentElement;
  const fit = () => {
    const box = root.querySelector('.dc-container'), wanted = root.__facetypeFit;
    if (!box || !wanted || !column) return;
    const scale = Math.min(1, column.clientWidth * wanted.widthZoom / wanted.width);
    const zoom = scale < 1 ? String(scale) : '';
    if (box.style.zoom === zoom) return;
    box.style.zoom = zoom;
    // Fabric redraws on a window resize (a CANVAS_MODULE_PATCHES entry), and the chips' size follows the
    // zoom: the browser's own resize event comes before this observer has set it (a phone turned)
    window.dispatchEvent(new Event('resize'));
  };
  const observer = new ResizeObserver(fit);
  observer.observe(column);
  return { fit, stop: () => observer.disconnect() };
};

export default function (component) {
  const mount = { ...component, setStateValue: (name, value) => {
    if (name !== 'backgroundFit') component.setStateValue(name, value);
  } };
  const root = component.parentElement;  // called again with each new value: one pan and fit per canvas
  root.__facetypeStopPan = root.__facetypeStopPan || panWith(root);
  root.__facetypeFit = { width: component.data.canvasWidth, widthZoom: component.data.widthZoom || 1 };
  root.__facetypeFitter = root.__facetypeFitter || fitWith(root);
  let cleanup = null, unmounted = false;
  canvasModule.then((module) => {
    if (unmounted) return;
    cleanup = module.default(mount);
    root.__facetypeFitter.fit();
  });
  return () => {
    unmounted = true;
    if (root.__facetypeStopPan) root.__facetypeStopPan();
    if (root.__facetypeFitter) root.__facetypeFitter.stop();
    root.__facetypeStopPan = root.__facetypeFitter = null;
    if (cleanup) cleanup();
  };
}
"""
_PAN_CSS = (".dc-scroll[data-pan=ready] canvas {cursor: grab !important}"
            ".dc-scroll[data-pan=dragging] canvas {cursor: grabbing !important}")
# The package floats its toolbar (Undo, Redo, Edit, Delete selected...) 2.65rem above the canvas on hover,
# over whatever the page has there: the zoom buttons, or the label picker. It gets a strip of its own above
# the canvas instead, always shown, right-aligned with the canvas as before. The strip takes the place of
# the page's gap above the canvas (the negative margin) and the toolbar is made a little slimmer, so the
# canvas moves down by only a few pixels and still fits a 1440 x 900 window with Accept (the toolbar sits on
# the canvas's top edge, like a tab).
_TOOLBAR_CSS = (".dc-root {padding-top: 1.5rem; margin-top: -0.75rem}"
                ".dc-root .dc-toolbar {top: 0 !important; opacity: 1 !important; padding: 0 !important;"
                " transition: none !important}"
                ".dc-toolbar-card {padding: 0.1rem} .dc-icon-button {padding: 0.2rem}")


#: (find, replace) pairs for streamlit-drawable-canvas 0.13.0's module (frontend/build/index-*.js); each find
#: occurs exactly once there (tests/test_canvas.py checks the installed one). They make its ``labeled_rect``
#: tool work as in Label Studio / CVAT, without the Edit mode: a press on a box's edge or label chip selects
#: it and a drag moves it (its handles resize it); a drag anywhere else, inside a box too (the T-zone and jaw
#: lie inside the face), draws a new box; a click that draws nothing leaves no box; the toolbar shows
#: Delete selected while a box is selected. ``Rc`` is the tool's class in that build and ``lr`` its box class.
CANVAS_MODULE_PATCHES: tuple[tuple[str, str], ...] = (
    # Boxes stay pickable while this tool is on, by their drawn pixels (edge, label chip), 6 px either side:
    # the selection area is padded by 6 px (outside the edge) and ink is looked for 6 px around the pointer.
    ("this.canvas.forEachObject((h) => h.selectable = h.evented = !1), this.strokeWidth = e, this.strokeColor = t, "
     "this.fillColor = r, this.label = i, this.fontSize = s, this.minLength = e;\n"
     "    const o = (h) => this.onMouseDown(h), n = (h) => this.onMouseMove(h), a = () => this.onMouseUp(), "
     "l = () => this.onMouseOut();",
     "this.canvas.forEachObject((h) => this.pickable(h)), this.canvas.setTargetFindTolerance(6), "
     'this.canvas.defaultCursor = "crosshair", this.strokeWidth = e, this.strokeColor = t, '
     "this.fillColor = r, this.label = i, this.fontSize = s, this.minLength = e;\n"
     "    const o = (h) => this.onMouseDown(h), n = (h) => this.onMouseMove(h), a = () => this.onMouseUp(), "
     "l = (h) => this.onMouseOut(h);"),
    # A press on a box (Fabric found a target) is Fabric's: select, move, resize. No new box.
    ("  onMouseDown(e) {\n    const t = this.canvas, r = e.e.button;\n    this.isMouseDown = !0;\n"
     "    const i = t.getScenePoint(e.e);\n    this.currentStartX = i.x, this.currentStartY = i.y, "
     "this.currentRect = new lr({",
     "  onMouseDown(e) {\n    if (e.target) return;\n    const t = this.canvas, r = e.e.button;\n    this.isMouseDown = !0;\n"
     "    const i = t.getScenePoint(e.e);\n    this.currentStartX = i.x, this.currentStartY = i.y, "
     "this.currentRect = new lr({"),
    # A drawn box is pickable at once; a click that was not a drag removes its stub. Hovering from one box
    # to another also fires "mouse:out" (on a pointer move): only leaving the canvas ends a drawing.
    ("  onMouseUp() {\n    this.isMouseDown = !1;\n  }\n  onMouseOut() {\n    this.isMouseDown = !1;\n  }\n}, gi = {",
     "  onMouseUp() {\n    this.isMouseDown && this.currentRect.width <= this.minLength && "
     "this.canvas.remove(this.currentRect), this.isMouseDown = !1, this.pickable(this.currentRect);\n  }\n"
     '  onMouseOut(e) {\n    e.e.type.endsWith("move") || this.onMouseUp();\n  }\n'
     "  pickable(h) {\n    h.selectable = h.evented = h.perPixelTargetFind = !0, h.padding = 6;\n  }\n}, gi = {"),
    # In Edit mode (the jc tool) a press anywhere on a box picks it again, as before: nothing draws there.
    ("s.isDrawingMode = !1, s.selection = !0, s.forEachObject((y) => y.selectable = y.evented = !0)",
     "s.isDrawingMode = !1, s.selection = !0, s.forEachObject((y) => (y.selectable = y.evented = !0, "
     "y.perPixelTargetFind = !1))"),
    # Bring forward / Send backward / Delete selected show while a box is selected, not only in Edit mode.
    ('e.contextualGroup.style.display = i ? "flex" : "none"',
     'e.contextualGroup.style.display = i || s ? "flex" : "none"'),
    # A finger draws too: a touch event has no button (the package drew only for button 0, the mouse's left).
    ('      label: this.label,\n      fontSize: this.fontSize,\n      transparentCorners: !1,\n      selectable: !1,\n'
     '      evented: !1,\n      strokeUniform: !0,\n      noScaleCache: !1,\n      angle: 0\n'
     '    }), r === 0 && t.add(this.currentRect);',
     '      label: this.label,\n      fontSize: this.fontSize,\n      transparentCorners: !1,\n      selectable: !1,\n'
     '      evented: !1,\n      strokeUniform: !0,\n      noScaleCache: !1,\n      angle: 0\n'
     '    }), (r === 0 || r === void 0) && t.add(this.currentRect);'),
    # A box's label chip keeps its font size on screen when the canvas is shown smaller (a phone: the zoom
    # that _CANVAS_JS's fit puts on .dc-container); the drawing's fontSize does not change.
    ("  e.font = `${t.fontSize}px ${wc}`;\n  const c = e.measureText(t.label).width, u = ia(t.fontSize, na),",
     "  const shown = Number(t.canvas && t.canvas.upperCanvasEl.closest('.dc-container')?.style.zoom) || 1, "
     "f = t.fontSize / Math.min(1, shown);\n"
     "  e.font = `${f}px ${wc}`;\n  const c = e.measureText(t.label).width, u = ia(f, na),"),
    # ... and is drawn again at once when that zoom changes (fit sends a window resize after it).
    ("  _onResize() {\n    this.calcOffset(), this._resetTransformEventData();\n  }",
     "  _onResize() {\n    this.calcOffset(), this._resetTransformEventData(), this.requestRenderAll();\n  }"),
)


def canvas_module_path() -> Path:
    """streamlit-drawable-canvas's frontend module, as installed."""
    package = importlib.util.find_spec("streamlit_drawable_canvas")  # not imported: see box_canvas
    (module,) = (Path(package.submodule_search_locations[0]) / "frontend" / "build").glob("index-*.js")
    return module


@functools.cache
def _canvas_assets() -> tuple[str, str]:
    """The canvas component's script (the package's module, served by Streamlit, patched in the browser)
    and its stylesheet (the package's, plus the pan cursor and the toolbar's own strip)."""
    module = canvas_module_path()
    url = f"_stcore/bidi-components/streamlit-drawable-canvas.streamlit_drawable_canvas/{module.name}"
    js = _CANVAS_JS.replace("__MODULE_URL__", json.dumps(url)).replace(
        "__PATCHES__", json.dumps(CANVAS_MODULE_PATCHES))
    return js, (module.parent / "index-style.css").read_text() + _PAN_CSS + _TOOLBAR_CSS


@functools.lru_cache(maxsize=8)
def _data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def box_canvas(*, background_jpeg: bytes, width: int, height: int, label: str, stroke_color: str,
               initial_drawing: dict, key: str, stroke_width: int = 3, font_size: int = 14,
               max_display_height: int | None = None, width_zoom: float = 1.0) -> dict | None:
    """A streamlit-drawable-canvas ``labeled_rect`` canvas over ``background_jpeg``, as ``st_canvas``
    draws it (same frontend and drawing JSON), without the rerun its background report causes (above).
    In a column narrower than ``width`` / ``width_zoom`` (a phone) it is shown smaller, at ``width_zoom``
    times the column's width; the drawing keeps its ``width`` x ``height`` canvas pixels.
    Returns the drawing (Fabric JSON, ``st_canvas(...).json_data``)."""
    import streamlit_drawable_canvas  # noqa: F401  (registers the package's component, which serves the module)

    js, css = _canvas_assets()
    canvas = st.components.v2.component("facetype_box_canvas", html='<div class="canvas-root"></div>', css=css,
                                        js=js, isolate_styles=True)
    drawing = {**initial_drawing, "background": ""}
    data = {
        "fillColor": "rgba(0, 0, 0, 0)", "strokeWidth": stroke_width, "strokeColor": stroke_color,
        "backgroundColor": "", "backgroundImageURL": _data_url(background_jpeg), "realtimeUpdateStreamlit": True,
        "canvasWidth": width, "canvasHeight": height, "drawingMode": "labeled_rect", "initialDrawing": drawing,
        "displayRadius": 3, "returnImageData": False, "disabled": False, "backgroundImageFit": "stretch",
        "maxDisplayHeight": max_display_height, "fontSize": font_size, "label": label, "widthZoom": width_zoom,
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
