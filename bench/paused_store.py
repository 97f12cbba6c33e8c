"""Fault benchmark: a paused object store (``kill -STOP`` on SeaweedFS) and what a visitor waits.

``.venv/bin/python -m bench.paused_store``

Builds a throwaway project on a real SeaweedFS S3 server (the sample project and a head trained
for 1 epoch; SQLite for the database), starts the JSON API (``uvicorn app.api:api``, its own
process), then pauses the SeaweedFS process with SIGSTOP (it keeps its sockets: connections open
and then nothing answers, the worst case for a client) and times, each once, seconds until the
visitor has an answer:

* Try it without consent: the page's calls after the upload (``analysis.analyse_photo`` then
  ``gallery.reference_images``) in a process that loaded the model while the store was up;
* API ``POST /v1/classify`` with ``consent_store: true``;
* API ``GET /healthz`` and ``GET /v1/reference-images/{id}``.

The store is resumed (SIGCONT) after each measurement. Every call is bounded (client timeout
400 s: a call still waiting then is shown as ``> 400``). Prints one table with the outcome of each call. Run it on two commits to compare.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "tests" / "data" / "faces" / "obama.jpg"
CLIENT_TIMEOUT_S = 400

TRY_IT = """
import json, os, signal, sys, time
from app.services import analysis, gallery
weed_pid = int(sys.argv[1])
data = open(sys.argv[2], "rb").read()
visit = analysis.analyse_photo(data)  # loads the gate and the served model while the store is up
os.kill(weed_pid, signal.SIGSTOP)
try:
    t0 = time.perf_counter()
    visit = analysis.analyse_photo(data)
    refs = gallery.reference_images(visit.type_name)
    seconds = time.perf_counter() - t0
finally:
    os.kill(weed_pid, signal.SIGCONT)
print(json.dumps({"seconds": seconds, "outcome": f"type {visit.type_name}, {len(refs)} reference photos; "
                  + str(getattr(refs, "missing", None) or "no message")}))
"""


def project_env(var: Path, weed) -> dict:
    return {
        **os.environ,
        "FACETYPE_VAR_DIR": str(var),
        "FACETYPE_DATABASE_URL": f"sqlite:///{var / 'facetype.db'}",
        "FACETYPE_STORAGE_URL": "s3://bench/facetype",
        "FACETYPE_S3_ENDPOINT_URL": weed.endpoint,
        "FACETYPE_AWS_ACCESS_KEY_ID": weed.access_key,
        "FACETYPE_AWS_SECRET_ACCESS_KEY": weed.secret_key,
        "FACETYPE_API_RATE_PER_MINUTE": "0",
    }


def build_project(env: dict) -> None:
    code = (
        "from app.core import storage\n"
        "storage.get_store().create_bucket()\n"
        "from app.services.bootstrap import prepare\n"
        "from models.training.train import ensure_served_model\n"
        "prepare()\n"
        "ensure_served_model(epochs=1)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=900,
                   stdout=subprocess.DEVNULL)


def paused(weed_pid: int, call):
    import httpx

    os.kill(weed_pid, signal.SIGSTOP)
    try:
        t0 = time.perf_counter()
        try:
            outcome = call()
        except httpx.TimeoutException:
            return None, "no answer yet: gave up"
        return time.perf_counter() - t0, outcome
    finally:
        os.kill(weed_pid, signal.SIGCONT)


def main() -> int:
    import httpx

    from bench.api_load import free_port, wait_ready
    from tests.servers import SeaweedServer, stop_process

    weed = SeaweedServer().start()
    work = Path(tempfile.mkdtemp(prefix="facetype-paused-"))
    env = project_env(work / "var", weed)
    api = None
    rows = []
    try:
        build_project(env)
        name = "Try it, no consent (analyse + reference photos)"
        try:
            try_it = subprocess.run([sys.executable, "-c", TRY_IT, str(weed.process.pid), str(PHOTO)], cwd=ROOT,
                                    env=env, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S + 60)
        except subprocess.TimeoutExpired:  # includes ~60 s of loading before the pause
            os.kill(weed.process.pid, signal.SIGCONT)
            rows.append((name, None, "no result yet: gave up"))
        else:
            if try_it.returncode:
                raise RuntimeError(try_it.stderr[-3000:])
            measured = json.loads(try_it.stdout.strip().splitlines()[-1])
            rows.append((name, measured["seconds"], measured["outcome"]))

        port = free_port()
        api = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.api:api", "--host", "127.0.0.1", "--port", str(port),
             "--no-access-log", "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=(work / "api.log").open("wb"), stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, api)
        http = httpx.Client(base_url=base, timeout=CLIENT_TIMEOUT_S)
        body = {"user_img": base64.b64encode(PHOTO.read_bytes()).decode(), "age": "1990-01-01", "mbti": "INFP",
                "consent_store": True}
        http.post("/v1/classify", json={**body, "consent_store": False}).raise_for_status()  # warm

        def classify():
            r = http.post("/v1/classify", json=body)
            j = r.json()
            return f"{r.status_code} stored={j.get('stored')} {j.get('store_message') or j.get('message') or ''}"

        def health():
            r = http.get("/healthz")
            j = r.json()
            return f"{r.status_code} store={j.get('store')!s:.40}"

        def reference():
            r = http.get("/v1/reference-images/1")
            return f"{r.status_code} {r.json().get('message') if r.status_code != 200 else 'image'}"

        for name, call in (("API classify with consent", classify), ("API /healthz", health),
                           ("API /v1/reference-images/1", reference)):
            seconds, outcome = paused(weed.process.pid, call)
            rows.append((name, seconds, outcome))
    finally:
        stop_process(api)
        weed.stop()

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    print(f"\nPaused store (SeaweedFS SIGSTOP), commit {commit}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} (other work beside it)")
    print(f"{'path':52} {'seconds':>8}  outcome")
    for name, seconds, outcome in rows:
        shown = f"{seconds:8.1f}" if seconds is not None else f"> {CLIENT_TIMEOUT_S:>6}"
        print(f"{name:52} {shown}  {outcome}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
