"""Reviewed boxes out as COCO JSON (and YOLO text), for other labeling and training tools.

One COCO image per photo (``id`` is the photo id, ``file_name`` the name the photo was imported
under, prefixed with the person's key only where two photos share a name) with the person and type
as attributes, one annotation per region box (pixels rounded to 0.01), categories as in
:mod:`labeling.autolabel` (face 1, tzone 2, jaw 3). Each image records the ``boxes_version`` it
was exported at, so an import of the same file (:mod:`labeling.coco_import`), edited elsewhere, is
version-checked against saves made since the export. ``export_zip`` packs the JSON with the image
files; ``export_yolo`` writes an Ultralytics-style dataset (``data.yaml`` with path, train/val
lists, nc and names). Only reference photos are exported: visitors' photos never reach these files.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import PurePosixPath
from typing import Any, Iterable, Mapping, Sequence

from sqlmodel import Session, select

from app.core.db import Photo, ReferencePerson
from app.core.storage import ObjectStore
from app.core.vocabulary import PhotoSource, ReviewStatus
from labeling.annotations import boxes_at
from labeling.autolabel import CATEGORIES

CATEGORY_ID = {c["name"]: c["id"] for c in CATEGORIES}
#: YOLO class index per region (0-based, in category order).
YOLO_CLASS = {name: cid - 1 for name, cid in CATEGORY_ID.items()}
EXPORT_STATUSES = (ReviewStatus.ACCEPTED,)
#: Every n-th exported photo (by id order) goes to the YOLO validation list.
YOLO_VAL_EVERY = 5


def _export_names(rows: list[tuple[Photo, ReferencePerson | None, list]]) -> dict[int, str]:
    """Each photo's file name in an export: its original name, made unique with the person's key."""
    def own(photo: Photo) -> str:
        return photo.original_name or PurePosixPath(photo.object_key).name

    counts: dict[str, int] = {}
    for photo, _person, _rows in rows:
        counts[own(photo)] = counts.get(own(photo), 0) + 1
    names = {}
    for photo, person, _rows in rows:
        name = own(photo)
        if counts[name] > 1:
            name = f"{person.person_key if person else 'photo'}/{name}"
            if name in names.values():
                name = f"{PurePosixPath(name).stem}-{photo.id}{PurePosixPath(name).suffix}"
        names[photo.id] = name
    return names


def _export_rows(session: Session, statuses: Sequence[str] | None, photo_ids: Iterable[int] | None):
    query = (
        select(Photo, ReferencePerson)
        .join(ReferencePerson, ReferencePerson.id == Photo.person_id, isouter=True)
        .where(Photo.source == PhotoSource.REFERENCE)
        .order_by(Photo.id)
    )
    if statuses:
        query = query.where(Photo.review_status.in_(list(statuses)))
    if photo_ids is not None:
        query = query.where(Photo.id.in_(list(photo_ids)))
    for photo, person in session.exec(query):
        yield photo, person, boxes_at(session, photo.id, photo.boxes_version)


def export_coco(session: Session, statuses: Sequence[str] | None = EXPORT_STATUSES,
                photo_ids: Iterable[int] | None = None) -> dict[str, Any]:
    """A COCO dict of the photos in ``statuses`` (default: accepted, i.e. reviewed) with their
    current boxes."""
    images, annotations = [], []
    exported = list(_export_rows(session, statuses, photo_ids))
    names = _export_names(exported)
    for photo, person, rows in exported:
        attributes = {
            "photo_id": photo.id,
            "person": person.person_key if person else None,
            "pseudonym": person.pseudonym if person else None,
            "type": person.type_name if person else None,
            "review_status": photo.review_status,
            "boxes_version": photo.boxes_version,
            "sha256": photo.sha256,
        }
        images.append({"id": photo.id, "file_name": names[photo.id], "width": photo.width,
                       "height": photo.height, "attributes": attributes})
        for row in rows:
            if row.region not in CATEGORY_ID:
                continue
            w, h = round(row.x1 - row.x0, 2), round(row.y1 - row.y0, 2)
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": photo.id,
                "category_id": CATEGORY_ID[row.region],
                "bbox": [round(row.x0, 2), round(row.y0, 2), w, h],
                "area": round(w * h, 2),
                "iscrowd": 0,
                "segmentation": [],
                "attributes": {
                    "region": row.region,
                    "source": row.source,
                    "annotator": row.annotator,
                    "confidence": row.confidence,
                    "person": attributes["person"],
                    "type": attributes["type"],
                },
            })
    return {
        "info": {"description": "facetype reviewed region boxes", "version": "1"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }


def export_yolo(session: Session, statuses: Sequence[str] | None = EXPORT_STATUSES,
                photo_ids: Iterable[int] | None = None) -> dict[str, str]:
    """An Ultralytics-style YOLO dataset without the images: ``labels/<name>.txt`` ("class cx cy w h",
    normalized) per photo, ``train.txt`` / ``val.txt`` listing ``images/<name>`` (every
    ``YOLO_VAL_EVERY``-th photo in val), ``classes.txt`` and ``data.yaml`` (path, train, val, nc,
    names). ``export_zip(..., yolo=True)`` adds the images under ``images/``."""
    ordered = sorted(YOLO_CLASS, key=YOLO_CLASS.get)
    exported = list(_export_rows(session, statuses, photo_ids))
    names = _export_names(exported)
    files = {"classes.txt": "".join(f"{name}\n" for name in ordered)}
    splits: dict[str, list[str]] = {"train": [], "val": []}
    for n, (photo, _person, rows) in enumerate(exported):
        lines = []
        for row in sorted(rows, key=lambda r: YOLO_CLASS.get(r.region, 99)):
            if row.region not in YOLO_CLASS:
                continue
            cx = (row.x0 + row.x1) / 2 / photo.width
            cy = (row.y0 + row.y1) / 2 / photo.height
            w = (row.x1 - row.x0) / photo.width
            h = (row.y1 - row.y0) / photo.height
            lines.append(f"{YOLO_CLASS[row.region]} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
        name = PurePosixPath(names[photo.id])
        files[f"labels/{name.with_suffix('.txt')}"] = "".join(lines)
        splits["val" if n % YOLO_VAL_EVERY == YOLO_VAL_EVERY - 1 else "train"].append(f"./images/{name}")
    for split, paths in splits.items():
        files[f"{split}.txt"] = "".join(f"{p}\n" for p in paths)
    files["data.yaml"] = (
        "# Ultralytics-style dataset: images/ and labels/ beside this file (export with images to get them)\n"
        "path: .\ntrain: train.txt\nval: val.txt\n"
        f"nc: {len(ordered)}\nnames:\n" + "".join(f"  {YOLO_CLASS[n]}: {n}\n" for n in ordered)
    )
    return files


def export_zip(session: Session, store: ObjectStore | None = None, statuses: Sequence[str] | None = EXPORT_STATUSES,
               yolo: bool = False) -> bytes:
    """A ZIP of the COCO file (``annotations.json``) or the YOLO dataset, with the photos under
    ``images/<file_name>`` when ``store`` is given (the names the export uses)."""
    files: dict[str, str | bytes] = dict(export_yolo(session, statuses)) if yolo else {
        "annotations.json": json.dumps(export_coco(session, statuses), indent=1)}
    if store is not None:
        exported = list(_export_rows(session, statuses, None))
        for photo_id, name in _export_names(exported).items():
            photo = next(p for p, _person, _rows in exported if p.id == photo_id)
            files[f"images/{name}"] = store.get(photo.object_key)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def parse_yolo(text: str, width: int, height: int) -> dict[str, tuple[float, float, float, float]]:
    """One YOLO label file back to ``{region: (x0, y0, x1, y1)}`` in pixels."""
    names = {v: k for k, v in YOLO_CLASS.items()}
    out = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        cls, cx, cy, w, h = line.split()
        cx, cy, w, h = float(cx) * width, float(cy) * height, float(w) * width, float(h) * height
        out[names[int(cls)]] = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    return out


def yolo_zip(files: Mapping[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()
