"""Model registry: every training run is a ModelVersion row plus its weights in the object store.

A run's row is created when the run starts (status ``running``) and updated while it goes on
(``progress``, ``history``, ``message``), so any page or process can watch it; at the end it
gets ``metrics``, ``object_key`` (weights) and status ``done`` (or ``failed`` with the error).

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


def default_store():
    return get_store()


def create_run(kind: str, config: dict, data_snapshot: dict | None = None, url: str | None = None,
               message: str | None = "starting") -> int:
    with session_scope(url) as session:
        row = ModelVersion(kind=kind, status="running", config=dict(config), data_snapshot=data_snapshot,
                           history=[], progress=0.0, message=message)
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
    fields = dict(object_key=key, metrics=metrics, status="done", progress=1.0,
                  message="done", finished_at=utcnow())
    if history is not None:
        fields["history"] = history
    update_run(run_id, url=url, **fields)
    return key


def fail_run(run_id: int, message: str, url: str | None = None) -> None:
    update_run(run_id, url=url, status="failed", message=message[:2000], finished_at=utcnow())


def fail_stale_runs(url: str | None = None, now: datetime | None = None) -> list[int]:
    """Mark failed the runs still "running" that reported nothing for ``settings.stale_run_minutes``:
    the process that ran them ended (a restart, a crash). Returns their ids."""
    now = now or utcnow()
    minutes = get_settings().stale_run_minutes
    cutoff = now - timedelta(minutes=minutes)
    stale = []
    with session_scope(url) as session:
        for row in session.exec(select(ModelVersion).where(ModelVersion.status == "running")):
            if (row.updated_at or row.created_at) < cutoff:
                row.status = "failed"
                row.message = f"stopped: no progress for {minutes} minutes (the process running it ended)"
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
        if row.status != "done" or not row.object_key:
            raise ValueError(f"model {run_id} is {row.status}; only finished models can be promoted")
        config = dict(row.config or {})
        config["promoted_at"] = list(config.get("promoted_at", [])) + [utcnow().isoformat()]
        row.config = config
        session.add(row)
        _set_promoted(session, row.id)


def _last_promotion(row: ModelVersion) -> str | None:
    times = (row.config or {}).get("promoted_at") or []
    return times[-1] if times else None


def rollback(url: str | None = None) -> int:
    """Go back to the model promoted before the current one. Returns the id now served.

    The current model's last promotion is withdrawn, so calling it again goes further back."""
    with session_scope(url) as session:
        current = session.exec(select(ModelVersion).where(ModelVersion.promoted == True)).first()  # noqa: E712
        rows = [r for r in session.exec(select(ModelVersion).where(ModelVersion.status == "done"))
                if r.object_key and _last_promotion(r)]
        if current is not None:
            config = dict(current.config or {})
            config["promoted_at"] = list(config.get("promoted_at", []))[:-1]
            current.config = config
            session.add(current)
        candidates = [r for r in rows if (current is None or r.id != current.id) and _last_promotion(r)]
        if current is not None and _last_promotion(current):
            candidates.append(current)  # promoted more than once: its earlier promotion counts
        if not candidates:
            raise LookupError("there is no earlier promoted model to roll back to")
        previous = max(candidates, key=lambda r: (_last_promotion(r), r.id))
        _set_promoted(session, previous.id)
        return int(previous.id)


def describe(row: ModelVersion) -> dict:
    """A flat summary of a run for tables."""
    metrics = row.metrics or {}
    finished: datetime | None = row.finished_at
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
        "created": row.created_at.isoformat(timespec="seconds") if row.created_at else None,
        "finished": finished.isoformat(timespec="seconds") if finished else None,
        "message": row.message,
    }
