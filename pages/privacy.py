"""Privacy: what facetype processes and keeps, for how long, and deleting a kept result by its delete code."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitAPIException

from app.core.settings import get_settings
from app.services import analysis, submissions

settings = get_settings()
days = settings.retention_days

st.title("Privacy")
st.caption(analysis.FOR_FUN_LINE)
if st.session_state.get("try_kept") or st.session_state.get("try_visit"):
    try:
        st.page_link(Path(__file__).with_name("try_it.py"), label="Back to Try it: your result and codes are still there",
                     icon=":material/arrow_back:")
    except (StreamlitAPIException, KeyError):  # the page run alone, without the app's navigation (tests)
        pass

st.markdown(
    f"""
#### What happens to your photo

* **Analyzing** (the required box on *Try it*): your photo is checked for one usable face, the face,
  T-zone and jaw regions are located, and a model guesses a made-up face type. This happens in the
  server's memory only. Without the optional box, **nothing** about your visit is written: no
  database row, no stored file, no log line with your photo, birth date or MBTI type. Closing or
  reloading the page forgets the photo and the result.
* **Keeping** (the optional, off-by-default box "keep my photo and answers to improve the model"):
  we store your photo file, your MBTI type, your birth date and the result, so the team may use them
  to improve the model. You get a **result code** (reopens the result; the photo is not shown
  through it) and a **delete code** (deletes everything, below). The photo is kept without its
  metadata: location, camera serial number and other EXIF details are removed before it is stored.

#### How long

Kept photos and answers are deleted automatically **{days} days** after you sent them. You can
delete them earlier at any time with your delete code.

#### Security

Delete codes are random and stored only as a salted hash, so nobody — the team included — can
read them back. Logs name result codes and counts, never photos, birth dates or MBTI types.
Reference photos shown beside a result are the project's own reference people (in the sample
project, synthetic composite faces that are nobody in particular).
"""
)

st.markdown("#### Delete a kept result")
with st.form("privacy_delete", clear_on_submit=True):
    delete_code = st.text_input(
        "Delete code", placeholder="XXXXXXXX-XXXX-XXXX-XXXX-XXXX", type="password", key="privacy_delete_code",
        help="The delete code shown when your result was kept. It starts with the result code.",
    )
    submitted = st.form_submit_button("Delete my photo and answers")

if submitted:
    if not (delete_code or "").strip():
        st.warning("Enter the delete code you were given.")
    else:
        try:
            deleted = submissions.delete_submission(None, delete_code)
        except analysis.DeleteFailed as exc:
            st.error(exc.message)
        else:
            if deleted:
                st.success("Deleted: your photo file, your answers and your result are gone from the "
                           "database and the photo store.")
            else:
                st.error("No kept result matches this delete code. Check the code; a result that was "
                         f"already deleted, or is older than {days} days, no longer exists.")
