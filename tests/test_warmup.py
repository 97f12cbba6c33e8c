"""models.warmup: the models load on a thread beside the first page, once per process; the first
analysis waits for them; and the first page's imports leave torch, MediaPipe and OpenCV to that thread."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from app.core import db
from app.services import analysis
from models import serving, warmup
from tests.conftest import clear_caches


@pytest.fixture
def fresh_warmup(monkeypatch):
    """A process in which no warm-load was started yet, and a warm_load that waits for ``release``."""
    monkeypatch.setattr(warmup, "_thread", None)
    monkeypatch.setattr(warmup, "PAGE_SENT_S", 0.0)
    calls, release = [], threading.Event()

    def slow_warm_load(url=None, store=None):
        calls.append(url)
        release.wait(30)

    monkeypatch.setattr(serving, "warm_load", slow_warm_load)
    yield calls, release
    release.set()


@pytest.mark.unit
def test_warm_load_runs_once_on_a_thread_and_wait_waits_for_it(fresh_warmup):
    calls, release = fresh_warmup
    assert warmup.wait(0) and not warmup.in_progress()  # nothing started: nothing to wait for
    page_drawn = threading.Event()
    thread = warmup.start(after=page_drawn)
    assert warmup.start() is thread  # once per process
    assert thread is not threading.current_thread() and thread.daemon
    assert not warmup.wait(0.2) and warmup.in_progress() and calls == []  # waits for the page to be drawn
    page_drawn.set()
    assert not warmup.wait(0.2) and warmup.in_progress()  # still loading: the caller waits
    assert calls == [None]
    release.set()
    assert warmup.wait(10) and not warmup.in_progress()


@pytest.mark.unit
def test_the_loading_leaves_the_first_page_time_to_be_sent(fresh_warmup, monkeypatch):
    """Importing torch holds the GIL for seconds: the loading begins a while after the first page's
    script has run, once its messages are on their way to the browser."""
    calls, release = fresh_warmup
    monkeypatch.setattr(warmup, "PAGE_SENT_S", 1.0)
    page_drawn = threading.Event()
    warmup.start(after=page_drawn)
    page_drawn.set()
    assert not warmup.wait(0.3) and calls == []  # not yet
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        time.sleep(0.05)
    assert calls == [None]
    release.set()
    assert warmup.wait(10)


@pytest.mark.unit
def test_a_failed_warm_load_is_done_and_the_request_loads_for_itself(monkeypatch, caplog):
    monkeypatch.setattr(warmup, "_thread", None)

    def broken(url=None, store=None):
        raise RuntimeError("no weights")

    monkeypatch.setattr(serving, "warm_load", broken)
    with caplog.at_level("ERROR", logger="models.warmup"):
        warmup.start()
        assert warmup.wait(10)
    assert not warmup.in_progress()
    assert any("warm-loading the models failed" in r.getMessage() for r in caplog.records)


def test_the_page_check_does_not_load_the_model_before_the_warm_load_is_done(app_env, fresh_warmup, monkeypatch):
    calls, release = fresh_warmup
    clear_caches()
    db.migrate()
    loads = []
    monkeypatch.setattr(serving, "get_served_model", lambda *a, **k: loads.append(1))
    warmup.start()
    # only whether a model is promoted is looked up: none is, and the page says so at once
    assert "no model has been promoted" in analysis.model_status(load=False)
    assert loads == []
    release.set()
    assert warmup.wait(10)
    analysis.model_status(load=False)  # once warm: the model itself is asked for (cached by serving)
    assert loads == [1]


def test_without_a_warm_load_the_page_check_asks_for_the_model(app_env, monkeypatch):
    monkeypatch.setattr(warmup, "_thread", None)  # the page run alone (AppTest): the check is the full one
    loads = []
    monkeypatch.setattr(serving, "get_served_model", lambda *a, **k: loads.append(1))
    assert analysis.model_status(load=False) is None and loads == [1]


@pytest.mark.integration  # a fresh interpreter, so that nothing imported before counts
def test_the_first_page_imports_neither_torch_nor_mediapipe_nor_opencv():
    modules = ["app.web", "app.services.bootstrap", "app.services.analysis", "app.services.cards",
               "app.services.framing", "app.services.gallery", "app.services.submissions", "models.gate",
               "models.warmup", "pages.team_account", "pages.visitor_widgets"]
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "import time; time.sleep(0.5)\n"  # app.web's import-ahead thread has run by now
            "print(sorted(m for m in ('torch', 'mediapipe', 'cv2', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.unit
def test_what_the_warm_load_loaded_is_out_of_the_collectors_sight(monkeypatch):
    """Streamlit's gc.collect(2) after every script run walks every tracked object; the models' are
    frozen once loaded, so it no longer walks them (0.2-0.6 s per rerun on a 2-core machine)."""
    import gc

    monkeypatch.setattr(warmup, "_thread", None)
    loaded = []
    monkeypatch.setattr(serving, "warm_load", lambda url=None, store=None: loaded.append([{"weights": i}
                                                                                     for i in range(1000)]))
    gc.unfreeze()
    try:
        warmup.start()
        assert warmup.wait(10)
        assert gc.get_freeze_count() >= 1000  # the loaded objects among them
        assert not any(obj is loaded[0] for obj in gc.get_objects())  # no longer walked by a collection
    finally:
        gc.unfreeze()


@pytest.mark.unit
@pytest.mark.parametrize("preset, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_models_makes_openmp_threads_sleep_before_torch_loads_unless_told(preset, expected):
    """torch's OpenMP reads OMP_WAIT_POLICY once, when torch loads: importing ``models`` must set it
    first (spinning threads made a training step 15× slower beside other work), and keep a value
    the operator set."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    code = ("import os, sys; import models; assert 'torch' not in sys.modules, 'torch loaded first'; "
            "import models.kinds.head; print(os.environ['OMP_WAIT_POLICY'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected
