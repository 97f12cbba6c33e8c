"""Training runs as jobs (models/jobs.py, models/worker.py): queued by the app, claimed and trained
by worker processes, cancelled, failed when their worker dies, retried; each team action checks
the account's role."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta

import pytest

from app.core.auth import Account, PermissionDenied
from app.core.db import utcnow
from app.core.settings import PROJECT_ROOT
from app.core.storage import LocalStore
from tests.test_dataset import build_fixture

ROLES = {role: Account(role, role, "unused") for role in ("annotator", "lead", "admin")}
LEAD = ROLES["lead"]
TINY = {"epochs": 1, "batch_size": 4, "augment": False}  # a head run of a few seconds on the fixture
#: A detector run long enough to still be training when the test acts on it.
LONG = {"epochs": 200, "batch_size": 1, "min_size": 96, "max_size": 96, "augment": False}


def done_run(url, tmp_path, promote=False) -> int:
    from models import registry

    run_id = registry.create_run("head", {}, url=url)
    registry.finish_run(run_id, b"weights", {"type_accuracy": 0.5}, url=url, store=LocalStore(tmp_path / "s"))
    if promote:
        registry.promote(run_id, url=url)
    return run_id


# ----------------------------------------------------------------------------- the queue, in process


def test_enqueue_writes_a_queued_row_with_the_settings_asked_for(database_url):
    from models import jobs, registry

    run_id = jobs.enqueue(LEAD, "detector", url=database_url, epochs=3, arch="fasterrcnn_mobilenet_v3_large_fpn",
                          lr=None)
    row = registry.get_run(run_id, url=database_url)
    assert (row.status, row.kind, row.requested_by, row.progress) == ("queued", "detector", "lead", 0.0)
    assert row.job == {"kind": "detector", "options": {"epochs": 3, "arch": "fasterrcnn_mobilenet_v3_large_fpn"},
                       "retry_of": None}
    assert row.started_at is None and row.worker is None
    with pytest.raises(ValueError, match="unknown model kind"):
        jobs.enqueue(LEAD, "resnet", url=database_url)
    with pytest.raises(ValueError, match="unknown training settings: promote"):
        jobs.enqueue(LEAD, "head", url=database_url, promote=True)
    assert [r.id for r in registry.list_runs(database_url)] == [run_id]


def test_claims_take_the_oldest_queued_run_once(database_url):
    from models import jobs

    first, second = (jobs.enqueue(LEAD, "head", url=database_url) for _ in range(2))
    a = jobs.claim("w1", "cpu", url=database_url)
    b = jobs.claim("w2", "cpu", url=database_url)
    assert (a.id, a.status, a.worker, a.devices) == (first, "running", "w1", "cpu") and a.started_at is not None
    assert (b.id, b.worker) == (second, "w2")
    assert jobs.claim("w3", "cpu", url=database_url) is None


def test_cancel_drops_a_queued_run_and_flags_a_running_one(database_url):
    from models import jobs, registry

    queued = jobs.enqueue(LEAD, "head", url=database_url)
    running = jobs.enqueue(LEAD, "head", url=database_url)
    jobs.claim("w", "cpu", url=database_url)  # takes `queued`, the older
    assert jobs.cancel(LEAD, running, url=database_url) == "cancelled"
    assert jobs.cancel(LEAD, queued, url=database_url) == "running"
    row = registry.get_run(queued, url=database_url)
    assert row.cancel_requested and row.status == "running" and "cancelling" in row.message
    with pytest.raises(jobs.JobStateError, match="only queued or running"):
        jobs.cancel(LEAD, running, url=database_url)
    with pytest.raises(LookupError):
        jobs.cancel(LEAD, 9999, url=database_url)


def test_retry_queues_a_copy_of_a_failed_or_cancelled_run_only(database_url, tmp_path):
    from models import jobs, registry

    run_id = jobs.enqueue(LEAD, "head", url=database_url, epochs=2, seed=3)
    jobs.claim("w", "cpu", url=database_url)
    with pytest.raises(jobs.JobStateError, match="only failed or cancelled"):
        jobs.retry(LEAD, run_id, url=database_url)
    registry.fail_run(run_id, "boom", url=database_url)
    copy = jobs.retry(ROLES["admin"], run_id, url=database_url)
    row = registry.get_run(copy, url=database_url)
    assert row.status == "queued" and row.requested_by == "admin" and "retry of run" in row.message
    assert row.job == {"kind": "head", "options": {"epochs": 2, "seed": 3}, "retry_of": run_id}
    with pytest.raises(jobs.JobStateError):
        jobs.retry(LEAD, done_run(database_url, tmp_path), url=database_url)


@pytest.mark.parametrize("role", [None, "annotator", "lead", "admin"])
def test_every_run_action_checks_the_role_where_it_is_carried_out(role, tmp_path):
    """Each action as each role: allowed exactly when auth.can says so, refused with
    PermissionDenied (and nothing changed) otherwise."""
    from app.core.auth import can
    from app.core.db import migrate
    from models import jobs, registry

    url = f"sqlite:///{tmp_path / 'roles.db'}"
    migrate(url)
    account = ROLES.get(role)
    served = done_run(url, tmp_path, promote=True)
    candidate = done_run(url, tmp_path)
    failed = jobs.enqueue(LEAD, "head", url=url)
    jobs.claim("w", "cpu", url=url)
    registry.fail_run(failed, "boom", url=url)
    to_cancel = jobs.enqueue(LEAD, "head", url=url)
    actions = {
        "train": lambda: jobs.enqueue(account, "head", url=url),
        "retrain": lambda: jobs.enqueue(account, "head", action="retrain", url=url),
        "cancel_run": lambda: jobs.cancel(account, to_cancel, url=url),
        "train ": lambda: jobs.retry(account, failed, url=url),  # Retry is asking for a run
        "promote": lambda: jobs.promote(account, candidate, url=url),
    }
    for action, call in actions.items():
        runs_before = len(registry.list_runs(url))
        if can(account, action.strip()):
            call()
        else:
            with pytest.raises(PermissionDenied, match=action.strip().replace("_", " ")):
                call()
            assert len(registry.list_runs(url)) == runs_before
    assert registry.promoted_id(url) == (candidate if can(account, "promote") else served)
    if can(account, "promote"):
        assert jobs.rollback(account, url=url) == served
    else:
        with pytest.raises(PermissionDenied):
            jobs.rollback(account, url=url)
        assert registry.get_run(to_cancel, url=url).status == ("cancelled" if can(account, "cancel_run") else "queued")


def test_rollback_target_names_the_model_a_rollback_would_serve(database_url, tmp_path):
    from models import registry

    assert registry.rollback_target(database_url) is None
    first = done_run(database_url, tmp_path, promote=True)
    assert registry.rollback_target(database_url) is None
    second = done_run(database_url, tmp_path, promote=True)
    assert registry.rollback_target(database_url) == first
    assert registry.rollback(database_url) == first == registry.promoted_id(database_url)
    assert registry.rollback_target(database_url) is None
    registry.promote(second, url=database_url)
    registry.promote(first, url=database_url)  # first promoted twice: back to second, then to first's first
    assert registry.rollback_target(database_url) == second


def test_promotion_warnings_for_a_one_type_or_below_chance_model():
    from models.jobs import promotion_warnings

    good = {"type_shares": {"Alpha": 0.3, "Beta": 0.2, "Gamma": 0.2, "Delta": 0.2, "Omega": 0.1},
            "type_accuracy": 0.6, "chance_accuracy": 0.3, "macro_f1": 0.5, "chance_macro_f1": 0.2}
    assert promotion_warnings(good) == []
    one_type = {**good, "type_shares": {"Alpha": 0.05, "Beta": 0.05, "Gamma": 0.8, "Delta": 0.05, "Omega": 0.05}}
    (warning,) = promotion_warnings(one_type)
    assert "Gamma to 80 %" in warning
    below = {**good, "type_accuracy": 0.25, "macro_f1": 0.1}
    assert [w.split(" is below")[0] for w in promotion_warnings(below)] == ["Its type accuracy 0.25",
                                                                           "Its macro f1 0.10"]
    assert promotion_warnings(None) == ["This run has no metrics on held-out people."]


# ----------------------------------------------------------------------------- workers, as processes


def worker_env(url: str, store_dir) -> dict:
    return {**os.environ, "FACETYPE_DATABASE_URL": url, "FACETYPE_STORAGE_URL": str(store_dir),
            "PYTHONPATH": str(PROJECT_ROOT)}


def start_worker(env: dict, log_path, *args) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "models.worker", "--poll", "0.3", *args], cwd=PROJECT_ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_for(check, timeout: float, what: str, log_path=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    tail = log_path.read_text(errors="replace")[-3000:] if log_path and log_path.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def started_pids(log_path) -> dict[int, int]:
    return {int(run): int(pid) for run, pid in re.findall(r"run (\d+) started \(pid (\d+)\)", log_path.read_text())}


def test_a_worker_claims_a_queued_run_and_finishes_it(tmp_path):
    from models import jobs, registry

    url, _ = build_fixture(tmp_path, n_people=5, photos_per_person=1)
    run_id = jobs.enqueue(LEAD, "head", url=url, **TINY)
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        done = subprocess.run([sys.executable, "-m", "models.worker", "--once"], cwd=PROJECT_ROOT,
                              env=worker_env(url, tmp_path / "store"), stdout=out, stderr=subprocess.STDOUT, timeout=300)
    assert done.returncode == 0, log.read_text()
    row = registry.get_run(run_id, url=url)
    assert row.status == "done", (row.message, log.read_text()[-2000:])
    assert row.object_key and row.metrics["n_people"] >= 1 and len(row.history) == 1
    assert row.devices == "cpu" and row.config["device"] == "cpu" and row.config["amp"] is False
    assert row.worker and row.started_at <= row.finished_at
    assert registry.describe(row)["duration"] is not None
    assert run_id in started_pids(log)


def test_the_app_queues_runs_without_importing_the_training_code(tmp_path):
    """The Models page, as run by the app (AppTest, in a fresh interpreter), queues a run; the
    training loop and the worker are never imported into that process."""
    url, _ = build_fixture(tmp_path, n_people=5, photos_per_person=1)
    script = f"""
