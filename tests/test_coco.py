"""COCO / YOLO export of reviewed boxes, pycocotools loads it, and importing it back goes
through the version check and gives the same boxes."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from sqlmodel import select

from app.core.auth import Account, PermissionDenied
from app.core.db import Photo, ReferencePerson, session_scope
from labeling import annotations as ann
from labeling import coco_export, coco_import
from labeling import queue
from tests.test_annotations import AUTO, add_photo, moved


LEAD = Account("importer", "lead", "unused")


def _reviewed_project(url):
    with session_scope(url) as s:
        ids = [add_photo(s, "p01"), add_photo(s, "p02"), add_photo(s, "p02")]
        s.exec(select(ReferencePerson).where(ReferencePerson.person_key == "p01")).one().type_name = None
    with session_scope(url) as s:
        ann.save_boxes(s, ids[0], 1, moved(AUTO, "jaw", 11.25, -3.5), "ann", "accept")
        ann.save_boxes(s, ids[1], 1, moved(AUTO, "face", -2, 4.75), "ann", "accept")
        # ids[2] stays pending: not exported by default
    return ids


def test_export_is_valid_coco_with_attributes(database_url, tmp_path):
    ids = _reviewed_project(database_url)
    with session_scope(database_url) as s:
        data = coco_export.export_coco(s)
    assert [im["id"] for im in data["images"]] == ids[:2]
    assert {c["name"]: c["id"] for c in data["categories"]} == {"face": 1, "tzone": 2, "jaw": 3}
    first = data["images"][0]
    assert first["attributes"]["person"] == "p01" and first["attributes"]["boxes_version"] == 2
    assert {"person", "type", "source", "annotator"} <= set(data["annotations"][0]["attributes"])
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(data))
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        api = COCO(str(path))
    assert sorted(api.getImgIds()) == ids[:2]
    jaw = api.loadAnns(api.getAnnIds(imgIds=[ids[0]], catIds=[3]))[0]
    x0, y0, x1, y1 = moved(AUTO, "jaw", 11.25, -3.5)["jaw"]
    assert jaw["bbox"] == pytest.approx([x0, y0, x1 - x0, y1 - y0])
    assert api.getCatIds(catNms=["tzone"]) == [2]


def test_round_trip_reimports_to_the_same_boxes(database_url):
    ids = _reviewed_project(database_url)
    with session_scope(database_url) as s:
        exported = json.dumps(coco_export.export_coco(s))
        expected = {pid: coco_import.current_box_map(s, pid) for pid in ids[:2]}
    # Re-importing the unchanged file changes nothing (no new versions).
    with session_scope(database_url) as s:
        report = coco_import.import_coco(s, exported, LEAD)
    assert report.summary["unchanged"] == 2 and report.summary["updated"] == 0
    # The boxes are edited in the app after the export; the file's boxes come back through an
    # import against the current version and equal the exported ones exactly.
    with session_scope(database_url) as s:
        ann.save_boxes(s, ids[0], 2, moved(expected[ids[0]], "tzone", 40, 40), "ann", "accept")
    edited = json.loads(exported)
    edited["annotations"][0]["bbox"][0] += 1.0  # an edit made in another tool: face of ids[0]
    with session_scope(database_url) as s:
        report = coco_import.import_coco(s, edited, LEAD)  # versions in the file: conflict for ids[0]
    by_photo = {o.photo_id: o for o in report.outcomes}
    assert by_photo[ids[0]].status == "conflict" and by_photo[ids[0]].conflict.current_version == 3
    assert by_photo[ids[1]].status == "unchanged"
    with session_scope(database_url) as s:
        assert s.get(Photo, ids[0]).boxes_version == 3  # not overwritten
        report = coco_import.import_coco(s, exported, LEAD, use_file_versions=False)
    assert report.summary == {"updated": 1, "unchanged": 1, "conflict": 0, "unmatched": 0, "invalid": 0}
    with session_scope(database_url) as s:
        for pid in ids[:2]:
            assert coco_import.current_box_map(s, pid) == expected[pid]
        (last, *_) = queue.audit_trail(s, ids[0])
        assert (last.annotator, last.action, last.from_version, last.to_version) == ("importer", "import_save", 3, 4)


def test_import_from_another_tool_matches_by_file_name_and_category_name(database_url):
    with session_scope(database_url) as s:
        pid = add_photo(s, object_key="reference/1/0123456789abcdef0123456789abcdef.jpg")
    other = {
        "images": [
            {"id": 7, "file_name": "C:\\exports\\0123456789abcdef0123456789abcdef.jpg", "width": 320, "height": 320},
            {"id": 8, "file_name": "unknown.jpg", "width": 10, "height": 10},
        ],
        # Renumbered categories, half-size image: boxes are scaled back to the stored size.
        "categories": [{"id": 0, "name": "Jaw"}, {"id": 5, "name": "T-zone"}, {"id": 9, "name": "ear"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 0, "bbox": [80, 200, 150, 100]},
            {"id": 2, "image_id": 7, "category_id": 9, "bbox": [0, 0, 5, 5]},
        ],
    }
    with session_scope(database_url) as s:
        report = coco_import.import_coco(s, other, LEAD)
    assert [o.status for o in report.outcomes] == ["updated", "unmatched"]
    with session_scope(database_url) as s:
        boxes = coco_import.current_box_map(s, pid)
    assert boxes["jaw"] == (160.0, 400.0, 460.0, 600.0)
    assert boxes["face"] == AUTO["face"] and boxes["tzone"] == AUTO["tzone"]  # kept
    with pytest.raises(coco_import.CocoFormatError):
        coco_import.load_coco(b"{not json")
    with pytest.raises(coco_import.CocoFormatError):
        coco_import.load_coco({"images": []})


def test_import_rejects_two_boxes_of_one_region(database_url):
    with session_scope(database_url) as s:
        pid = add_photo(s)
        key = s.get(Photo, pid).object_key
    data = {"images": [{"id": 1, "file_name": key, "width": 640, "height": 640}],
            "categories": [{"id": 3, "name": "jaw"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 1, 50, 50]},
                            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [2, 2, 50, 50]}]}
    with session_scope(database_url) as s:
        (outcome,) = coco_import.import_coco(s, data, LEAD).outcomes
    assert outcome.status == "invalid" and "two jaw boxes" in outcome.message


def test_yolo_export_round_trips(database_url):
    ids = _reviewed_project(database_url)
    with session_scope(database_url) as s:
        files = coco_export.export_yolo(s)
        photo = s.get(Photo, ids[0])
        expected = coco_import.current_box_map(s, ids[0])
    assert files["classes.txt"] == "face\ntzone\njaw\n"
    label = files[f"labels/{photo.object_key.rsplit('/', 1)[1].rsplit('.', 1)[0]}.txt"]
    assert label.splitlines()[0].startswith("0 ")
    back = coco_export.parse_yolo(label, photo.width, photo.height)
    for region, box in expected.items():
        assert back[region] == pytest.approx(box, abs=0.01)
    assert coco_export.yolo_zip(files)[:2] == b"PK"


def _named_project(url, store):
    """Three accepted photos imported as IMG_1.jpg (p01), IMG_1.jpg (p02) and other.jpg (p02), with
    their files in ``store`` and a box moved by fractions of a pixel."""
    ids = []
    with session_scope(url) as s:
        for person, name in (("p01", "IMG_1.jpg"), ("p02", "IMG_1.jpg"), ("p02", "other.jpg")):
            pid = add_photo(s, person)
            photo = s.get(Photo, pid)
            photo.original_name = name
            store.put(photo.object_key, f"jpeg bytes of {pid}".encode(), "image/jpeg")
            ids.append(pid)
    with session_scope(url) as s:
        for pid in ids:
            ann.save_boxes(s, pid, 1, moved(AUTO, "jaw", 11.257, -3.3333), "ann", "accept")
    return ids


def test_coco_export_uses_original_names_and_rounds_to_hundredths(database_url, tmp_path):
    from app.core.storage import LocalStore

    ids = _named_project(database_url, LocalStore(tmp_path / "store"))
    with session_scope(database_url) as s:
        data = coco_export.export_coco(s)
    assert [im["file_name"] for im in data["images"]] == ["p01/IMG_1.jpg", "p02/IMG_1.jpg", "other.jpg"]
    for annotation in data["annotations"]:
        assert all(round(v, 2) == v for v in [*annotation["bbox"], annotation["area"]]), annotation
    jaw = next(a for a in data["annotations"] if a["image_id"] == ids[0] and a["category_id"] == 3)
    x0, y0, x1, y1 = moved(AUTO, "jaw", 11.257, -3.3333)["jaw"]
    assert jaw["bbox"] == [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]


def test_coco_zip_holds_the_images_under_the_exported_names(database_url, tmp_path):
    import zipfile

    from pycocotools.coco import COCO

    from app.core.storage import LocalStore

    store = LocalStore(tmp_path / "store")
    ids = _named_project(database_url, store)
    with session_scope(database_url) as s:
        archive = zipfile.ZipFile(io.BytesIO(coco_export.export_zip(s, store)))
    archive.extractall(tmp_path / "out")
    with contextlib.redirect_stdout(io.StringIO()):
        api = COCO(str(tmp_path / "out" / "annotations.json"))
    assert sorted(api.getImgIds()) == ids and len(api.getAnnIds()) == 9
    for image in api.loadImgs(ids):
        assert (tmp_path / "out" / "images" / image["file_name"]).read_bytes() == f"jpeg bytes of {image['id']}".encode()
    with session_scope(database_url) as s:
        assert "images/other.jpg" not in zipfile.ZipFile(io.BytesIO(coco_export.export_zip(s))).namelist()


def test_yolo_dataset_has_a_complete_data_yaml(database_url, tmp_path):
    import zipfile

    import yaml

    from app.core.storage import LocalStore

    store = LocalStore(tmp_path / "store")
    with session_scope(database_url) as s:
        for n in range(3):
            add_photo(s, f"p{n:02d}")
    ids = _named_project(database_url, store)
    with session_scope(database_url) as s:
        for pid in range(1, ids[0]):
            photo = s.get(Photo, pid)
            store.put(photo.object_key, b"x", "image/jpeg")
            ann.save_boxes(s, pid, 1, AUTO, "ann", "accept")
        archive = zipfile.ZipFile(io.BytesIO(coco_export.export_zip(s, store, yolo=True)))
    archive.extractall(tmp_path / "yolo")
    root = tmp_path / "yolo"
    config = yaml.safe_load((root / "data.yaml").read_text())
    assert config["path"] == "." and config["nc"] == 3
    assert config["names"] == {0: "face", 1: "tzone", 2: "jaw"}
    listed = {}
    for split in ("train", "val"):
        listed[split] = (root / config[split]).read_text().split()
        for image in listed[split]:  # an Ultralytics loader finds each label by images/ -> labels/
            assert (root / image).is_file(), image
            label = root / image.replace("./images/", "labels/", 1)
            assert label.with_suffix(".txt").read_text().count("\n") == 3
    assert len(listed["train"]) == 5 and len(listed["val"]) == 1  # 6 photos, every 5th in val
    assert not set(listed["train"]) & set(listed["val"])


def test_an_annotator_cannot_import_annotations(database_url):
    ids = _reviewed_project(database_url)
    with session_scope(database_url) as s:
        data = coco_export.export_coco(s)
        before = coco_import.current_box_map(s, ids[0])
    data["annotations"][0]["bbox"][0] += 20
    for account in (None, Account("ana", "annotator", "unused")):
        with pytest.raises(PermissionDenied, match="import annotations needs the lead role"):
            with session_scope(database_url) as s:
                coco_import.import_coco(s, data, account)
    with session_scope(database_url) as s:
        assert coco_import.current_box_map(s, ids[0]) == before


def _one_jaw_file(key, bbox, **image):
    return {"images": [{"id": 1, "file_name": key, "width": 640, "height": 640, **image}],
            "categories": [{"id": 3, "name": "jaw"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": bbox}]}


@pytest.mark.parametrize("bbox, message", [
    ([float("inf"), 1, 50, 50], "finite"), ([float("nan"), 1, 50, 50], "finite"), ([-40, 1, 50, 50], "outside"),
    ([600, 600, 100, 100], "outside"), ([1, 1, 0, 50], "no area"), ([1, 1, -5, 50], "no area"),
    ([1, 1, 50], "list"), ("1,1,50,50", "list"), ([True, 1, 50, 50], "finite"), (["1", 1, 50, 50], "finite"),
    (None, "list"), ([10**400, 1, 50, 50], "finite"),
])
def test_import_refuses_boxes_that_are_not_in_the_image(database_url, bbox, message):
    with session_scope(database_url) as s:
        pid = add_photo(s)
        key = s.get(Photo, pid).object_key
    with session_scope(database_url) as s:
        (outcome,) = coco_import.import_coco(s, _one_jaw_file(key, bbox), LEAD).outcomes
    assert outcome.status == "invalid" and "annotations[0].bbox" in outcome.message and message in outcome.message
    with session_scope(database_url) as s:
        assert s.get(Photo, pid).boxes_version == 1


@pytest.mark.parametrize("image, message", [
    ({"width": 0}, "images[0].width"), ({"height": "tall"}, "images[0].height"),
    ({"width": float("inf")}, "images[0].width"), ({"attributes": []}, "images[0].attributes"),
    ({"attributes": {"photo_id": "1; drop"}}, "photo_id"), ({"attributes": {"photo_id": 1.5}}, "photo_id"),
    ({"attributes": {"boxes_version": "x"}}, "boxes_version"), ({"width": 10**400}, "images[0].width"),
    ({"attributes": {"photo_id": 10**30}}, "photo_id"), ({"attributes": {"photo_id": 2**31}}, "photo_id"),
    ({"attributes": {"boxes_version": 2**63}}, "boxes_version"),
])
def test_import_names_the_bad_field(database_url, image, message):
    with session_scope(database_url) as s:
        pid = add_photo(s)
        key = s.get(Photo, pid).object_key
    with session_scope(database_url) as s:
        (outcome,) = coco_import.import_coco(s, _one_jaw_file(key, [1, 1, 50, 50], **image), LEAD).outcomes
    assert outcome.status == "invalid" and message in outcome.message


@pytest.mark.parametrize("data, message", [
    (b'{"images": [1], "annotations": [], "categories": []}', "images[0] is not a JSON object"),
    (b'{"images": [], "annotations": [{"image_id": [1]}], "categories": []}', "annotations[0].image_id"),
    (b'{"images": [{"id": {}}], "annotations": [], "categories": []}', "images[0].id"),
    (b'{"images": [],\n "annotations": [,], "categories": []}', "line 2"),
    (b"[" * 100000 + b"]" * 100000, "JSON"),
    (b"\xff\xfe", "not a JSON file"),
])
def test_malformed_files_are_refused_with_a_message(data, message):
    with pytest.raises(coco_import.CocoFormatError, match=message.replace("[", r"\[").replace("]", r"\]")):
        coco_import.load_coco(data)


def test_one_file_makes_at_most_one_version_per_photo(database_url):
    with session_scope(database_url) as s:
        pid = add_photo(s)
        key = s.get(Photo, pid).object_key
    data = {"images": [{"id": i, "file_name": key, "width": 640, "height": 640} for i in range(1, 501)],
            "categories": [{"id": 3, "name": "jaw"}],
            "annotations": [{"id": i, "image_id": i, "category_id": 3, "bbox": [i % 50, 1, 50, 50]}
                            for i in range(1, 501)]}
    with session_scope(database_url) as s:
        report = coco_import.import_coco(s, data, LEAD)
    assert report.summary["updated"] == 1 and report.summary["invalid"] == 499
    assert "one version per photo per file" in report.outcomes[1].message
    with session_scope(database_url) as s:
        assert s.get(Photo, pid).boxes_version == 2
