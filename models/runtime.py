"""Process-wide runtime choices for the type models: which torch device to use.

The device is chosen once per setting value and cached, so every model in the process agrees.
``auto`` picks CUDA when a GPU is visible, else the CPU. Models themselves are cached by
:mod:`models.serving` (loaded once per process, reloaded only when the promoted model changes).
"""

from __future__ import annotations

import functools
import os

import torch

from app.core.settings import get_settings


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
