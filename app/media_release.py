"""Visitors' photos and previews leave Streamlit's ``/media`` URLs when the visit ends.

Streamlit serves every ``st.image`` and ``st.download_button`` file from memory at an
unauthenticated ``/media/<hash>`` URL, and frees a file once no session's last script run shows it.
But a closed tab's session is only put aside (disconnected) and later dropped without that clean-up,
so its files stayed served for as long as the server ran. ``app.web`` runs
:func:`release_visitor_media` beside the app, which every ``SWEEP_INTERVAL_S``:

- releases the files of sessions whose browser is gone: the images at once, download files one
  sweep later (Streamlit's own rule for downloads);
- drops every image (not download) that no script run has shown for ``media_max_age_s``, whatever
  the session: the browser fetched it when it was shown, and a rerun that still shows it adds it
  again;
- drops from memory the photos that a gone session uploaded, once it has been gone that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from streamlit.runtime import Runtime
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.runtime.media_file_storage import MediaFileKind, MediaFileStorage
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager

from app.core.settings import get_settings

SWEEP_INTERVAL_S = 2.0
log = logging.getLogger(__name__)


class ShownAtStorage(MediaFileStorage):
    """A media storage seen through the manager: notes when a script run last added each file.
    (The ``/media`` route keeps reading the wrapped storage itself.)"""

    def __init__(self, storage: MediaFileStorage, clock: Callable[[], float]):
        self.storage = storage
        self.shown_at: dict[str, float] = {}
        self._clock = clock

    def load_and_get_id(self, path_or_data, mimetype, kind, filename=None) -> str:
        file_id = self.storage.load_and_get_id(path_or_data, mimetype, kind, filename)
        self.shown_at[file_id] = self._clock()
        return file_id

    def get_url(self, file_id: str) -> str:
        return self.storage.get_url(file_id)

    def delete_file(self, file_id: str) -> None:
        self.storage.delete_file(file_id)
        self.shown_at.pop(file_id, None)

    def shown_before(self, moment: float) -> set[str]:
        return {file_id for file_id, shown_at in self.shown_at.items() if shown_at < moment}


class ReleasingMediaFileManager(MediaFileManager):
    """Streamlit's media file manager that also lets go of ended sessions and old images."""

    _storage: ShownAtStorage

    def __init__(self, storage: MediaFileStorage, max_age_s: float, clock: Callable[[], float] = time.monotonic):
        super().__init__(ShownAtStorage(storage, clock))
        self.max_age_s = max_age_s
        self._clock = clock

    def release(self, is_active_session: Callable[[str], bool]) -> None:
        """Forget the files of sessions that are not active and the images not shown for
        ``max_age_s``, then drop what no session shows any more."""
        with self._lock:
            for session_id in [s for s in self._files_by_session_and_coord if not is_active_session(s)]:
                del self._files_by_session_and_coord[session_id]
            old_images = {file_id for file_id in self._storage.shown_before(self._clock() - self.max_age_s)
                          if file_id in self._file_metadata and self._file_metadata[file_id].kind == MediaFileKind.MEDIA}
            for files_by_coordinates in self._files_by_session_and_coord.values():
                for coordinates in [c for c, file_id in files_by_coordinates.items() if file_id in old_images]:
                    del files_by_coordinates[coordinates]
        self.remove_orphaned_files()


class UploadRelease:
    """Drops the uploaded files of sessions that have not been active for ``max_age_s``."""

    def __init__(self, uploads: MemoryUploadedFileManager, max_age_s: float,
                 clock: Callable[[], float] = time.monotonic):
        self._uploads = uploads
        self._max_age_s = max_age_s
        self._clock = clock
        self._inactive_since: dict[str, float] = {}

    def release(self, is_active_session: Callable[[str], bool]) -> None:
        now = self._clock()
        still_waiting = {}
        for session_id in list(self._uploads.file_storage):
            if is_active_session(session_id):
                continue
            since = self._inactive_since.get(session_id, now)
            if now - since > self._max_age_s:
                self._uploads.remove_session_files(session_id)
            else:
                still_waiting[session_id] = since
        self._inactive_since = still_waiting


@contextlib.asynccontextmanager
async def release_visitor_media(_app):
    """``st.App`` lifespan: install the releasing media manager (before any session starts; it keeps
    Streamlit's storage, which the ``/media`` route serves from) and sweep until the server stops."""
    runtime = Runtime.instance()
    max_age_s = get_settings().media_max_age_s
    manager = ReleasingMediaFileManager(runtime.media_file_mgr._storage, max_age_s)
    runtime._media_file_mgr = manager
    uploads = UploadRelease(runtime.uploaded_file_mgr, max_age_s)

    async def sweep_forever() -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                manager.release(runtime.is_active_session)
                uploads.release(runtime.is_active_session)
            except Exception:  # one failed sweep must not end the sweeping: the next one tries again
                log.exception("releasing visitors' media failed")

    task = asyncio.create_task(sweep_forever())
    try:
        yield None
    finally:
        task.cancel()
