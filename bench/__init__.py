"""Benchmarks (``make bench``), run by hand; each prints a table with what ran beside it."""

import models  # noqa: F401  (sets OMP_WAIT_POLICY before a benchmark first imports torch: see models/__init__)
