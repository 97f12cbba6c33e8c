"""Reviewed boxes out as COCO JSON (and YOLO text), and COCO files from other tools back in.

Export: one COCO image per photo (``id`` is the photo id, ``file_name`` the name the photo was
imported under, prefixed with the person's key only where two photos share a name) with the person
and type as attributes, one annotation per region box (pixels rounded to 0.01), categories as in
:mod:`labeling.autolabel` (face 1, tzone 2, jaw 3). Each image records the ``boxes_version`` it
was exported at, so an import of the same file, edited elsewhere, is version-checked against
saves made since the export. ``export_zip`` packs the JSON with the image files; ``export_yolo``
writes an Ultralytics-style dataset (``data.yaml`` with path, train/val lists, nc and names).
Only reference photos are exported or imported: visitors' photos never reach these files.

Import: images are matched to photos by ``attributes.photo_id``, else by ``file_name`` (the
object key, or its file name, which holds the photo's hash), else by ``id``; regions by category
*name*, so files whose tools renumbered the categories still work. Every change goes through
:func:`labeling.annotations.save_boxes` (the same version check and audit trail as the canvas).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Iterable, Mapping, Sequence

from sqlmodel import Session, select

from app.core.auth import Account, require
from app.core.db import Photo, ReferencePerson, RegionBox
from app.core.storage import ObjectStore
from app.core.vocabulary import REGIONS
from labeling.annotations import Conflict, AnnotationError, box_map, boxes_at, same_box, save_boxes
from labeling.autolabel import CATEGORIES

CATEGORY_ID = {c["name"]: c["id"] for c in CATEGORIES}
#: YOLO class index per region (0-based, in category order).
YOLO_CLASS = {name: cid - 1 for name, cid in CATEGORY_ID.items()}
EXPORT_STATUSES = ("accepted",)
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
        .where(Photo.source == "reference")
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


# ----------------------------------------------------------------------------- import


class CocoFormatError(ValueError):
    """The file is not a COCO detection file this importer can read."""


@dataclass
class ImageOutcome:
    file_name: str
    status: str  # updated, unchanged, conflict, unmatched, invalid
    photo_id: int | None = None
    message: str = ""
    version: int | None = None
    conflict: Conflict | None = None


@dataclass
class CocoImportReport:
    outcomes: list[ImageOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def summary(self) -> dict[str, int]:
        return {s: self.count(s) for s in ("updated", "unchanged", "conflict", "unmatched", "invalid")}


def load_coco(data: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(data, Mapping):
        coco = dict(data)
    else:
        try:
            coco = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CocoFormatError(f"not a JSON file: {exc}") from None
    if not isinstance(coco, dict):
        raise CocoFormatError("a COCO file is a JSON object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise CocoFormatError(f"the COCO file has no {key!r} list")
    return coco


def _match_photo(session: Session, image: Mapping[str, Any], by_key: dict, by_name: dict) -> Photo | None:
    attributes = image.get("attributes") or {}
    if isinstance(attributes, Mapping) and attributes.get("photo_id") is not None:
        photo = session.get(Photo, int(attributes["photo_id"]))
        if photo is not None:
            return photo
    file_name = str(image.get("file_name", ""))
    if file_name in by_key:
        return by_key[file_name]
    name = PurePosixPath(file_name.replace("\\", "/")).name
    if name in by_name:
        return by_name[name]
    return None


def import_coco(session: Session, data: bytes | str | Mapping[str, Any], account: Account,
                decision: str = "save", use_file_versions: bool = True,
                missing: str = "keep") -> CocoImportReport:
    """Update photos' boxes from a COCO file, one version-checked save per changed photo, saved as
    ``account`` (which needs the ``import_annotations`` role).

    ``use_file_versions``: an image that records the ``boxes_version`` it was exported at is
    saved against that version, so a save made since the export is a conflict (reported, not
    overwritten); images without it are saved against the current version. ``missing``:
    ``keep`` keeps regions the file has no box for, ``delete`` drops them. Images whose boxes
    equal the current ones are left alone (``unchanged``)."""
    require(account, "import_annotations")
    annotator = account.name
    coco = load_coco(data)
    category_region = {}
    for category in coco["categories"]:
        name = str(category.get("name", "")).strip().lower().replace("-", "").replace("_", "")
        name = {"tzone": "tzone", "t zone": "tzone"}.get(name, name)
        if name in REGIONS:
            category_region[category.get("id")] = name
    if not category_region:
        raise CocoFormatError(f"no category of the file is a region ({', '.join(REGIONS)})")
    photos = list(session.exec(select(Photo).where(Photo.source == "reference")))
    by_key = {p.object_key: p for p in photos}
    by_name = {PurePosixPath(p.object_key).name: p for p in photos}
    originals = Counter(p.original_name for p in photos if p.original_name)
    by_name.update({p.original_name: p for p in photos
                    if p.original_name and originals[p.original_name] == 1 and p.original_name not in by_name})
    annotations_by_image: dict[Any, list] = {}
    for ann in coco["annotations"]:
        annotations_by_image.setdefault(ann.get("image_id"), []).append(ann)

    report = CocoImportReport()
    for image in coco["images"]:
        file_name = str(image.get("file_name", image.get("id")))
        photo = _match_photo(session, image, by_key, by_name)
        if photo is None:
            report.outcomes.append(ImageOutcome(file_name, "unmatched", message="no stored photo has this file name or id"))
            continue
        boxes, problems = {}, []
        sx = photo.width / float(image.get("width") or photo.width)
        sy = photo.height / float(image.get("height") or photo.height)
        for ann in annotations_by_image.get(image.get("id"), []):
            region = category_region.get(ann.get("category_id"))
            if region is None:
                continue
            try:
                x, y, w, h = (float(v) for v in ann["bbox"])
            except (KeyError, TypeError, ValueError):
                problems.append(f"annotation {ann.get('id')} has no valid bbox")
                continue
            if region in boxes:
                problems.append(f"two {region} boxes")
                continue
            boxes[region] = (x * sx, y * sy, (x + w) * sx, (y + h) * sy)
        if problems:
            report.outcomes.append(ImageOutcome(file_name, "invalid", photo.id, "; ".join(problems)))
            continue
        session.refresh(photo)
        attributes = image.get("attributes") or {}
        expected = photo.boxes_version
        if use_file_versions and isinstance(attributes, Mapping) and attributes.get("boxes_version") is not None:
            expected = int(attributes["boxes_version"])
        current = box_map(boxes_at(session, photo.id, expected))
        merged = dict(boxes) if missing == "delete" else {**current, **boxes}
        if not boxes:
            report.outcomes.append(ImageOutcome(file_name, "unchanged", photo.id, "no region boxes in the file", expected))
            continue
        # Boxes equal to the version the file was made from carry no edit: nothing to import.
        if set(merged) == set(current) and all(
            same_box(merged[r], current[r]) for r in merged
        ):
            report.outcomes.append(ImageOutcome(file_name, "unchanged", photo.id, version=expected))
            continue
        try:
            result = save_boxes(session, photo.id, expected, merged, annotator, decision, action=f"import_{decision}")
        except AnnotationError as exc:
            report.outcomes.append(ImageOutcome(file_name, "invalid", photo.id, str(exc)))
            continue
        if isinstance(result, Conflict):
            who = f" by {result.theirs_annotator}" if result.theirs_annotator else ""
            report.outcomes.append(ImageOutcome(
                file_name, "conflict", photo.id,
                f"saved since the export (version {result.current_version}{who}); not overwritten",
                result.current_version, result))
        else:
            report.outcomes.append(ImageOutcome(file_name, "updated", photo.id, version=result.version))
    return report


def current_box_map(session: Session, photo_id: int) -> dict[str, tuple[float, float, float, float]]:
    photo = session.get(Photo, photo_id)
    return box_map(session.exec(select(RegionBox).where(
        RegionBox.photo_id == photo_id, RegionBox.version == photo.boxes_version)))