import json, sys
from streamlit.testing.v1 import AppTest
from app.core import auth
from pages import team_account
lead = auth.Account("lead", "lead", "unused")
cookie = auth.start_session(lead)  # AppTest sends no cookies: the page's cookie reader gets this one
team_account.session_cookie = lambda: cookie
at = AppTest.from_file({str(PROJECT_ROOT / 'pages' / 'models.py')!r}, default_timeout=120)
at.session_state["account"] = lead
at.run()
next(b for b in at.button if b.label == "Queue run").click()
at.run()
print(json.dumps({{"exception": [str(e.value) for e in at.exception],
                   "success": [s.value for s in at.success],
                   "training": sorted(m for m in sys.modules if m.startswith(("models.training", "models.worker")))}}))
"""
    env = {**worker_env(url, tmp_path / "store"),
           "FACETYPE_ACCOUNTS": json.dumps({"lead": {"role": "lead", "password_hash": "unused"}})}
    out = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["exception"] == []
    assert any("queued" in s for s in report["success"]), report
    assert report["training"] == []
    from models import registry

    (row,) = registry.list_runs(url)
    assert (row.status, row.kind, row.requested_by) == ("queued", "head", "lead")


def test_two_workers_on_postgresql_run_each_of_20_runs_exactly_once(postgres_server, tmp_path):
    """Two worker processes share one PostgreSQL queue: every run is claimed and executed by
    exactly one of them. The runs are quick jobs (tests/quick_job.py) so 20 go through in seconds."""
    from models import jobs, registry

    url = postgres_server.create_database(f"jobs_{os.getpid()}")
    from app.core.db import migrate

    migrate(url)
    env = worker_env(url, tmp_path / "store")
    logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
    workers = [start_worker(env, log, "--train-module", "tests.quick_job") for log in logs]
    try:
        for log in logs:  # both are polling before the runs arrive, so both get a share
            wait_for(lambda log=log: "waiting for queued runs" in log.read_text(), 120, "a worker", log)
        ids = [jobs.enqueue(LEAD, "head", url=url, **TINY) for _ in range(20)]
        wait_for(lambda: all(registry.get_run(i, url=url).status in jobs.FINISHED for i in ids), 300,
                 "20 runs to finish", logs[0])
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(60)
    rows = [registry.get_run(i, url=url) for i in ids]
    assert [r.status for r in rows] == ["done"] * 20, [(r.id, r.status, r.message) for r in rows if r.status != "done"]
    started = Counter(run for log in logs for run in started_pids(log))
    assert started == Counter({i: 1 for i in ids})  # every run executed once, by one worker
    # the process that finished each run is the one its worker started for it
    assert all(r.metrics["pid"] == next(started_pids(log)[r.id] for log in logs if r.id in started_pids(log))
               for r in rows)
    by_worker = Counter(r.worker for r in rows)
    assert len(by_worker) == 2 and sum(by_worker.values()) == 20  # both took part


@pytest.mark.parametrize("args, added", [((), 10), (("--nice", "0"), 0)])
def test_the_worker_trains_at_a_lower_priority_than_the_app_unless_told(tmp_path, args, added):
    """Training on a machine shared with the app yields the CPU to visitors' requests (the
    training_niceness setting, 10); ``--nice 0`` keeps full priority on a dedicated machine.
    Either way its OpenMP threads sleep while they wait instead of spinning (models/__init__),
    also when the worker was started without the variable."""
    from app.core.db import migrate
    from models import jobs, registry

    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    migrate(url)
    run_id = jobs.enqueue(LEAD, "head", url=url, **TINY)
    log = tmp_path / "worker.log"
    env = worker_env(url, tmp_path / "store")
    env.pop("OMP_WAIT_POLICY", None)
    worker = start_worker(env, log, "--once", "--train-module", "tests.quick_job", *args)
    assert worker.wait(120) == 0, log.read_text()
    row = registry.get_run(run_id, url=url)
    assert row.status == "done", log.read_text()
    assert row.metrics["niceness"] == min(19, os.nice(0) + added)
    assert row.metrics["omp_wait_policy"] == "PASSIVE"


def test_cancel_stops_a_running_run_within_seconds(tmp_path):
    from models import jobs, registry

    url, _ = build_fixture(tmp_path, n_people=5, photos_per_person=1)
    run_id = jobs.enqueue(LEAD, "detector", url=url, **LONG)
    log = tmp_path / "worker.log"
    worker = start_worker(worker_env(url, tmp_path / "store"), log)
    try:
        wait_for(lambda: registry.get_run(run_id, url=url).history, 300, "the first epoch", log)
        pid = started_pids(log)[run_id]
        assert jobs.cancel(LEAD, run_id, url=url) == "running"
        asked = time.monotonic()
        wait_for(lambda: registry.get_run(run_id, url=url).status == "cancelled", 30, "the cancel", log)
        seconds = time.monotonic() - asked
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # the training process is gone, not only the row changed
        assert worker.poll() is None  # the worker goes on, waiting for the next run
        print(f"cancelled after {seconds:.1f} s")
        row = registry.get_run(run_id, url=url)
        assert row.finished_at is not None and row.object_key is None
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)


def test_a_killed_workers_run_fails_and_retry_queues_it_again(tmp_path):
    from models import jobs, registry

    url, _ = build_fixture(tmp_path, n_people=5, photos_per_person=1)
    run_id = jobs.enqueue(LEAD, "detector", url=url, **LONG)
    log = tmp_path / "worker.log"
    env = worker_env(url, tmp_path / "store")
    worker = start_worker(env, log)
    wait_for(lambda: registry.get_run(run_id, url=url).history, 300, "the first epoch", log)
    pid = started_pids(log)[run_id]
    worker.kill()
    worker.wait(30)

    def training_gone():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(training_gone, 30, "the training process to exit with its worker")
    assert registry.get_run(run_id, url=url).status == "running"  # nobody has noticed yet
    # Another worker notices the silent run when it next looks at the queue: once its last report (the
    # killed training may have written one just before it died) is older than the stale limit below.
    stale_after = timedelta(minutes=0.05)
    wait_for(lambda: utcnow() - registry.get_run(run_id, url=url).updated_at > stale_after, 30,
             "the run's last report to be older than the stale limit")
    later = tmp_path / "later.log"
    with open(later, "wb") as out:
        subprocess.run([sys.executable, "-m", "models.worker", "--once"], cwd=PROJECT_ROOT,
                       env={**env, "FACETYPE_STALE_RUN_MINUTES": f"{stale_after.total_seconds() / 60:g}"}, stdout=out, stderr=subprocess.STDOUT,
                       timeout=120, check=True)
    row = registry.get_run(run_id, url=url)
    assert row.status == "failed" and "no progress" in row.message
    copy = jobs.retry(LEAD, run_id, url=url)
    again = registry.get_run(copy, url=url)
    assert again.status == "queued" and again.job == {**row.job, "retry_of": run_id}
    assert registry.fail_stale_runs(url=url, now=utcnow() + timedelta(hours=1)) == []  # queued is not stale


def test_a_worker_launches_torchrun_with_two_cpu_processes(tmp_path):
    """The launch path a GPU machine takes (torchrun, DDP), on CPU with gloo and 2 processes."""
    from models import jobs, registry

    url, _ = build_fixture(tmp_path, n_people=5, photos_per_person=2)
    run_id = jobs.enqueue(LEAD, "head", url=url, epochs=1, batch_size=2, augment=False)
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        subprocess.run([sys.executable, "-m", "models.worker", "--once", "--nproc", "2"], cwd=PROJECT_ROOT,
                       env=worker_env(url, tmp_path / "store"), stdout=out, stderr=subprocess.STDOUT, timeout=600)
    row = registry.get_run(run_id, url=url)
    assert row.status == "done", (row.message, log.read_text()[-3000:])
    assert row.devices == "cpu, 2 processes (DDP gloo)"
    assert row.config["world_size"] == 2 and row.config["device"] == "cpu"


def test_make_run_serves_the_app_with_a_worker_and_ctrl_c_stops_both(served_app_env, tmp_path):
    import urllib.request

    from tests.servers import free_port

    port = free_port()
    log = tmp_path / "make-run.log"
    with open(log, "wb") as out:  # -o setup: the served template is set up already
        make = subprocess.Popen(["make", "-o", "setup", "run", f"PORT={port}"], cwd=PROJECT_ROOT, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def app_and_worker_up():
        try:
            healthy = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).status == 200
        except OSError:
            return False
        return healthy and "waiting for queued runs" in log.read_text()

    try:
        wait_for(app_and_worker_up, 180, "the app and the worker", log)
    finally:
        os.killpg(make.pid, signal.SIGINT)  # what Ctrl+C in the terminal sends to the foreground group
    make.wait(60)

    def group_empty():
        try:
            os.killpg(make.pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(group_empty, 60, "every process of `make run` to exit", log)
    assert re.search(r"worker \S+: stopped", log.read_text())


def test_several_processes_are_launched_with_torchrun_one_without():
    from models.worker import describe_devices, launch_command

    assert launch_command(7, 1) == [sys.executable, "-m", "models.train", "--run-id", "7"]
    assert launch_command(7, 4) == [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                    "--nproc_per_node=4", "-m", "models.train", "--run-id", "7"]
    assert launch_command(7, 1, niceness=10) == ["nice", "-n", "10", sys.executable, "-m", "models.train",
                                                 "--run-id", "7"]
    assert describe_devices(1, 0) == "cpu" and describe_devices(2, 0) == "cpu, 2 processes (DDP gloo)"
