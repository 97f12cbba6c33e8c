"""Labeling · Import photos: add reference photos of one person, auto-labeled into the review queue.

A thin page over ``labeling.photos.import_reference_batch`` (which checks the account's role,
refuses a batch without a person and names the owner of each duplicate)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st
from sqlmodel import select

from app.core import auth
from app.core.db import ReferencePerson, session_scope
from app.core.settings import get_settings
from labeling.photos import BatchTooLarge, NoSuchPerson, import_reference_batch, server_folder_files
from models.intake import PHOTO_FORMATS
from pages.labeling_widgets import annotator_name
from pages.team_account import acting_account

st.title("Import photos")
annotator_name()
account = st.session_state.get("account")
if not auth.can(account, "import_photos"):
    st.info(f"Importing photos needs the {auth.ACTION_ROLES['import_photos']} role; ask a lead to import them.")
    st.stop()

with session_scope() as s:
    people = list(s.exec(select(ReferencePerson).order_by(ReferencePerson.person_key)))
if not people:
    st.info("Add reference people first (Survey page).")
    st.stop()
names = {p.id: f"{p.person_key} — {p.pseudonym}" for p in people}
person_id = st.selectbox("Reference person (whom these photos show)", list(names), index=None,
                         format_func=names.get, placeholder="Choose the person…", key="import_person")
uploads = st.file_uploader(f"Photos of this person ({PHOTO_FORMATS}, up to {get_settings().max_upload_mb} MB each)",
                           accept_multiple_files=True, key="import_files")
folder = ""
if auth.can(account, "import_server_folder"):  # a server path reads whatever the app process can
    folder = st.text_input("…or a folder on the server", placeholder="/data/photos/p07", key="import_folder")
if person_id is None:
    st.caption("Choose the person first: photos are never filed under a default person.")
if not st.button("Import and auto-label", type="primary",
                 disabled=person_id is None or (not uploads and not folder.strip())):
    st.stop()

items: list[tuple[str, bytes | Path]] = [(u.name, u.getvalue()) for u in uploads or []]
if folder.strip():
    try:  # regular files only, no links followed, stops at the batch limit
        listing = server_folder_files(folder.strip())
    except (NotADirectoryError, BatchTooLarge) as error:
        st.error(str(error))
        st.stop()
    items += listing.files
    if listing.skipped:
        st.info(f"Left out of the import from {folder.strip()}: {listing.skipped_summary()}.")
bar = st.progress(0.0, text=f"0 of {len(items)}")
try:
    results = import_reference_batch(
        person_id, items, account=acting_account(),  # roles checked there, on the cookie's account now
        progress=lambda done, total, name: bar.progress(done / total, text=f"{done} of {total}: {Path(name).name}"),
    )
except (BatchTooLarge, NoSuchPerson, auth.PermissionDenied) as error:
    st.error(str(error))
    st.stop()
root = Path(folder.strip()).expanduser() if folder.strip() else None


def shown_name(filename: str) -> str:
    """A server folder's file by its path under that folder: its full path pushed the reason off a phone's
    screen."""
    path = Path(filename)
    return path.relative_to(root).as_posix() if root is not None and path.is_relative_to(root) else filename


table = pd.DataFrame([{"file": shown_name(o.filename), "status": o.status, "reason": o.reason or "",
                       "message": o.message, "photo": o.photo_id} for o in results])
if table.empty:
    st.info("No files found.")
    st.stop()
summary = table["status"].value_counts().to_dict()
added, duplicates_n, skipped_n = (summary.get(status, 0) for status in ("added", "duplicate", "skipped"))
st.success(f"Added {added} photo{'' if added == 1 else 's'} of {names[person_id]}"
           + (" (now in the review queue)" if added else "")
           + f"; {duplicates_n} already stored, {skipped_n} skipped.")
duplicates = table[table["status"] == "duplicate"]
for row in duplicates.itertuples():
    st.warning(f"{row.file}: {row.message}.")
if root is not None:
    st.caption(f"Files from {root} are named by their path in it.")
skipped = table[table["status"] == "skipped"]
if not skipped.empty:
    st.subheader("Skipped files")
    st.dataframe(skipped[["file", "reason", "message"]], hide_index=True, width="stretch")
st.dataframe(table, hide_index=True, width="stretch")
