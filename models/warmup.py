"""Warm-loading beside the first pages: :func:`start` runs :func:`models.serving.warm_load` (the
imports of torch, MediaPipe and OpenCV, the face gate and the served model: seconds on a small
machine) on a background thread, so the app's first page is drawn at once; :func:`wait` is what
the first analysis calls, to wait for it rather than load a second copy or fail.

Torch-free on purpose: the pages import this module, and must not wait for torch to draw.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

log = logging.getLogger(__name__)

_lock = threading.Lock()
#: How long after the first page's script run the loading begins: its messages are still being sent
#: then, and importing torch holds the GIL for seconds at a time (its C extension's initialisation),
#: which held them back (the first page's form came 2-3 s after its script had run, on 2 busy cores).
PAGE_SENT_S = 1.0
_thread: threading.Thread | None = None


def start(url: str | None = None, store=None, after: threading.Event | None = None) -> threading.Thread:
    """Start warm-loading on a daemon thread, once per process; later calls return that thread.
    With ``after``, the loading begins :data:`PAGE_SENT_S` after that event is set (the app: when
    its first page's script has run, so that the page does not share the CPU with torch's import);
    it counts as under way from now on."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_warm_load, args=(url, store, after), name="facetype-warm-load",
                                       daemon=True)
            _thread.start()
        return _thread


def _warm_load(url, store, after: threading.Event | None) -> None:
    if after is not None:
        after.wait()
        time.sleep(PAGE_SENT_S)
    try:
        from models.serving import warm_load

        warm_load(url=url, store=store)
    except Exception:  # the request that needs the models loads them itself and says what failed
        log.exception("warm-loading the models failed")
    freeze_loaded_objects()


def freeze_loaded_objects() -> None:
    """Move every object alive now out of the garbage collector's sight (:func:`gc.freeze`).

    Streamlit runs ``gc.collect(2)`` after every script run, holding the GIL while the page's last
    messages wait to be sent: with torch, MediaPipe and the models loaded that walks ~500k objects,
    0.2-0.6 s per rerun on a 2-core machine (the Analyze button came that much later after an
    upload). What is loaded once per process lives as long as the process, so the collector need
    not look at it again; garbage made later is collected as before."""
    gc.collect()
    gc.freeze()


def in_progress() -> bool:
    """Whether warm-loading was started and has not finished yet."""
    thread = _thread
    return thread is not None and thread.is_alive()


def wait(timeout_s: float | None = None) -> bool:
    """Wait for a warm-load that is under way (none started: return at once); False on timeout."""
    thread = _thread
    if thread is None or thread is threading.current_thread():
        return True
    thread.join(timeout_s)
    return not thread.is_alive()
