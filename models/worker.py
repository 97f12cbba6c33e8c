"""The training worker: takes queued runs from the database and trains them in processes of its own.

    python -m models.worker            # forever: poll, claim, train, repeat
    python -m models.worker --once     # take one queued run (if any), train it, exit

On a machine with CUDA GPUs a run is launched with ``torchrun --nproc_per_node=<GPUs>`` (DDP,
mixed precision); elsewhere as one process (``--nproc N`` forces N processes, gloo on CPU). The
worker watches its run: a Cancel from the Models page stops the training processes within
seconds, a training process that dies leaves the run failed with its exit code, and the training
processes exit when the worker itself dies (their heartbeat stops, so the run is marked failed).
Point it at the shared database and object store with FACETYPE_DATABASE_URL and
FACETYPE_STORAGE_URL (README, "Deployment beyond one machine").

Between runs the worker also keeps the Labeling page's model-assisted boxes current: when the
served model is a detector that it has not yet done so for (a promotion, a rollback), or every
``--assist-every`` seconds for photos imported since, it runs ``python -m labeling.assist`` in a
process of its own, which stores the detector's boxes for the queued photos that have none.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from app.core.settings import get_settings
from app.core.vocabulary import RunStatus
from models import jobs, registry

#: Set in the training processes' environment: they exit when this process is gone.
WORKER_PID_ENV = "FACETYPE_WORKER_PID"


def gpu_count() -> int:
    import torch  # the worker may; the app never imports this module

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def describe_devices(nproc: int, gpus: int) -> str:
    if gpus:
        import torch

        ddp = ", DDP nccl" if nproc > 1 else ""
        return f"{nproc}× cuda ({torch.cuda.get_device_name(0)}){ddp}, mixed precision"
    return "cpu" if nproc == 1 else f"cpu, {nproc} processes (DDP gloo)"


def niced(command: list[str], niceness: int) -> list[str]:
    """``command`` under ``nice -n niceness`` (where ``nice`` exists and niceness is positive)."""
    if niceness <= 0 or shutil.which("nice") is None:
        return command
    return ["nice", "-n", str(niceness), *command]


def launch_command(run_id: int, nproc: int, module: str = "models.train", niceness: int = 0) -> list[str]:
    """The training command for a claimed run: one process, or torchrun with ``nproc`` processes."""
    train = ["-m", module, "--run-id", str(run_id)]
    if nproc <= 1:
        return niced([sys.executable, *train], niceness)
    return niced([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *train],
                 niceness)


class Worker:
    def __init__(self, name: str | None = None, nproc: int | None = None, poll_seconds: float = 2.0,
                 url: str | None = None, train_module: str = "models.train", assist_module: str | None = "labeling.assist",
                 assist_every: float = 600.0, niceness: int | None = None):
        gpus = gpu_count()
        self.nproc = nproc or max(1, gpus)
        self.devices = describe_devices(self.nproc, gpus)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.poll_seconds = poll_seconds
        self.url = url
        self.train_module = train_module
        self.assist_module = assist_module
        self.assist_every = assist_every
        self.niceness = get_settings().training_niceness if niceness is None else niceness
        self.assisted: tuple[int, float] | None = None  # (served detector id, monotonic time) of the last assist
        self.stopping = threading.Event()

    def stop(self, *_signal) -> None:
        self.stopping.set()

    def run_forever(self, once: bool = False) -> int:
        print(f"worker {self.name}: {self.devices}; waiting for queued runs", file=sys.stderr, flush=True)
        while not self.stopping.is_set():
            registry.fail_stale_runs(url=self.url)
            row = jobs.claim(self.name, self.devices, url=self.url)
            if row is not None:
                self.execute(row.id)
            else:
                self.assist_if_due()
            if once:
                return 0
            if row is None:
                self.stopping.wait(self.poll_seconds)
        print(f"worker {self.name}: stopped", file=sys.stderr, flush=True)
        return 0

    def execute(self, run_id: int) -> str:
        """Train a claimed run in its own process(es); returns the run's final status."""
        env = {**os.environ, WORKER_PID_ENV: str(os.getpid())}
        # Its own session: Ctrl+C on the worker's terminal reaches the worker, which stops the run.
        process = subprocess.Popen(launch_command(run_id, self.nproc, self.train_module, self.niceness), env=env, start_new_session=True)
        print(f"worker {self.name}: run {run_id} started (pid {process.pid})", file=sys.stderr, flush=True)
        cancelled = False
        while process.poll() is None:
            if self.stopping.is_set():
                stop_process_group(process)
                if registry.get_run(run_id, url=self.url).status == RunStatus.RUNNING:  # it may have just finished
                    registry.fail_run(run_id, f"the worker {self.name} was stopped; Retry runs it again", url=self.url)
                return registry.get_run(run_id, url=self.url).status
            row = registry.get_run(run_id, url=self.url)
            if row is not None and row.cancel_requested and not cancelled:
                cancelled = True
                stop_process_group(process)
            time.sleep(0.5)
        row = registry.get_run(run_id, url=self.url)
        if row is not None and row.status == RunStatus.RUNNING:
            if cancelled or row.cancel_requested:
                jobs.mark_cancelled(run_id, url=self.url)
            else:
                registry.fail_run(run_id, f"the training process exited with code {process.returncode} "
                                  f"(worker {self.name}'s log has the details)", url=self.url)
        status = registry.get_run(run_id, url=self.url).status
        print(f"worker {self.name}: run {run_id} {status}", file=sys.stderr, flush=True)
        return status


    def assist_due(self, now: float | None = None) -> int | None:
        """The served detector's id when its boxes for the queue should be (re)computed now, else None."""
        if not self.assist_module:
            return None
        served = registry.promoted_id(url=self.url)
        row = registry.get_run(served, url=self.url) if served is not None else None
        if row is None or row.kind != "detector":
            return None
        now = time.monotonic() if now is None else now
        if self.assisted is None or self.assisted[0] != served or now - self.assisted[1] >= self.assist_every:
            return served
        return None

    def assist_if_due(self) -> None:
        served = self.assist_due()
        if served is None:
            return
        env = {**os.environ, WORKER_PID_ENV: str(os.getpid())}
        if self.url:
            env["FACETYPE_DATABASE_URL"] = self.url
        process = subprocess.Popen(niced([sys.executable, "-m", self.assist_module], self.niceness),
                                   start_new_session=True, env=env)
        while process.poll() is None:
            if self.stopping.is_set():
                stop_process_group(process)
                return
            time.sleep(0.5)
        self.assisted = (served, time.monotonic())
        print(f"worker {self.name}: model-assisted boxes for detector {served} "
              f"{'stored' if process.returncode == 0 else f'exited with code {process.returncode}'}",
              file=sys.stderr, flush=True)


