"""What a Try it visitor keeps: storing the current result once per photo (analysing it again updates
it), deleting it with its delete code, and the codes of this session's kept results, which live in
``st.session_state["try_kept"]`` (photo id -> codes) for the whole browser session. Imported by
pages/try_it.py; not a page itself."""

from __future__ import annotations

import streamlit as st

from app.core.settings import get_settings
from app.services import analysis, submissions
from pages.try_it_result import result_link


def codes_text(kept: dict) -> str:
    lines = ["facetype: your kept results", ""]
    for entry in kept.values():
        lines += [f"Result code: {entry['result_code']}   link: {result_link(entry['result_code'])}",
                  f"Delete code: {entry['delete_code']}", ""]
    lines.append(f"Enter the delete code on the Privacy page to delete the photo and answers; everything is "
                 f"deleted automatically after {get_settings().retention_days} days.")
    return "\n".join(lines)


def kept_now() -> dict:
    """Photo id -> codes of what this session kept; lives as long as the browser session."""
    return st.session_state.get("try_kept") or {}


def keep_or_update(visit, data: bytes | None, photo_id: str | None, answers, analysed_now: bool) -> None:
    """Keep the current result when "Keep" is ticked: store it once per photo; analysing the same
    photo again updates that one submission instead of storing a second copy."""
    kept = st.session_state.setdefault("try_kept", {})
    mbti, birth = answers
    entry = kept.get(photo_id)
    try:
        if entry is not None:
            if analysed_now and not submissions.update_submission(entry["result_code"], visit, mbti, birth):
                kept.pop(photo_id)  # deleted meanwhile: keep it anew
                entry = None
            elif analysed_now:
                entry["type_name"] = visit.type_name
        if entry is None and data:
            result_code, delete_code = submissions.store_submission(visit, data, mbti, birth, consent_training=True)
            kept[photo_id] = {"result_code": result_code, "delete_code": delete_code, "type_name": visit.type_name}
    except analysis.NotStored as exc:
        st.session_state["try_store_error"] = exc.message


def delete_kept(photo_id: str) -> None:
    entry = st.session_state.get("try_kept", {}).get(photo_id)
    if entry is None:
        return
    try:
        submissions.delete_submission(None, entry["delete_code"])
    except analysis.DeleteFailed as exc:
        st.session_state["try_delete_error"] = exc.message
        return
    st.session_state["try_kept"].pop(photo_id)
    st.session_state["try_deleted"] = entry["result_code"]
