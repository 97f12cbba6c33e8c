"""A run of a few milliseconds for the queue tests (``python -m models.worker --train-module
tests.quick_job``): it finishes the claimed run the way a training process does, without torch,
so that many runs can go through real worker processes quickly. Real training runs through the
workers in the other tests of tests/test_jobs.py."""

from __future__ import annotations

import argparse
import os

from models import registry


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-id", type=int, required=True)
    run_id = parser.parse_args().run_id
    row = registry.get_run(run_id)
    assert row is not None and row.status == "running", f"run {run_id} was not claimed"
    registry.update_run(run_id, progress=0.5, message=f"quick job in process {os.getpid()}")
    registry.finish_run(run_id, b"not a model", {"pid": os.getpid(), "niceness": os.nice(0),
                                                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}, history=[{"epoch": 1}])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
