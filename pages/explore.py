"""Explore the types: the five made-up face types, synthetic reference composites of each, and how a
photo's score and type are worked out."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.core.settings import get_settings
from app.core.vocabulary import REGION_LABELS, REGIONS, TYPES
from app.services import analysis, gallery
from models.scoring import region_points_table, type_band
from models.serving import model_thresholds
from pages.visitor_widgets import REFERENCE_COLUMNS, reference_faces

settings = get_settings()
#: The sample project's reference people are synthetic composites named "Composite NNN"; only
#: those are shown here, never a project's real reference people (see data/sample/README.md).
SYNTHETIC_PREFIX = "Composite "


@st.cache_data(ttl=600, show_spinner=False)
def composites(type_name: str, database_url: str, k: int = REFERENCE_COLUMNS) -> list:
    return [r for r in gallery.reference_images(type_name, k=12) if r.pseudonym.startswith(SYNTHETIC_PREFIX)][:k]


def bands() -> tuple[tuple, str]:
    """The promoted model's score bands and where they come from."""
    try:
        thresholds = model_thresholds(analysis.served_model())
    except analysis.ModelUnavailable:
        thresholds = None
    if thresholds:
        return thresholds, "fitted to the survey's type shares when the current model was trained"
    return tuple(settings.type_thresholds), "the source's fixed bands"


def band_text(index: int, thresholds: tuple) -> str:
    low, high = type_band(index, thresholds)
    if low is None:
        return f"{high:.0f} points or fewer"
    if high is None:
        return f"more than {low:.0f} points"
    return f"more than {low:.0f}, up to {high:.0f} points"


st.title("Explore the five types")
st.caption(analysis.FOR_FUN_LINE)
st.write("The five face types are made up from a survey of how people rated a set of reference faces. "
         "The reference faces below are synthetic composites: pictures of nobody in particular.")

thresholds, bands_source = bands()
profiles = analysis.type_profiles()

st.markdown("#### How the score is worked out")
points = region_points_table()
st.markdown(
    "1. The photo must show one face, the whole head, close enough and looking at the camera.\n"
    "2. Three regions are located: the **face**, the **T-zone** (forehead, eyes and nose) and the **jaw**.\n"
    "3. For each region the model says how likely each of the five types is.\n"
    "4. Each region earns points by its type (table below); with the model's probabilities, a region's "
    "points are the expected points (each type's points weighted by its probability).\n"
    "5. The three regions' points are added up, and the total falls into one type's band "
    f"({bands_source}).\n"
    "6. *Confidence* is how sure the model is of that band by its own probabilities; it says nothing about you."
)
table = pd.DataFrame({REGION_LABELS[r]: [round(p) for p in points[r]] for r in REGIONS}, index=list(TYPES))
table["Band of the total"] = [band_text(i, thresholds) for i in range(len(TYPES))]
st.dataframe(table, width="stretch")

for index, type_name in enumerate(TYPES):
    st.divider()
    st.subheader(type_name)
    st.caption(f"Total points: {band_text(index, thresholds)}.")
    if profiles.get(type_name):
        st.write(profiles[type_name])
    refs = composites(type_name, settings.resolved_database_url)
    if not refs:
        st.caption("There are no reference composites of this type yet.")
        continue
    reference_faces(refs)
