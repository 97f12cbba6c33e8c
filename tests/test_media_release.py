"""Visitors' media leave Streamlit's /media URLs when the visit ends or after media_max_age_s
(app.media_release), on Streamlit's own media manager, storage and upload manager. The Chromium
side (Try again, a closed page) is in tests/test_try_it_browser.py."""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest
from streamlit.runtime import media_file_manager
from streamlit.runtime.media_file_storage import MediaFileStorageError
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.uploaded_file_manager import UploadedFileRec

from app.core.settings import Settings
from app.media_release import ReleasingMediaFileManager, UploadRelease

MAX_AGE_S = 300.0


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def storage():
    return MemoryMediaFileStorage("/media")


@pytest.fixture
def manager(storage, clock):
    return ReleasingMediaFileManager(storage, MAX_AGE_S, clock)


def show(manager, monkeypatch, session_id: str, data: bytes, coordinates: str = "1.1",
         download: bool = False) -> str:
    """What a script run of ``session_id`` does for st.image (or st.download_button); the file's
    name as the /media route gets it."""
    monkeypatch.setattr(media_file_manager, "_get_session_id", lambda: session_id)
    url = manager.add(data, "image/png", coordinates, is_for_static_download=download)
    return url.rsplit("/", 1)[-1]


def served(storage, name: str) -> bool:
    """The /media route answers the file (it reads Streamlit's storage, as here)."""
    try:
        storage.get_file(name)
    except MediaFileStorageError:
        return False
    return True


def test_the_images_of_an_ended_session_are_gone_and_an_active_one_keeps_its_own(manager, storage, monkeypatch):
    visitor_photo = show(manager, monkeypatch, "gone", b"visitor photo")
    shared = show(manager, monkeypatch, "gone", b"reference face", "1.2")
    assert show(manager, monkeypatch, "active", b"reference face", "1.2") == shared
    other_photo = show(manager, monkeypatch, "active", b"another visitor's photo", "1.1")

    manager.release(lambda session_id: session_id == "active")

    assert not served(storage, visitor_photo)
    assert served(storage, shared)  # still shown to the active session
    assert served(storage, other_photo)


def test_downloads_of_an_ended_session_go_one_sweep_later(manager, storage, monkeypatch):
    card = show(manager, monkeypatch, "gone", b"result card", download=True)
    manager.release(lambda session_id: False)
    assert served(storage, card)  # Streamlit marks a download first, so a click in flight still gets it
    manager.release(lambda session_id: False)
    assert not served(storage, card)


def test_an_image_not_shown_for_the_max_age_goes_even_in_an_active_session(manager, storage, clock, monkeypatch):
    photo = show(manager, monkeypatch, "active", b"visitor photo")
    card = show(manager, monkeypatch, "active", b"result card", "1.3", download=True)
    clock.now += MAX_AGE_S - 1
    manager.release(lambda session_id: True)
    assert served(storage, photo)
    clock.now += 2
    manager.release(lambda session_id: True)
    manager.release(lambda session_id: True)
    assert not served(storage, photo)
    assert served(storage, card)  # a download button on an open page keeps working


def test_a_rerun_that_still_shows_an_image_keeps_it_and_brings_it_back(manager, storage, clock, monkeypatch):
    photo = show(manager, monkeypatch, "active", b"visitor photo")
    clock.now += MAX_AGE_S - 1
    assert show(manager, monkeypatch, "active", b"visitor photo") == photo  # the page reran, still showing it
    clock.now += 2
    manager.release(lambda session_id: True)
    assert served(storage, photo)  # shown 2 s ago, not MAX_AGE_S
    clock.now += MAX_AGE_S
    manager.release(lambda session_id: True)
    assert not served(storage, photo)
    show(manager, monkeypatch, "active", b"visitor photo")
    assert served(storage, photo)


def test_uploads_of_a_gone_session_are_dropped_after_the_max_age(clock):
    uploads = MemoryUploadedFileManager("/_stcore/upload_file")
    for session_id in ("gone", "active"):
        uploads.add_file(session_id, UploadedFileRec("f1", "photo.jpg", "image/jpeg", b"raw photo"))
    release = UploadRelease(uploads, MAX_AGE_S, clock)

    def is_active(session_id):
        return session_id == "active"

    release.release(is_active)
    clock.now += MAX_AGE_S - 1
    release.release(is_active)
    assert uploads.get_files("gone", ["f1"])  # a reconnect within the max age finds its photo
    clock.now += 2
    release.release(is_active)
    assert uploads.get_files("gone", ["f1"]) == []
    assert uploads.get_files("active", ["f1"])


def test_the_max_age_is_a_setting(app_env, monkeypatch):
    from app.core import settings

    assert Settings().media_max_age_s == 300.0
    monkeypatch.setenv("FACETYPE_MEDIA_MAX_AGE_S", "45")
    settings.get_settings.cache_clear()
    assert settings.get_settings().media_max_age_s == 45.0


def test_the_app_sweeps_and_installs_the_releasing_manager(monkeypatch):
    """The lifespan app.web gives st.App puts the releasing manager over Streamlit's own storage."""
    from app import media_release

    class FakeRuntime:
        def __init__(self):
            self.storage = MemoryMediaFileStorage("/media")
            self._media_file_mgr = media_file_manager.MediaFileManager(self.storage)
            self.uploaded_file_mgr = MemoryUploadedFileManager("/_stcore/upload_file")

        @property
        def media_file_mgr(self):
            return self._media_file_mgr

        def is_active_session(self, session_id):
            return False

    runtime = FakeRuntime()
    monkeypatch.setattr(media_release.Runtime, "instance", classmethod(lambda cls: runtime))
    monkeypatch.setattr(media_release, "SWEEP_INTERVAL_S", 0.01)

    async def visit_and_leave():
        async with media_release.release_visitor_media(None):
            name = show(runtime.media_file_mgr, monkeypatch, "gone", b"visitor photo")
            assert served(runtime.storage, name)
            for _ in range(500):
                await asyncio.sleep(0.01)
                if not served(runtime.storage, name):
                    return True
        return False

    assert isinstance(runtime.media_file_mgr, media_file_manager.MediaFileManager)
    # in a thread of its own: Playwright's sync API may already run an event loop in this one
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        assert thread.submit(asyncio.run, visit_and_leave()).result()
    assert isinstance(runtime.media_file_mgr, ReleasingMediaFileManager)
