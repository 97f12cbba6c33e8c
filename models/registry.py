"""Model registry: every training run is a ModelVersion row plus its weights in the object store.

A run's row is created when the run is asked for (status ``queued``, by :mod:`models.jobs`) or
when a foreground run starts (``running``), and updated while it goes on (``progress``,
``history``, ``message``, the heartbeat ``updated_at``), so any page or process can watch it; at
the end it gets ``metrics``, ``object_key`` (weights) and status ``done`` (or ``failed`` with the
error, or ``cancelled``).

Exactly one row is ``promoted``; that is the model the Try it page, the API and the CLI serve.
Promotion times are kept in the row's ``config["promoted_at"]`` (a list of ISO times), so
:func:`rollback` can go back to the model promoted before the current one, step by step.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import select

from app.core.db import ModelVersion, session_scope, utcnow
from app.core.settings import get_settings
from app.core.storage import get_store, new_key
from app.core.vocabulary import RunStatus

#: Shown with every metric of a run trained on the sample project (the metrics say so in "synthetic_labels").
SYNTHETIC_NOTE = (
    "Type labels are the sample project's synthetic ones: they follow a rule planted in the synthetic "
    "faces (data/sample/README.md), not real opinions. The metrics show that the survey → labels → "
    "training loop finds that rule; they say nothing about real faces. The ceiling is what the rule "
    "itself reaches, given the part of appeal no photo shows and the raters' noise."
)


def default_store():
    return get_store()


def create_run(kind: str, config: dict, data_snapshot: dict | None = None, url: str | None = None,
               message: str | None = "starting", **fields) -> int:
    """A new run's row, ``running`` unless ``fields`` say otherwise (a job is created ``queued``)."""
    with session_scope(url) as session:
        row = ModelVersion(kind=kind, config=dict(config), data_snapshot=data_snapshot, history=[], progress=0.0,
                           message=message, **{"status": RunStatus.RUNNING, **fields})
        session.add(row)
        session.flush()
        return int(row.id)


def update_run(run_id: int, url: str | None = None, **fields) -> None:
    """Write progress/history/message (or any column) of a run."""
    with session_scope(url) as session:
        row = session.get(ModelVersion, run_id)
        if row is None:
            raise LookupError(f"no model version {run_id}")
        for name, value in fields.items():
            setattr(row, name, list(value) if name == "history" else value)
        row.updated_at = utcnow()
        session.add(row)


def finish_run(run_id: int, weights: bytes, metrics: dict, history: list | None = None,
               url: str | None = None, store=None) -> str:
    """Store the weights, then mark the run done with its metrics. Returns the object key."""
    store = store or default_store()
    with session_scope(url) as session:
        kind = session.get(ModelVersion, run_id).kind
    key = new_key(f"models/{kind}", "pt")
    store.put(key, weights, "application/octet-stream")
    fields = dict(object_key=key, metrics=metrics, status=RunStatus.DONE, progress=1.0,
                  message="done", finished_at=utcnow())
    if history is not None:
        fields["history"] = history
    update_run(run_id, url=url, **fields)
    return key


def fail_run(run_id: int, message: str, url: str | None = None) -> None:
    update_run(run_id, url=url, status=RunStatus.FAILED, message=message[:2000], finished_at=utcnow())


def fail_stale_runs(url: str | None = None, now: datetime | None = None) -> list[int]:
    """Mark failed the runs still "running" that reported nothing for ``settings.stale_run_minutes``:
    the process that ran them ended (a restart, a crash, a worker killed). Returns their ids."""
    now = now or utcnow()
    minutes = get_settings().stale_run_minutes
    cutoff = now - timedelta(minutes=minutes)
    stale = []
    with session_scope(url) as session:
        for row in session.exec(select(ModelVersion).where(ModelVersion.status == RunStatus.RUNNING)):
            if (row.updated_at or row.created_at) < cutoff:
                row.status = RunStatus.FAILED
                row.message = f"stopped: no progress for {minutes:g} minutes (the process running it ended)"
                row.finished_at = now
                session.add(row)
                stale.append(int(row.id))
    return stale


def get_run(run_id: int, url: str | None = None) -> ModelVersion | None:
    with session_scope(url) as session:
        return session.get(ModelVersion, int(run_id))


