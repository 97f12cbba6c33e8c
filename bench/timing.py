"""What the benchmarks share for timing: a warmed-up timing loop and the load average beside it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable


def time_ms(once: Callable[[], object], runs: int, warmup: int = 5) -> list[float]:
    """Milliseconds of each of ``runs`` calls of ``once``, after ``warmup`` calls not timed."""
    for _ in range(warmup):
        once()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        once()
        times.append((time.perf_counter() - start) * 1000)
    return times


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``/proc/loadavg`` gives them."""
    return " ".join(f"{load:.2f}" for load in os.getloadavg())
