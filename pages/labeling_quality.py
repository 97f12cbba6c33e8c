"""Labeling · Quality: auto vs human boxes, per-annotator figures and agreement between annotators.

A thin page over ``labeling.quality``."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.core.db import session_scope
from labeling import quality
from pages.labeling_widgets import annotator_name


def iou_table(per_region: dict, count: str) -> pd.DataFrame:
    return pd.DataFrame([{"region": r, count: v[count],
                          "mean IoU": "—" if v["mean_iou"] is None else f"{v['mean_iou']:.3f}"}
                         for r, v in per_region.items()]).set_index("region")


st.title("Labeling quality")
annotator_name()
with session_scope() as s:
    iou = quality.auto_vs_human_iou(s)
    stats = quality.annotator_stats(s)
    agreement = quality.annotator_agreement(s)
st.subheader("Auto vs human boxes")
st.caption("Per region: mean IoU between the auto box and the current human-reviewed box.")
st.table(iou_table(iou, "photos"))
st.subheader("Annotators")
st.caption("Saves, photos and decisions; shift = mean absolute corner movement per box, in original pixels.")
if stats:
    frame = pd.DataFrame(stats)
    frame["mean_shift_px"] = frame["mean_shift_px"].round(2)
    frame["max_shift_px"] = frame["max_shift_px"].round(2)
    st.dataframe(frame, hide_index=True, width="stretch")
else:
    st.caption("No saves yet.")
st.subheader("Agreement between annotators")
if agreement.photos == 0:
    st.caption("No photo has been reviewed by two annotators yet (use Second review on the Labeling page).")
else:
    st.markdown(f"**{agreement.photos}** photos reviewed by two or more annotators; same decision in "
                f"**{agreement.decision_agreement:.0%}** of pairs.")
    st.table(iou_table(agreement.per_region, "pairs"))
    st.dataframe(pd.DataFrame(agreement.pairs), hide_index=True, width="stretch")
