"""Models page: training runs (jobs), their metrics and curves, and the served model.

Run by st.navigation from app/main.py (no set_page_config here). The page only queues runs
(models/jobs.py); workers (``python -m models.worker``, started by ``make run``) train them in
their own processes and write progress to the run's row, which the live view below follows.
Each action checks the signed-in account's role in models.jobs, not only here by hiding buttons.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from app.core.auth import PermissionDenied, can
from app.core.vocabulary import REGIONS, TYPES, RunStatus
from models import jobs, registry
from pages.charts import LEGEND_BELOW, TITLE_BELOW_TOOLBAR, top_margin
from pages.team_account import acting_account

ARCHS = ["fasterrcnn_mobilenet_v3_large_320_fpn", "fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_resnet50_fpn"]

st.title("Models")
st.caption(
    "Every training run is kept with its weights, settings, data snapshot and metrics on held-out people. "
    "The promoted model is the one the Try it page serves. Runs are queued here and trained by workers "
    "(`python -m models.worker`; `make run` starts one beside the app), on GPUs where a worker has them."
)
account = st.session_state.get("account")


def act(action, *args, **kwargs):
    """Run a team action as the session cookie's account now (models.jobs checks its role); say why it was
    refused or impossible instead of a traceback."""
    try:
        return action(acting_account(), *args, **kwargs)
    except PermissionDenied as exc:
        st.error(str(exc), icon=":material/lock:")
    except (jobs.JobStateError, LookupError, ValueError) as exc:
        st.warning(str(exc))
    return None


try:
    registry.fail_stale_runs()
    runs = registry.list_runs()
    served_id = registry.promoted_id()
except Exception as exc:  # database down: say so instead of a traceback
    st.error(f"Cannot read the model registry: {exc}")
    st.stop()

# ----------------------------------------------------------------------------- train

with st.expander("Train a new model", expanded=not runs):
    if not can(account, "train"):
        st.info("Asking for training runs is for leads and admins.", icon=":material/lock:")
    else:
        with st.form("train"):
            kind = st.radio("Kind", ["head", "detector"], horizontal=True,
                            help="head: landmark regions + a small classifier per region (minutes on a CPU). "
                                 "detector: Faster R-CNN from scratch (slow without a GPU).")
            epochs = st.number_input("Epochs", min_value=1, max_value=500, value=15 if kind == "head" else 20)
            arch = st.selectbox("Detector architecture", ARCHS, help="Only used for the detector.")
            submitted = st.form_submit_button("Queue run", type="primary")
        if submitted:
            new_id = act(jobs.enqueue, kind, epochs=int(epochs), arch=arch if kind == "detector" else None)
            if new_id is not None:
                st.success(f"Run {new_id} queued: a worker will pick it up. Progress shows below; you can leave "
                           "this page.")
                runs = registry.list_runs()

# ----------------------------------------------------------------------------- live runs and the table

st.subheader("Runs")
if not runs:
    st.info("No model has been trained yet. Queue one above, or run the setup to train the default model.")
    st.stop()
active = any(r.status in (RunStatus.QUEUED, RunStatus.RUNNING) for r in runs)


@st.fragment(run_every=2 if active else None)
def live_runs(shown_active: frozenset[int]) -> None:
    """Progress of queued and running runs with their Cancel buttons, and the runs table, refreshed
    together so they agree; the whole page reruns when a run it showed as active has ended."""
    current = registry.list_runs()
    now_active = [r for r in current if r.status in (RunStatus.QUEUED, RunStatus.RUNNING)]
    for row in now_active:
        left, right = st.columns([5, 1], vertical_alignment="center")
        with left:
            if row.status == RunStatus.QUEUED:
                st.progress(0.0, text=f"Run {row.id} ({row.kind}): queued, waiting for a worker")
            else:
                st.progress(float(row.progress or 0.0),
                            text=f"Run {row.id} ({row.kind}) on {row.devices or 'a worker'}: {row.message or ''}")
                if row.history:
                    last = row.history[-1]
                    st.caption(" · ".join(f"{k} {v}" for k, v in last.items()
                                          if k in ("epoch", "loss", "val_type_accuracy", "seconds")))
        with right:
            if can(account, "cancel_run"):
                if st.button("Cancel", key=f"cancel_{row.id}", disabled=row.cancel_requested,
                             help="A queued run is dropped; a running one is stopped by its worker within seconds."):
                    act(jobs.cancel, row.id)
                    st.rerun(scope="fragment")
    table = pd.DataFrame([registry.describe(r) for r in current])
    st.dataframe(table, hide_index=True, width="stretch",
                 column_order=["id", "kind", "status", "promoted", "progress", "type_accuracy", "macro_f1",
                               "box_map50", "chance_accuracy", "created", "started", "finished", "duration",
                               "devices", "requested_by", "message"],
                 column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=1)})
    if table["synthetic_labels"].fillna(False).astype(bool).any():
        st.warning(registry.SYNTHETIC_NOTE)
    if shown_active - {r.id for r in now_active}:
        st.rerun(scope="app")


live_runs(frozenset(r.id for r in runs if r.status in (RunStatus.QUEUED, RunStatus.RUNNING)))

ids = [r.id for r in runs]
default = ids.index(served_id) if served_id in ids else 0
selected_id = st.selectbox("Run", ids, index=default, key="run",
                           format_func=lambda i: f"{i} · {next(r.kind for r in runs if r.id == i)}"
                           + (" · served" if i == served_id else ""))
selected = next(r for r in runs if r.id == selected_id)
served = next((r for r in runs if r.id == served_id), None)

# ----------------------------------------------------------------------------- metrics


def confusion_figure(confusion: list, title: str) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=confusion, x=list(TYPES), y=list(TYPES), colorscale="Blues",
                               text=confusion, texttemplate="%{text}", showscale=False))
    fig.update_layout(title=dict(text=title, **TITLE_BELOW_TOOLBAR), yaxis_autorange="reversed",
                      xaxis_title="predicted", yaxis_title="true", height=390, margin=dict(t=top_margin(), b=10))
    return fig


metrics = selected.metrics or {}
if selected.status in (RunStatus.FAILED, RunStatus.CANCELLED):
    (st.error if selected.status == RunStatus.FAILED else st.info)(f"Run {selected.id} {selected.status}: {selected.message}")
    if can(account, "train") and st.button(f"Retry run {selected.id}", help="Queues a copy of its settings."):
        new_id = act(jobs.retry, selected.id)
        if new_id is not None:
            st.success(f"Run {new_id} queued with run {selected.id}'s settings.")
            st.rerun()
elif not metrics:
    st.info(f"Run {selected.id} has no metrics yet ({selected.status}).")
else:
    st.markdown(f"**Held-out people:** {metrics.get('n_people')} ({metrics.get('n_photos')} photos)")
    if metrics.get("synthetic_labels"):
        st.warning(registry.SYNTHETIC_NOTE)
    c1, c2, c3, c4 = st.columns(4)
    # Deltas against chance carry their sign, so a model below chance shows a down arrow.
    c1.metric("Type accuracy", f"{metrics['type_accuracy']:.2f}",
              f"{metrics['type_accuracy'] - metrics['chance_accuracy']:+.2f} vs chance {metrics['chance_accuracy']:.2f}")
    c2.metric("Macro-F1", f"{metrics['macro_f1']:.2f}",
              f"{metrics['macro_f1'] - metrics['chance_macro_f1']:+.2f} vs chance {metrics['chance_macro_f1']:.2f}")
    c3.metric("Person accuracy", f"{metrics['person_accuracy']:.2f}")
    c4.metric("Box mAP@0.5", f"{metrics['box_map50']:.2f}")
    if selected.kind == "head":
        c4.caption("The head serves the landmark boxes, so this measures them against the stored boxes.")
    d1, d2, d3, d4 = st.columns(4)
    if metrics.get("ceiling_accuracy") is not None:
        d1.metric("Ceiling (planted rule)", f"{metrics['ceiling_accuracy']:.2f}",
                  f"{metrics['type_accuracy'] - metrics['ceiling_accuracy']:+.2f} model vs ceiling",
                  help="The type accuracy of the sample's hidden rule applied to the true traits: what a perfect "
                       "model could reach, given the part of appeal no photo shows and the raters' noise.")
    if metrics.get("within_one_accuracy") is not None:
        d2.metric("Within one type", f"{metrics['within_one_accuracy']:.2f}")
    if metrics.get("spearman") is not None:
        d3.metric("Spearman vs survey", f"{metrics['spearman']:.2f}",
                  help="Rank correlation, over held-out people, of the result score with the survey's mean score.")
    if metrics.get("type_shares"):
        d4.caption("Result types on held-out photos (survey shares in brackets): " + ", ".join(
            f"{t} {100 * metrics['type_shares'][t]:.0f} % ({100 * metrics.get('true_type_shares', {}).get(t, 0):.0f} %)"
            for t in TYPES))
        d4.caption(f"Bands: {metrics.get('threshold_mode', 'source')} "
                   f"({' / '.join(f'{v:.1f}' for v in metrics.get('type_thresholds', []))})")
    st.dataframe(pd.DataFrame({
        "region": list(REGIONS),
        "box mAP@0.5": [metrics.get("box_map50_per_region", {}).get(r) for r in REGIONS],
        "mean IoU": [metrics.get("mean_iou", {}).get(r) for r in REGIONS],
        "type accuracy": [metrics.get("region_type_accuracy", {}).get(r) for r in REGIONS],
    }), hide_index=True)

    left, right = st.columns(2)
    with left:
        if metrics.get("confusion"):
            # The axes say which is true and which predicted; a longer title ran under the chart's tool bar,
            # which a phone shows at all times.
            st.plotly_chart(confusion_figure(metrics["confusion"], "Confusion"), width="stretch")
    with right:
        history = selected.history or []
        if history:
            frame = pd.DataFrame(history)
            columns = [c for c in ("loss", "val_type_accuracy") if c in frame]
            fig = px.line(frame, x="epoch", y=columns, markers=True, title="Training curves")
            fig.update_layout(title=TITLE_BELOW_TOOLBAR, height=410, margin=dict(t=top_margin(), b=10),
                              legend_title=None, legend=LEGEND_BELOW)
            st.plotly_chart(fig, width="stretch")

with st.expander("Settings, data snapshot and raw metrics"):
    snapshot = dict(selected.data_snapshot or {})
    photos = snapshot.pop("photos", [])
    st.json({"config": selected.config, "job": selected.job, "worker": selected.worker, "devices": selected.devices,
             "data": snapshot, "photos_listed": len(photos), "metrics": metrics}, expanded=False)

# ----------------------------------------------------------------------------- serving (admin)
# Promote / roll back change what every visitor is served: the run is compared with the served
# model side by side and the admin confirms in a dialog, warned when the run looks degenerate.

COMPARED = [("Type accuracy", "type_accuracy"), ("Chance accuracy", "chance_accuracy"), ("Macro-F1", "macro_f1"),
            ("Chance macro-F1", "chance_macro_f1"), ("Person accuracy", "person_accuracy"),
            ("Within one type", "within_one_accuracy"), ("Spearman vs survey", "spearman"),
            ("Box mAP@0.5", "box_map50"), ("Held-out people", "n_people")]


def comparison(candidate, current) -> None:
    """Metrics, type shares and confusion matrices of ``candidate`` beside the served ``current``."""
    names = [f"run {candidate.id} (candidate)"] + ([f"run {current.id} (served)"] if current else [])
    rows = [candidate.metrics or {}] + ([current.metrics or {}] if current else [])
    st.dataframe(pd.DataFrame({"metric": [label for label, _ in COMPARED],
                               **{n: [m.get(key) for _, key in COMPARED] for n, m in zip(names, rows)}}),
                 hide_index=True, width="stretch")
    shares = pd.DataFrame([{"run": n, "type": t, "share": m.get("type_shares", {}).get(t, 0.0)}
                           for n, m in zip(names, rows) for t in TYPES])
    fig = px.bar(shares, x="type", y="share", color="run", barmode="group", title="Result types on held-out photos")
    fig.update_layout(title=TITLE_BELOW_TOOLBAR, height=330, margin=dict(t=top_margin(), b=10),
                      yaxis_tickformat=".0%", legend_title=None)
    st.plotly_chart(fig, width="stretch")
    for column, n, m in zip(st.columns(len(names)), names, rows):
        with column:
            if m.get("confusion"):
                st.plotly_chart(confusion_figure(m["confusion"], n), width="stretch")


@st.dialog("Promote this run?", width="large")
def confirm_promotion(candidate, current) -> None:
    st.write(f"Run {candidate.id} ({candidate.kind}) will be served to every visitor instead of "
             + (f"run {current.id} ({current.kind})." if current else "no model."))
    warnings = jobs.promotion_warnings(candidate.metrics)
    for warning in warnings:
        st.warning(warning, icon=":material/warning:")
    comparison(candidate, current)
    sure = st.checkbox("Promote it despite the warnings") if warnings else True
    if st.button(f"Promote run {candidate.id}", type="primary", disabled=not sure, key="confirm_promote"):
        act(jobs.promote, candidate.id)
        if registry.promoted_id() == candidate.id:
            st.session_state["models_flash"] = f"Run {candidate.id} is now served."
            st.rerun()


st.divider()
st.subheader("Served model")
st.write(f"Currently served: **{f'run {served_id}' if served_id is not None else 'none'}**")
if flash := st.session_state.pop("models_flash", None):
    st.success(flash)
if not can(account, "promote"):
    st.info("Promoting and rolling back models is for admins.", icon=":material/lock:")
    st.stop()
if selected.status == RunStatus.DONE and selected.id != served_id:
    for warning in jobs.promotion_warnings(selected.metrics):
        st.warning(warning, icon=":material/warning:")
    with st.expander(f"Run {selected.id} beside the served model", expanded=False):
        comparison(selected, served)
target = registry.rollback_target()
p1, p2 = st.columns(2)
with p1:
    can_promote = selected.status == RunStatus.DONE and bool(selected.object_key) and selected.id != served_id
    if st.button(f"Promote run {selected.id}…", disabled=not can_promote, type="primary"):
        confirm_promotion(selected, served)
with p2:
    label = f"Roll back to run {target}" if target is not None else "Roll back (no earlier model)"
    if st.button(label, disabled=target is None,
                 help="Serves the model promoted before the current one again."):
        back_to = act(jobs.rollback)
        if back_to is not None:
            st.session_state["models_flash"] = f"Rolled back: run {back_to} is served again."
            st.rerun()
