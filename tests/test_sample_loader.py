from collections import Counter

import pytest
from sqlmodel import func, select

from app.core.db import Photo, ReferencePerson, RegionBox, SurveyRating, TypeProfile, session_scope
from app.services.sample import load_sample_project


@pytest.mark.integration  # loads the whole sample project (110 people, every photo through the gate)
def test_sample_project_loads_once_and_completely(database_url, object_store):
    first = load_sample_project(database_url, object_store)
    assert (first.types_added, first.people_added, first.ratings_added) == (5, 110, 11000)
    assert first.photos == {"added": 330, "duplicate": 0, "skipped": 0}

    again = load_sample_project(database_url, object_store)
    assert (again.types_added, again.people_added, again.ratings_added, again.people_labeled) == (0, 0, 0, 0)
    assert again.photos == {"added": 0, "duplicate": 330, "skipped": 0}

    with session_scope(database_url) as s:
        assert [t.name for t in s.exec(select(TypeProfile).order_by(TypeProfile.order))] == [
            "Alpha", "Beta", "Gamma", "Delta", "Omega"]
        types = Counter(p.type_name for p in s.exec(select(ReferencePerson)))
        # quotas of 110 people at 21.8/21.4/22.5/19.2/15.2 % by largest remainder
        assert types == {"Alpha": 24, "Beta": 23, "Gamma": 25, "Delta": 21, "Omega": 17}
        assert s.exec(select(func.count(SurveyRating.id))).one() == 11000
        photos = s.exec(select(Photo)).all()
        boxes = s.exec(select(RegionBox)).all()
    assert len(photos) == 330 and len(boxes) == 990
    assert {b.source for b in boxes} == {"auto"} and all(0 < b.confidence <= 1 for b in boxes)
    assert sorted(object_store.list("reference/")) == sorted(p.object_key for p in photos)
    photo = photos[0]
    assert all(0 <= b.x0 < b.x1 <= photo.width and 0 <= b.y0 < b.y1 <= photo.height
               for b in boxes if b.photo_id == photo.id)