def stop_process_group(process: subprocess.Popen, grace_seconds: float = 5.0) -> None:
    """SIGTERM the training process group (torchrun and its ranks), SIGKILL what is left after the grace."""
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def exit_with_worker() -> None:
    """In a training process started by a worker: exit when the worker is gone (killed, crashed),
    so the run's heartbeat stops and the run is marked failed instead of training unwatched."""
    pid = os.environ.get(WORKER_PID_ENV)
    if not pid:
        return

    def watch():
        while True:
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                os._exit(3)
            time.sleep(1.0)

    threading.Thread(target=watch, name="worker-watch", daemon=True).start()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Train queued facetype runs.")
    parser.add_argument("--once", action="store_true", help="take one queued run (if any), train it and exit")
    parser.add_argument("--nproc", type=int, default=None,
                        help="training processes per run (default: the number of GPUs, else 1)")
    parser.add_argument("--name", default=None, help="shown in the run (default: host:pid)")
    parser.add_argument("--poll", type=float, default=2.0, help="seconds between looks at the queue")
    parser.add_argument("--assist-every", type=float, default=600.0,
                        help="seconds between runs of `python -m labeling.assist` while a detector is served "
                             "(it also runs at once after a promotion); 0: after promotions only")
    parser.add_argument("--no-assist", action="store_true", help="never compute model-assisted boxes")
    parser.add_argument("--nice", type=int, default=None,
                        help="niceness of the training processes (default: the training_niceness setting, 10; "
                             "0 on a dedicated machine)")
    parser.add_argument("--train-module", default="models.train",
                        help="what each run executes, as `python -m MODULE --run-id N` (the queue tests use a quick one)")
    args = parser.parse_args(argv)
    worker = Worker(args.name, args.nproc, args.poll, train_module=args.train_module,
                    assist_module=None if args.no_assist else "labeling.assist",
                    assist_every=args.assist_every or float("inf"), niceness=args.nice)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    return worker.run_forever(once=args.once)


if __name__ == "__main__":
    raise SystemExit(main())
