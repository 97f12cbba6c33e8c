"""Widgets shared by the visitor's pages (Try it, Explore the types). Imported by those page scripts;
not a page itself."""

from __future__ import annotations

import streamlit as st

#: Reference faces are shown four to a row, each captioned with its pseudonym.
REFERENCE_COLUMNS = 4


def reference_faces(refs: list) -> None:
    """A row of reference faces (:class:`app.services.gallery` pictures), captioned with their pseudonyms."""
    for col, ref in zip(st.columns(REFERENCE_COLUMNS), refs):
        col.image(ref.image, caption=ref.pseudonym, width="stretch")
