"""Process-wide runtime choices for the type models: which torch device to use, and how a serving
process uses its threads and memory.

The device is chosen once per setting value and cached, so every model in the process agrees.
``auto`` picks CUDA when a GPU is visible, else the CPU. Models themselves are cached by
:mod:`models.serving` (loaded once per process, reloaded only when the promoted model changes).

:func:`configure_serving_process` is called once at the start of every serving process (the
app, each API worker, the CLI): torch gets ``settings.inference_threads`` intra-op threads and one
inter-op thread, OpenCV one thread, so requests running side by side do not oversubscribe the
cores; and glibc returns large freed buffers (decoded photos) to the system at once, so memory
comes back after a burst instead of staying in malloc's arenas.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import threading

import cv2
import torch

from app.core.settings import get_settings

log = logging.getLogger(__name__)

#: glibc ``mallopt`` parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Allocations from this size on get their own mapping, unmapped when freed. Setting it also turns
#: off glibc's dynamic threshold, which after the first freed photo buffer would serve the next
#: ones (up to 32 MB each) from arenas that keep the memory.
MMAP_THRESHOLD_BYTES = 1 << 20


@functools.cache
def _device_for(setting: str) -> torch.device:
    setting = (setting or "auto").strip().lower()
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {setting!r} was asked for (FACETYPE_DEVICE / --device) but no CUDA GPU "
                "is visible; use 'auto' or 'cpu'"
            )
        return torch.device(setting)
    if setting == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device setting {setting!r}: use auto, cpu, cuda or cuda:N")


def pick_device(setting: str | None = None) -> torch.device:
    """The torch device for ``setting`` (``auto``/``cpu``/``cuda[:N]``; default: the settings').

    Under torchrun (``LOCAL_RANK`` set) with CUDA, ``auto`` means this process's own GPU.
    """
    setting = setting or get_settings().device
    local_rank = os.environ.get("LOCAL_RANK")
    if setting == "auto" and local_rank is not None and torch.cuda.is_available():
        setting = f"cuda:{int(local_rank)}"
    return _device_for(setting)


_configured_lock = threading.Lock()
_configured_threads: int | None = None


def configure_serving_process(threads: int | None = None) -> int:
    """Set this process up for serving (see the module doc); returns the torch thread count.

    Idempotent; ``threads`` (default ``settings.inference_threads``) replaces an earlier choice."""
    global _configured_threads
    threads = max(1, int(threads or get_settings().inference_threads))
    with _configured_lock:
        if _configured_threads == threads:
            return threads
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # only settable before the first inter-op parallel work; keep what is
            pass
        cv2.setNumThreads(1)
        if _configured_threads is None:
            _return_large_buffers_to_the_system()
        _configured_threads = threads
    return threads


def _return_large_buffers_to_the_system() -> None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): their allocators decide
        mallopt = None
    if mallopt is None:
        log.info("mallopt unavailable; large buffers are returned as the C library decides")
        return
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    mallopt(_M_TRIM_THRESHOLD, 4 * MMAP_THRESHOLD_BYTES)
