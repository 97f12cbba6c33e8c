"""Labeling · Retrain: ask for a new type-model run on the reviewed boxes; a lead promotes it on Models."""

from __future__ import annotations

import streamlit as st

from app.core import auth
from app.core.db import session_scope
from app.core.settings import PROJECT_ROOT
from app.core.vocabulary import ReviewStatus
from labeling import queue
from models import jobs
from pages.labeling_widgets import annotator_name
from pages.team_account import acting_account

state = st.session_state


def start_training_run(account: auth.Account | None) -> int:
    """Queue a type-model (head) run for ``account`` (role checked by ``jobs.enqueue``); a worker
    process trains it. Returns its ModelVersion id; its progress is on the Models page."""
    return jobs.enqueue(account, "head", action="retrain")


st.title("Retrain")
annotator_name()
account = state.get("account")
with session_scope() as s:
    n = queue.status_counts(s)[ReviewStatus.ACCEPTED]
st.markdown(f"**{n}** reviewed (accepted) photos. Training uses each photo's human-reviewed boxes where "
            "there are any and leaves rejected photos out.")
if not auth.can(account, "retrain"):
    st.info(f"Starting a run needs the {auth.ACTION_ROLES['retrain']} role (sign in).")
    st.stop()
if st.button("Retrain the type model", type="primary"):
    try:
        state["last_run"] = start_training_run(acting_account())
    except auth.PermissionDenied as exc:
        st.error(str(exc))
    except Exception as exc:
        st.error(f"Could not queue the run: {exc}")
if state.get("last_run"):
    st.success(f"Training run {state['last_run']} is queued; a worker process trains it.")
    st.markdown(
        "**What happens next:** the run trains on every accepted photo (a few minutes on the sample project). "
        "When it finishes, its evaluation appears on the Models page. It does **not** replace the model that "
        "visitors see: a lead compares it with the served model and promotes it if it is better. "
        "You can keep labeling meanwhile; photos accepted now count in the next run."
    )
    st.page_link(PROJECT_ROOT / "pages" / "models.py", label="Follow its progress on the Models page",
                 icon=":material/model_training:")
