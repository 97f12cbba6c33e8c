"""How the Try it page shows a result: the type with its explanation, the per-region breakdown, the
reference faces, a link to the result and a button that copies it. Imported by pages/try_it.py;
not a page itself."""

from __future__ import annotations

import functools
import html
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import streamlit as st

from app.core import vocabulary
from app.services import cards, gallery
from pages.visitor_widgets import reference_faces
from streamlit.errors import StreamlitAPIException


def breakdown_table(per_region: dict) -> pd.DataFrame:
    rows = []
    for region, label in vocabulary.REGION_LABELS.items():
        info = per_region.get(region) or {}
        rows.append({
            "region": label,
            "type": info.get("type", "–"),
            "points": round(float(info.get("points", 0.0)), 1),
            "probability": f"{float(info.get('probability', 0.0)):.0%}",
        })
    return pd.DataFrame(rows)


def explore_link() -> None:
    """A link to the Explore the types page, when the app's navigation has it."""
    try:
        st.page_link(Path(__file__).with_name("explore.py"), label="All five types, and how the score is worked out",
                     icon=":material/explore:")
    except (StreamlitAPIException, KeyError):  # not in the navigation (or the page run alone)
        pass


def show_type(type_name: str, description: str, confidence: float | None, score: float | None,
              explanation: str = "") -> None:
    st.subheader(f"Your face type: {type_name}")
    if explanation:
        st.markdown(f"**How it was worked out:** {explanation}",
                    help="Each region's most likely type and its points (expected over the model's "
                         "probabilities), their total, and the band of points that gives the type.")
    explore_link()
    if description:
        st.write(description)
    cols = st.columns(2)
    if confidence is not None:
        cols[0].metric("Confidence", f"{confidence:.0%}",
                       help="How often this type was right when the model was tested on people it had not "
                            "seen (their survey type), or for older models how sure it is by its own "
                            "probabilities. It says nothing about you.")
    if score is not None:
        cols[1].metric("Points", f"{score:.1f}", help="Sum of the region points (face, T-zone, jaw).")


def show_breakdown(per_region: dict) -> None:
    st.markdown("**Per-region breakdown**")
    st.dataframe(breakdown_table(per_region), hide_index=True, width="stretch")


def show_references(type_name: str, refs: list) -> None:
    st.markdown(f"**Reference faces of type {type_name}**")
    missing = getattr(refs, "missing", None)
    if missing:
        st.caption(missing)
    if not refs:
        if not missing:
            st.caption("There are no reference photos of this type yet.")
        return
    reference_faces(refs)


def result_link(code: str) -> str:
    base = None
    try:
        base = st.context.url
    except Exception:  # older Streamlit or no browser context (tests)
        base = None
    return f"{base or ''}?result={code}"


def copy_button(text: str, label: str) -> None:
    """A button that copies ``text`` to the clipboard and says so (or says to copy it by hand)."""
    st.html(
        f"""<button class="facetype-copy" type="button" data-copy="{html.escape(text)}">{html.escape(label)}</button>
        <span class="facetype-copied" role="status"></span>
        <script>
        document.querySelectorAll("button.facetype-copy").forEach(button => {{
          if (button.dataset.ready) return;
          button.dataset.ready = "1";
          button.addEventListener("click", () => {{
            const said = button.nextElementSibling;
            navigator.clipboard.writeText(button.dataset.copy)
              .then(() => {{ said.textContent = " Copied."; }})
              .catch(() => {{ said.textContent = " Copying is blocked here: select the link above and copy it."; }});
          }});
        }});
        </script>
        <style>
        button.facetype-copy {{ font: inherit; padding: 0.35rem 0.75rem; border-radius: 0.5rem;
          border: 1px solid rgba(49, 51, 63, 0.3); background: white; cursor: pointer; }}
        </style>""",
        unsafe_allow_javascript=True, width="content",
    )


def scroll_to_result(nonce: int) -> None:
    """Bring the result heading into view once, right after Analyze (it starts below the fold)."""
    st.html(
        f"""<script data-run="{nonce}">
        const heading = [...window.parent.document.querySelectorAll('[data-testid="stMain"] h3')]
            .find(h => h.textContent.startsWith("Your face type"));
        if (heading) heading.scrollIntoView({{behavior: "smooth", block: "start"}});
        </script>""",
        unsafe_allow_javascript=True, width="content",
    )


def result_references(visit) -> list:
    """The reference faces of this result, fetched once, after the result's type is on the page."""
    if "try_refs" not in st.session_state:
        st.session_state["try_refs"] = gallery.reference_images(visit.type_name)
    return st.session_state["try_refs"]


def result_card(visit) -> Callable[[], bytes]:
    """What makes the result card's PNG: Streamlit calls it when the visitor clicks Download (on its
    own thread), so no card is drawn for a result nobody downloads, nor on the visit's reruns."""
    return functools.partial(cards.visit_card_png, visit)