def list_runs(url: str | None = None, kind: str | None = None, limit: int = 200) -> list[ModelVersion]:
    with session_scope(url) as session:
        query = select(ModelVersion).order_by(ModelVersion.id.desc()).limit(limit)
        if kind:
            query = query.where(ModelVersion.kind == kind)
        return list(session.exec(query))


def promoted_id(url: str | None = None) -> int | None:
    with session_scope(url) as session:
        row = session.exec(
            select(ModelVersion).where(ModelVersion.promoted == True).order_by(ModelVersion.id.desc())  # noqa: E712
        ).first()
        return int(row.id) if row else None


def _set_promoted(session, run_id: int) -> None:
    for row in session.exec(select(ModelVersion).where(ModelVersion.promoted == True)):  # noqa: E712
        row.promoted = False
        session.add(row)
    session.flush()
    target = session.get(ModelVersion, run_id)
    target.promoted = True
    session.add(target)


def promote(run_id: int, url: str | None = None) -> None:
    """Serve this run's model from now on. Only finished runs with weights can be promoted."""
    with session_scope(url) as session:
        row = session.get(ModelVersion, int(run_id))
        if row is None:
            raise LookupError(f"no model version {run_id}")
        if row.status != RunStatus.DONE or not row.object_key:
            raise ValueError(f"model {run_id} is {row.status}; only finished models can be promoted")
        config = dict(row.config or {})
        config["promoted_at"] = list(config.get("promoted_at", [])) + [utcnow().isoformat()]
        row.config = config
        session.add(row)
        _set_promoted(session, row.id)


def _last_promotion(row: ModelVersion) -> str | None:
    times = (row.config or {}).get("promoted_at") or []
    return times[-1] if times else None


def _rollback_target(session) -> tuple[ModelVersion | None, ModelVersion | None]:
    """(the served row, the row a rollback would serve), the current model's last promotion left
    out; the target is None when there is no earlier promoted model."""
    current = session.exec(select(ModelVersion).where(ModelVersion.promoted == True)).first()  # noqa: E712
    rows = [r for r in session.exec(select(ModelVersion).where(ModelVersion.status == RunStatus.DONE))
            if r.object_key and _last_promotion(r)]
    ranked = [(r, _last_promotion(r)) for r in rows if current is None or r.id != current.id]
    if current is not None:
        earlier = list((current.config or {}).get("promoted_at", []))[:-1]
        if earlier:  # promoted more than once: its earlier promotion counts
            ranked.append((current, earlier[-1]))
    if not ranked:
        return current, None
    return current, max(ranked, key=lambda pair: (pair[1], pair[0].id))[0]


def rollback_target(url: str | None = None) -> int | None:
    """The id :func:`rollback` would serve now, or None when there is nothing to roll back to."""
    with session_scope(url) as session:
        _, target = _rollback_target(session)
        return int(target.id) if target is not None else None


def rollback(url: str | None = None) -> int:
    """Go back to the model promoted before the current one. Returns the id now served.

    The current model's last promotion is withdrawn, so calling it again goes further back."""
    with session_scope(url) as session:
        current, previous = _rollback_target(session)
        if previous is None:
            raise LookupError("there is no earlier promoted model to roll back to")
        if current is not None:
            config = dict(current.config or {})
            config["promoted_at"] = list(config.get("promoted_at", []))[:-1]
            current.config = config
            session.add(current)
        _set_promoted(session, previous.id)
        return int(previous.id)


def describe(row: ModelVersion) -> dict:
    """A flat summary of a run for tables."""
    metrics = row.metrics or {}
    finished: datetime | None = row.finished_at
    started: datetime | None = row.started_at or (row.created_at if row.job is None else None)
    end = finished or (utcnow() if row.status == RunStatus.RUNNING else None)
    seconds = (end - started).total_seconds() if started and end else None
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "promoted": bool(row.promoted),
        "progress": round(float(row.progress or 0.0), 3),
        "type_accuracy": metrics.get("type_accuracy"),
        "macro_f1": metrics.get("macro_f1"),
        "box_map50": metrics.get("box_map50"),
        "chance_accuracy": metrics.get("chance_accuracy"),
        "synthetic_labels": metrics.get("synthetic_labels", (row.data_snapshot or {}).get("synthetic_labels")),
        "created": _shown(row.created_at),
        "started": _shown(started),
        "finished": _shown(finished),
        "duration": _duration(seconds),
        "devices": row.devices,
        "requested_by": row.requested_by,
        "message": row.message,
    }


def _shown(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else None


def _duration(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
