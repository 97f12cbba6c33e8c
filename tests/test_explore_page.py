"""The Explore the types page, run alone with AppTest on the sample project with a promoted model."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from app.core.vocabulary import TYPES
from app.services import analysis


def test_every_type_is_described_with_synthetic_composites_and_the_scoring(served_app_env):
    at = AppTest.from_file("pages/explore.py", default_timeout=90)
    at.run()
    assert not at.exception, at.exception
    assert [s.value for s in at.subheader] == list(TYPES)
    profiles = analysis.type_profiles()
    shown = "\n".join(str(m.value) for m in at.markdown)
    assert all(profiles[t] in shown for t in TYPES)
    captions = [c for image in at.get("image") for c in image.captions]
    assert len(captions) == 4 * len(TYPES)
    assert all(c.startswith("Composite ") for c in captions)
    table = at.dataframe[0].value
    assert list(table.index) == list(TYPES) and list(table["Face"]) == [50, 40, 30, 20, 10]
    bands = list(table["Band of the total"])
    assert bands[0].startswith("more than") and bands[-1].endswith("points or fewer")
    assert "fitted to the survey's type shares" in shown
    assert analysis.FOR_FUN_LINE in [c.value for c in at.caption]
