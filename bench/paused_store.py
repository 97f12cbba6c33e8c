"""Fault benchmark: a paused object store (``kill -STOP`` on SeaweedFS) and what a visitor waits.

``.venv/bin/python -m bench.paused_store``

Starts a real SeaweedFS S3 server and a throwaway SQLite project holding one type's reference
photos (66, as many as a type has in the sample project; made-up pictures, no faces), then pauses
the SeaweedFS process with SIGSTOP (its sockets stay open and nothing answers: the worst case
for a client) and times, each once, the store-touching calls a visitor waits on:

* Try it's reference photos beside a result (``gallery.reference_images``; the page calls it
  after the analysis, which does not touch the store once the model is loaded);
* keeping a result with consent (``submissions.store_submission``, as ``POST /v1/classify`` with
  ``consent_store`` and the Try it page call it);
* ``GET /healthz`` and ``GET /v1/reference-images/{id}`` (the API's handlers, in process).

The store is resumed (SIGCONT) after each call. A call still running after ``--give-up`` seconds
(default 300) is shown as ``> 300``. Run it on two commits to compare; it prints the commit, the
core count and the load average (what ran beside it).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_PHOTOS = 66


def project(var: Path, weed) -> None:
    os.environ.update({
        "FACETYPE_VAR_DIR": str(var),
        "FACETYPE_DATABASE_URL": f"sqlite:///{var / 'facetype.db'}",
        "FACETYPE_STORAGE_URL": "s3://bench/facetype",
        "FACETYPE_S3_ENDPOINT_URL": weed.endpoint,
        "FACETYPE_AWS_ACCESS_KEY_ID": weed.access_key,
        "FACETYPE_AWS_SECRET_ACCESS_KEY": weed.secret_key,
        "FACETYPE_API_RATE_PER_MINUTE": "0",
    })
    from app.core import db, storage
    from app.core.db import Photo, ReferencePerson, TypeProfile, session_scope
    from tests.visit_helpers import synthetic_jpeg

    db.migrate()
    store = storage.get_store()
    store.create_bucket()
    with session_scope() as session:
        session.add(TypeProfile(name="Alpha", order=0, description="Alpha", share_percent=20))
        session.flush()
        for n in range(REFERENCE_PHOTOS):
            person = ReferencePerson(person_key=f"p{n:03d}", pseudonym=f"Person {n}", type_name="Alpha")
            session.add(person)
            session.flush()
            data = synthetic_jpeg(n, size=(400, 500))
            key = f"reference/{person.id}/{n}.jpg"
            store.put(key, data, "image/jpeg")
            session.add(Photo(object_key=key, size_bytes=len(data), sha256=f"{n:064d}", width=400, height=500,
                              source="reference", person_id=person.id))


def timed_while_paused(weed_pid: int, call, give_up: float):
    """(seconds or None, outcome) of ``call()`` with the store paused."""
    result: dict = {}

    def run():
        t0 = time.perf_counter()
        try:
            result["outcome"] = call()
        except Exception as exc:  # the outcome a visitor would get: shown, not raised
            result["outcome"] = f"raised {type(exc).__name__}: {str(exc)[:70]}"
        result["seconds"] = time.perf_counter() - t0

    os.kill(weed_pid, signal.SIGSTOP)
    worker = threading.Thread(target=run, daemon=True)
    try:
        worker.start()
        worker.join(give_up)
    finally:
        os.kill(weed_pid, signal.SIGCONT)
    if worker.is_alive():
        worker.join(600)
        return None, "no answer before giving up"
    return result["seconds"], result["outcome"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--give-up", type=float, default=300.0)
    args = parser.parse_args(argv)

    from tests.servers import SeaweedServer

    weed = SeaweedServer().start()
    rows = []
    try:
        project(Path(tempfile.mkdtemp(prefix="facetype-paused-")) / "var", weed)
        from fastapi.testclient import TestClient

        from app.api import api
        from app.services import gallery, submissions
        from tests.visit_helpers import fake_visit, synthetic_jpeg

        http = TestClient(api)  # no lifespan: the handlers alone, on the project above

        def references():
            refs = gallery.reference_images("Alpha")
            return f"{len(refs)} photos; {getattr(refs, 'missing', None) or 'no message'}"

        def keep():
            try:
                submissions.store_submission(fake_visit("Alpha"), synthetic_jpeg(1), "INTJ", date(1990, 1, 1), False)
            except Exception as exc:
                return f"not kept: {getattr(exc, 'message', exc)}"
            return "kept"

        def health():
            r = http.get("/healthz")
            return f"{r.status_code} store: {r.json().get('store')!s:.50}"

        def reference():
            r = http.get("/v1/reference-images/1")
            return f"{r.status_code} {r.json().get('message') if r.status_code != 200 else 'image'}"

        for name, call in (("Try it: reference photos beside a result", references),
                           ("Keep a result (consent; API and Try it)", keep),
                           ("API GET /healthz", health),
                           ("API GET /v1/reference-images/1", reference)):
            call()  # once with the store up: connections and caches warm
            rows.append((name, *timed_while_paused(weed.process.pid, call, args.give_up)))
    finally:
        weed.stop()

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "(not a git checkout)"
    print(f"\nPaused store (SeaweedFS SIGSTOP), commit {commit}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} (other work beside it)")
    print(f"{'path':44} {'seconds':>8}  outcome")
    for name, seconds, outcome in rows:
        shown = f"{seconds:8.1f}" if seconds is not None else f"> {args.give_up:>6.0f}"
        print(f"{name:44} {shown}  {outcome}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
