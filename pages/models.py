"""Models page: training runs, their metrics and curves, training, and the served model.

Run by st.navigation from app/main.py (no set_page_config here). Training runs in a background
thread of the app process and writes its progress to its ModelVersion row, so the live view
below (and any reload) follows it.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from app.core.vocabulary import REGIONS, TYPES
from models import registry
from models.training.engine import SYNTHETIC_NOTE
from models.training.train import active_background_runs, start_background

st.title("Models")
st.caption(
    "Every training run is kept with its weights, settings, data snapshot and metrics on held-out people. "
    "The promoted model is the one the Try it page serves."
)

try:
    registry.fail_stale_runs()
    runs = registry.list_runs()
    served_id = registry.promoted_id()
except Exception as exc:  # database down: say so instead of a traceback
    st.error(f"Cannot read the model registry: {exc}")
    st.stop()

# ----------------------------------------------------------------------------- train

with st.expander("Train a new model", expanded=not runs):
    with st.form("train"):
        kind = st.radio("Kind", ["head", "detector"], horizontal=True,
                        help="head: landmark regions + a small classifier per region (minutes on a CPU). "
                             "detector: Faster R-CNN from scratch (slow without a GPU).")
        epochs = st.number_input("Epochs", min_value=1, max_value=500, value=15 if kind == "head" else 20)
        arch = st.selectbox("Detector architecture", ["fasterrcnn_mobilenet_v3_large_320_fpn",
                                                      "fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_resnet50_fpn"],
                            help="Only used for the detector.")
        submitted = st.form_submit_button("Train", type="primary")
    if submitted:
        extra = {"arch": arch} if kind == "detector" else {}
        try:
            new_id = start_background(kind=kind, epochs=int(epochs), **extra)
            st.success(f"Run {new_id} started. Progress shows below; you can leave this page.")
            runs = registry.list_runs()
        except RuntimeError as exc:
            st.warning(str(exc))

# ----------------------------------------------------------------------------- live progress

running = [r for r in runs if r.status == "running"]


@st.fragment(run_every=2 if running else None)
def live_progress(ids: list[int]) -> None:
    finished = False
    for run_id in ids:
        row = registry.get_run(run_id)
        if row is None:
            continue
        if row.status != "running":
            finished = True
            continue
        st.progress(float(row.progress or 0.0), text=f"Run {row.id} ({row.kind}): {row.message or ''}")
        if row.history:
            last = row.history[-1]
            st.caption(" · ".join(f"{k} {v}" for k, v in last.items() if k in ("epoch", "loss", "val_type_accuracy", "seconds")))
    if ids and row is not None and row.id not in active_background_runs() and not finished:
        st.caption("Runs not started by this app process (e.g. the CLI) show here too; a run whose process "
                   "stopped stays 'running'.")
    if finished:
        st.rerun(scope="app")


if running:
    st.subheader("Running")
    live_progress([r.id for r in running])

# ----------------------------------------------------------------------------- runs table

st.subheader("Runs")
if not runs:
    st.info("No model has been trained yet. Start one above, or run the setup to train the default model.")
    st.stop()

table = pd.DataFrame([registry.describe(r) for r in runs])
st.dataframe(table, hide_index=True, width="stretch",
             column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=1)})
if table["synthetic_labels"].fillna(False).astype(bool).any():
    st.warning(SYNTHETIC_NOTE)

ids = [r.id for r in runs]
default = ids.index(served_id) if served_id in ids else 0
selected_id = st.selectbox("Run", ids, index=default,
                           format_func=lambda i: f"{i} · {next(r.kind for r in runs if r.id == i)}"
                           + (" · served" if i == served_id else ""))
selected = next(r for r in runs if r.id == selected_id)

# ----------------------------------------------------------------------------- metrics

metrics = selected.metrics or {}
if selected.status == "failed":
    st.error(f"Run {selected.id} failed: {selected.message}")
elif not metrics:
    st.info(f"Run {selected.id} has no metrics yet ({selected.status}).")
else:
    st.markdown(f"**Held-out people:** {metrics.get('n_people')} ({metrics.get('n_photos')} photos)")
    if metrics.get("synthetic_labels"):
        st.warning(SYNTHETIC_NOTE)
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
        confusion = metrics.get("confusion")
        if confusion:
            fig = go.Figure(go.Heatmap(z=confusion, x=list(TYPES), y=list(TYPES), colorscale="Blues",
                                       text=confusion, texttemplate="%{text}"))
            fig.update_layout(title="Confusion (rows true, columns predicted)", yaxis_autorange="reversed",
                              xaxis_title="predicted", yaxis_title="true", height=380, margin=dict(t=50, b=10))
            st.plotly_chart(fig, width="stretch")
    with right:
        history = selected.history or []
        if history:
            frame = pd.DataFrame(history)
            columns = [c for c in ("loss", "val_type_accuracy") if c in frame]
            fig = px.line(frame, x="epoch", y=columns, markers=True, title="Training curves")
            fig.update_layout(height=380, margin=dict(t=50, b=10), legend_title=None)
            st.plotly_chart(fig, width="stretch")

with st.expander("Settings, data snapshot and raw metrics"):
    snapshot = dict(selected.data_snapshot or {})
    photos = snapshot.pop("photos", [])
    st.json({"config": selected.config, "data": snapshot, "photos_listed": len(photos), "metrics": metrics},
            expanded=False)

# ----------------------------------------------------------------------------- serving (admin)
# Promote / roll back change what every visitor is served. Keep this block together so it can be
# gated behind the admin role.

st.divider()
st.subheader("Served model")
st.write(f"Currently served: **{served_id if served_id is not None else 'none'}**")
account = st.session_state.get("account")
if account is not None and not account.is_admin:
    st.info("Promoting and rolling back models is for admins.", icon=":material/lock:")
    st.stop()
p1, p2 = st.columns(2)
with p1:
    can_promote = selected.status == "done" and bool(selected.object_key) and selected.id != served_id
    if st.button(f"Promote run {selected.id}", disabled=not can_promote, type="primary"):
        registry.promote(selected.id)
        st.success(f"Run {selected.id} is now served.")
        st.rerun()
with p2:
    if st.button("Roll back to the previous model", disabled=served_id is None):
        try:
            back_to = registry.rollback()
            st.success(f"Rolled back: run {back_to} is served again.")
            st.rerun()
        except LookupError as exc:
            st.warning(str(exc))
