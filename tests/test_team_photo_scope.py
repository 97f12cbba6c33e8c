"""Team tools touch reference photos, and visitors' photos only where the visitor consented to
training: loading, saving, COCO import and export each check it in their own code path."""

from __future__ import annotations

import json

import pytest

from app.core import storage
from app.core.auth import Account
from app.core.db import Photo, RegionBox, session_scope
from labeling import annotations as ann
from labeling import coco_export, coco_import
from labeling.photos import team_photo_bytes
from tests.test_annotations import AUTO, add_photo, moved


def add_visitor_photo(session, consent_training: bool, store=None) -> int:
    key = f"visitor/photos/20260101t000000-{'consented' if consent_training else 'declined'}.jpg"
    photo = Photo(object_key=key, size_bytes=4, sha256=("c" if consent_training else "d") * 64, width=640,
                  height=640, source="visitor", consent_store=True, consent_training=consent_training,
                  boxes_version=1)
    session.add(photo)
    session.flush()
    for region, box in AUTO.items():
        session.add(RegionBox(photo_id=photo.id, version=1, region=region, x0=box[0], y0=box[1], x1=box[2],
                              y1=box[3], source="auto", confidence=0.9))
    if store is not None:
        store.put(key, b"face")
    return int(photo.id)


@pytest.fixture
def photos(tmp_path):
    from app.core import db

    url = f"sqlite:///{tmp_path / 'team.db'}"
    db.migrate(url)
    store = storage.LocalStore(tmp_path / "store")
    with session_scope(url) as s:
        reference = add_photo(s)
        store.put(s.get(Photo, reference).object_key, b"reference face")
        declined = add_visitor_photo(s, consent_training=False, store=store)
        consented = add_visitor_photo(s, consent_training=True, store=store)
    return url, store, {"reference": reference, "declined": declined, "consented": consented}


def test_the_canvas_loads_only_team_photos(photos):
    url, store, ids = photos
    assert team_photo_bytes(ids["reference"], url, store)[1] == b"reference face"
    assert team_photo_bytes(ids["consented"], url, store)[1] == b"face"
    for pid in (ids["declined"], 999, "1 OR 1=1", -1):
        with pytest.raises(ann.PhotoNotAvailable, match="no photo"):
            team_photo_bytes(pid, url, store)


def test_a_save_to_a_declined_visitor_photo_is_refused(photos):
    url, _, ids = photos
    with session_scope(url) as s, pytest.raises(ann.PhotoNotAvailable):
        ann.save_boxes(s, ids["declined"], 1, moved(AUTO, "jaw", 5, 5), "ann", "accept")
    with session_scope(url) as s:
        assert s.get(Photo, ids["declined"]).boxes_version == 1
        result = ann.save_boxes(s, ids["consented"], 1, moved(AUTO, "jaw", 5, 5), "ann", "accept")
    assert result.version == 2


def test_a_coco_file_cannot_relabel_a_declined_visitor_photo(photos):
    url, _, ids = photos
    with session_scope(url) as s:
        key = s.get(Photo, ids["declined"]).object_key
    data = {"images": [{"id": 1, "file_name": key, "width": 640, "height": 640,
                        "attributes": {"photo_id": ids["declined"]}}],
            "categories": [{"id": 3, "name": "jaw"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 50, 50]}]}
    with session_scope(url) as s:
        (outcome,) = coco_import.import_coco(s, json.dumps(data), Account("lee", "lead", "unused")).outcomes
    assert outcome.status == "unmatched" and outcome.photo_id is None
    with session_scope(url) as s:
        assert s.get(Photo, ids["declined"]).boxes_version == 1


def test_the_export_holds_no_declined_visitor_photo(photos):
    url, _, ids = photos
    with session_scope(url) as s:
        exported = coco_export.export_coco(s, statuses=None)
        yolo = coco_export.export_yolo(s, statuses=None)
    assert ids["declined"] not in {image["id"] for image in exported["images"]}
    assert "labels/20260101t000000-declined.txt" not in yolo


# ---------------------------------------------------------------------------- box checks in the save itself


@pytest.mark.parametrize("box", [
    (float("inf"), 0, 10, 10), (float("nan"), 0, 10, 10), (-5, 0, 10, 10), (0, 0, 700, 10), ("a", 0, 1, 1), (1, 2, 3),
])
def test_a_save_refuses_boxes_that_are_not_in_the_photo(photos, box):
    url, _, ids = photos
    with session_scope(url) as s, pytest.raises(ann.AnnotationError, match="jaw box"):
        ann.save_boxes(s, ids["reference"], 1, {**AUTO, "jaw": box}, "ann", "accept")
