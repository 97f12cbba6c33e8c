"""Training runs as jobs: the app only asks for a run; a worker (``python -m models.worker``) runs it.

A job is a ModelVersion row: :func:`enqueue` writes it ``queued`` with the requested settings
(``job``); a worker :func:`claim` s it (``running``, with its name and devices) and launches the
training in a process of its own (``python -m models.train --run-id N``, or torchrun on GPUs);
the run ends ``done``, ``failed`` or ``cancelled``. With PostgreSQL any number of workers on any
number of machines claim distinct runs (``FOR UPDATE SKIP LOCKED``); with SQLite one worker.

Every team action here takes the signed-in account and checks its role (``auth.require``), so a
replayed widget message or a direct call is refused as a hidden button would be. This module is
light on purpose (no torch, no training code): the app imports it.
"""

from __future__ import annotations

from sqlmodel import select

from app.core.auth import Account, require
from app.core.db import ModelVersion, session_scope, utcnow
from app.core.vocabulary import RunStatus
from models import registry

FINISHED = (RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED)
KINDS = ("head", "detector")
#: The train() settings a job may ask for (what the Models page and ``models.train --queue`` offer).
OPTIONS = frozenset({
    "epochs", "batch_size", "lr", "weight_decay", "seed", "val_fraction", "arch", "max_side", "min_size",
    "max_size", "max_steps", "eval_every", "augment",
})


class JobStateError(ValueError):
    """The run is not in a state that allows the action (cancel a finished run, retry a running one)."""


def enqueue(account: Account | None, kind: str = "head", *, action: str = "train", url: str | None = None,
            retry_of: int | None = None, **options) -> int:
    """Ask for a training run; returns its id at once. ``action`` is the team action it counts as:
    ``train`` (Models page, CLI) or ``retrain`` (the Labeling page's button)."""
    if action not in ("train", "retrain"):
        raise ValueError(f"a run is asked for by 'train' or 'retrain', not {action!r}")
    require(account, action)
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}: {' or '.join(KINDS)}")
    unknown = set(options) - OPTIONS
    if unknown:
        raise ValueError(f"unknown training settings: {', '.join(sorted(unknown))}")
    options = {k: v for k, v in options.items() if v is not None}
    job = {"kind": kind, "options": options, "retry_of": retry_of}
    return registry.create_run(kind, {"kind": kind, **options}, url=url, status=RunStatus.QUEUED, job=job,
                               requested_by=account.name,
                               message=f"queued (retry of run {retry_of})" if retry_of else "queued")


def cancel(account: Account | None, run_id: int, url: str | None = None) -> str:
    """Cancel a run: a queued one at once, a running one by asking its worker, which stops the
    training process within seconds. Returns the run's status after the call."""
    require(account, "cancel_run")
    with session_scope(url) as session:
        row = session.exec(select(ModelVersion).where(ModelVersion.id == int(run_id)).with_for_update()).first()
        if row is None:
            raise LookupError(f"no run {run_id}")
        if row.status == RunStatus.QUEUED:
            row.status, row.message, row.finished_at = RunStatus.CANCELLED, f"cancelled by {account.name} before it started", utcnow()
        elif row.status == RunStatus.RUNNING:
            row.cancel_requested = True
            row.message = f"cancelling (asked by {account.name})"
        else:
            raise JobStateError(f"run {run_id} is {row.status}; only queued or running runs can be cancelled")
        session.add(row)
        return row.status


def retry(account: Account | None, run_id: int, url: str | None = None) -> int:
    """Queue a copy of a failed or cancelled run's settings; returns the new run's id."""
    row = registry.get_run(run_id, url=url)
    if row is None:
        raise LookupError(f"no run {run_id}")
    if row.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
        raise JobStateError(f"run {run_id} is {row.status}; only failed or cancelled runs can be retried")
    job = row.job or {"kind": row.kind, "options": {}}
    return enqueue(account, job["kind"], url=url, retry_of=int(row.id), **job.get("options", {}))


def promote(account: Account | None, run_id: int, url: str | None = None) -> None:
    require(account, "promote")
    registry.promote(run_id, url=url)


def rollback(account: Account | None, url: str | None = None) -> int:
    require(account, "promote")
    return registry.rollback(url=url)


# ----------------------------------------------------------------------------- the worker's side


def claim(worker: str, devices: str, url: str | None = None) -> ModelVersion | None:
    """Take the oldest queued run for ``worker`` (``running`` from now on), or None when none is
    queued. Safe between concurrent workers: PostgreSQL skips rows another worker has locked, and
    the update only happens while the row is still queued (SQLite has no row locks)."""
    with session_scope(url) as session:
        row = session.exec(
            select(ModelVersion).where(ModelVersion.status == RunStatus.QUEUED).order_by(ModelVersion.id)
            .limit(1).with_for_update(skip_locked=True)
        ).first()
        if row is None:
            return None
        claimed = session.execute(
            ModelVersion.__table__.update()
            .where(ModelVersion.id == row.id, ModelVersion.status == RunStatus.QUEUED)
            .values(status=RunStatus.RUNNING, worker=worker[:128], devices=devices[:255], started_at=utcnow(),
                    updated_at=utcnow(), message=f"claimed by {worker}"[:2000])
        ).rowcount
    return registry.get_run(row.id, url=url) if claimed else None


def mark_cancelled(run_id: int, url: str | None = None) -> None:
    registry.update_run(run_id, url=url, status=RunStatus.CANCELLED, message="cancelled", finished_at=utcnow())



# ----------------------------------------------------------------------------- guard rails


def promotion_warnings(metrics: dict | None, majority: float = 0.5) -> list[str]:
    """What should make an admin think twice before serving a run: no metrics, a result type for
    most held-out people, accuracy or macro-F1 below chance."""
    if not metrics:
        return ["This run has no metrics on held-out people."]
    warnings = []
    shares = metrics.get("type_shares") or {}
    if shares:
        top, share = max(shares.items(), key=lambda item: item[1])
        if share > majority:
            warnings.append(f"It gives {top} to {100 * share:.0f} % of the held-out photos: a model that "
                            "predicts one type for most people tells visitors little.")
    for name, chance in (("type_accuracy", "chance_accuracy"), ("macro_f1", "chance_macro_f1")):
        if metrics.get(name) is not None and metrics.get(chance) is not None and metrics[name] < metrics[chance]:
            warnings.append(f"Its {name.replace('_', ' ')} {metrics[name]:.2f} is below chance ({metrics[chance]:.2f}).")
    return warnings
