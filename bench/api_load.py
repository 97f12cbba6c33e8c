"""Load benchmark of the JSON API: ``.venv/bin/python -m bench.api_load``.

Starts ``uvicorn app.api:api`` on a free loopback port (its own process), then runs N concurrent
clients (default 20) for a fixed time (default 30 s), each posting the shared test photos
(../shared/data/faces) in the source's JSON shape (base64 ``user_img``, ``age``, ``mbti``,
``consent_store: false``) one after another. Prints a table per photo and in total: requests,
errors (anything but 200, or a failed connection), p50 / p95 / p99 / max latency and throughput.

By default the server runs on a throwaway project (SQLite + folder store in a temporary folder:
the sample project and a head trained for 2 epochs, ~30 s before the clock starts); ``--project``
serves the configured project instead (FACETYPE_* settings; it needs a promoted model). The rate
limit is turned off for the run (all clients come from 127.0.0.1). Bounded: at most
``--max-requests`` requests, each with a timeout, and the whole run is stopped after
duration + 120 s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SHARED_FACES = ROOT.parent / "shared" / "data" / "faces"
if not SHARED_FACES.is_dir():  # a clone without ../shared: the test photos (the same faces)
    SHARED_FACES = ROOT / "tests" / "data" / "faces"


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_project(var: Path, epochs: int) -> None:
    """Sample project + a quickly trained, promoted head, in a child process (so this process
    stays light and its settings untouched)."""
    code = (
        "from app.services.bootstrap import prepare\n"
        "from models.training.train import ensure_served_model\n"
        "prepare()\n"
        f"print('model', ensure_served_model(epochs={epochs}))\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=project_env(var), check=True, timeout=600,
                   stdout=subprocess.DEVNULL)


def project_env(var: Path | None) -> dict:
    env = dict(os.environ)
    if var is not None:
        env.update({
            "FACETYPE_VAR_DIR": str(var),
            "FACETYPE_DATABASE_URL": f"sqlite:///{var / 'facetype.db'}",
            "FACETYPE_STORAGE_URL": str(var / "store"),
        })
    env["FACETYPE_API_RATE_PER_MINUTE"] = "0"
    return env


def start_server(var: Path | None, port: int, workers: int, log_path: Path) -> subprocess.Popen:
    log = log_path.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.api:api", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--no-access-log", "--log-level", "warning",
         # a worker importing torch and MediaPipe on a busy machine answers the supervisor's ping late
         "--timeout-worker-healthcheck", "60"],
        cwd=ROOT, env=project_env(var), stdout=log, stderr=subprocess.STDOUT,
    )


def wait_ready(base: str, process: subprocess.Popen, timeout: float = 420) -> dict:
    import httpx

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}")
        try:
            r = httpx.get(f"{base}/healthz", timeout=5)
            last = r.text
            if r.status_code == 200 and r.json().get("model_ready"):
                return r.json()
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise RuntimeError(f"the API did not become ready: {last}")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def run_clients(base: str, bodies: list[tuple[str, bytes]], clients: int, duration: float,
                      max_requests: int, timeout: float) -> tuple[list[dict], float]:
    import httpx

    results: list[dict] = []
    budget = [max_requests]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as http:
        started = time.monotonic()
        stop_at = started + duration

        async def client(index: int) -> None:
            i = index  # clients start at different photos
            while time.monotonic() < stop_at and budget[0] > 0:
                budget[0] -= 1
                name, body = bodies[i % len(bodies)]
                i += 1
                t0 = time.perf_counter()
                try:
                    r = await http.post("/v1/classify", content=body, headers={"content-type": "application/json"})
                    ok = r.status_code == 200
                    human = r.json().get("human") if ok else None
                    results.append({"photo": name, "status": r.status_code, "ok": ok, "human": human,
                                    "s": time.perf_counter() - t0})
                except (httpx.HTTPError, ValueError) as exc:
                    results.append({"photo": name, "status": type(exc).__name__, "ok": False, "human": None,
                                    "s": time.perf_counter() - t0})

        await asyncio.gather(*(client(k) for k in range(clients)))
        elapsed = time.monotonic() - started
    return results, elapsed


def table(results: list[dict], elapsed: float) -> str:
    rows = []
    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(r["photo"], []).append(r)
    header = f"{'photo':<24} {'n':>5} {'errors':>6} {'human':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    rows.append(header)
    rows.append("-" * len(header))

    def line(name, rs):
        lat = [1000 * r["s"] for r in rs if r["ok"]]
        errors = sum(not r["ok"] for r in rs)
        humans = {r["human"] for r in rs if r["ok"]}
        human = "yes" if humans == {True} else "no" if humans == {False} else "mixed" if humans else "-"
        return (f"{name:<24} {len(rs):>5} {errors:>6} {human:>6} {percentile(lat, .5):>8.0f} "
                f"{percentile(lat, .95):>8.0f} {percentile(lat, .99):>8.0f} {max(lat, default=float('nan')):>8.0f}")

    for name in sorted(groups):
        rows.append(line(name, groups[name]))
    rows.append("-" * len(header))
    rows.append(line("TOTAL", results))
    ok = sum(r["ok"] for r in results)
    rows.append(f"\n{len(results)} requests in {elapsed:.1f} s: {ok / elapsed:.2f} successful req/s, "
                f"{len(results) - ok} errors")
    statuses: dict = {}
    for r in results:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    rows.append("statuses: " + json.dumps(statuses, sort_keys=True))
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--workers", type=int, default=None,
                        help="uvicorn worker processes (default: the api_workers setting)")
    parser.add_argument("--single-duration", type=float, default=10.0,
                        help="seconds of one client posting sequentially, measured first (0: skip)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs of the throwaway model")
    parser.add_argument("--project", action="store_true", help="serve the configured project, not a throwaway one")
    parser.add_argument("--var", type=Path, default=None,
                        help="a var/ folder with a served model to copy instead of building a throwaway project")
    parser.add_argument("--photos", type=Path, default=SHARED_FACES)
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    args = parser.parse_args(argv)
    if args.workers is None:
        from app.core.settings import get_settings

        args.workers = get_settings().api_workers

    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not photos:
        print(f"no photos in {args.photos}", file=sys.stderr)
        return 2
    bodies = [(p.name, json.dumps({"user_img": base64.b64encode(p.read_bytes()).decode(), "age": "1990-01-02",
                                   "mbti": "ESTJ", "consent_store": False}).encode()) for p in photos]

    workdir = Path(tempfile.mkdtemp(prefix="facetype-bench-"))
    var = None if args.project else workdir / "var"
    server = None
    try:
        if var is not None and args.var is not None:
            shutil.copytree(args.var, var)
        elif var is not None:
            t0 = time.monotonic()
            print(f"building a throwaway project in {var} (sample project + head, {args.epochs} epochs)…", flush=True)
            build_project(var, args.epochs)
            print(f"  ready in {time.monotonic() - t0:.0f} s", flush=True)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(var, port, args.workers, workdir / "uvicorn.log")
        health = wait_ready(base, server)
        print(f"uvicorn app.api:api on {base} ({args.workers} worker(s)), model {health.get('model')}", flush=True)

        import httpx

        for name, body in bodies:  # warm-up, not measured: one request per photo
            httpx.post(f"{base}/v1/classify", content=body, headers={"content-type": "application/json"},
                       timeout=args.timeout)
        single_rate = None
        if args.single_duration > 0:
            print(f"1 client, sequential, for {args.single_duration:.0f} s…", flush=True)
            single, single_elapsed = asyncio.run(run_clients(base, bodies, 1, args.single_duration,
                                                             args.max_requests, args.timeout))
            single_rate = sum(r["ok"] for r in single) / single_elapsed
            print(table(single, single_elapsed))
        print(f"{args.clients} clients for {args.duration:.0f} s, {len(bodies)} photos…", flush=True)

        async def bounded():
            return await asyncio.wait_for(
                run_clients(base, bodies, args.clients, args.duration, args.max_requests, args.timeout),
                timeout=args.duration + 120)

        results, elapsed = asyncio.run(bounded())
        print()
        print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}, {args.workers} uvicorn worker(s); "
              f"beside it: the clients of this process (load {' '.join(Path('/proc/loadavg').read_text().split()[:3])})")
        print(table(results, elapsed))
        if single_rate:
            rate = sum(r["ok"] for r in results) / elapsed
            print(f"throughput: {rate:.2f} req/s with {args.clients} clients = {rate / single_rate:.2f}x the "
                  f"single-client sequential {single_rate:.2f} req/s (goal >= 1.7x, 0 errors)")
        if args.json:
            args.json.write_text(json.dumps({"elapsed_s": elapsed, "results": results}))
        return 0 if results and all(r["ok"] for r in results) else 1
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
            log = (workdir / "uvicorn.log").read_text(errors="replace") if (workdir / "uvicorn.log").exists() else ""
            if "Traceback" in log or "ERROR" in log:
                print("\nserver log (tail):\n" + log[-3000:], file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
