"""COCO files from other labeling tools (or edited exports of :mod:`labeling.coco_export`) back in.

Images are matched to photos by ``attributes.photo_id``, else by ``file_name`` (the object key, or
its file name, which holds the photo's hash), else by ``id``; regions by category *name*, so files
whose tools renumbered the categories still work. An image exported with its ``boxes_version`` is
version-checked against saves made since the export. Every change goes through
:func:`labeling.annotations.save_boxes` (the same version check and audit trail as the canvas).
Only reference photos are imported: visitors' photos are never matched.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Mapping

from sqlmodel import Session, select

from app.core.auth import Account, require
from app.core.db import Photo, RegionBox
from app.core.vocabulary import REGIONS
from labeling.annotations import (
    EDGE_PX,
    AnnotationError,
    Conflict,
    PhotoNotAvailable,
    box_map,
    boxes_at,
    same_box,
    save_boxes,
    team_photo,
    team_photo_clause,
)


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
    """The COCO dict, with its shape checked: :class:`CocoFormatError` naming the line (bad JSON)
    or the field (``images[3]``) that is wrong."""
    if isinstance(data, Mapping):
        coco = dict(data)
    else:
        try:
            coco = json.loads(data)
        except json.JSONDecodeError as exc:
            raise CocoFormatError(f"not a JSON file: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise CocoFormatError(f"not a JSON file: {exc}") from None
        except RecursionError:
            raise CocoFormatError("not a COCO file: the JSON is nested too deeply") from None
    if not isinstance(coco, dict):
        raise CocoFormatError("a COCO file is a JSON object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise CocoFormatError(f"the COCO file has no {key!r} list")
        for index, item in enumerate(coco[key]):
            if not isinstance(item, dict):
                raise CocoFormatError(f"{key}[{index}] is not a JSON object")
            if key != "categories" and not isinstance(item.get("id"), (int, str, type(None))):
                raise CocoFormatError(f"{key}[{index}].id must be a number or a string")
    for index, ann in enumerate(coco["annotations"]):
        if not isinstance(ann.get("image_id"), (int, str)):
            raise CocoFormatError(f"annotations[{index}].image_id must be a number or a string")
    return coco


#: The largest whole number a photo id or box version can be (a PostgreSQL INTEGER).
MAX_WHOLE = 2**31 - 1


def _number(value: Any) -> float | None:
    """A finite JSON number (not a bool, not NaN or infinite, not an integer too large for a
    float), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _whole(value: Any) -> int | None:
    """A whole number a photo id or box version can be, else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_WHOLE else None


def _image_size(image: Mapping[str, Any], where: str, photo: Photo) -> tuple[float, float]:
    """The image's width and height in the file (the photo's when the file has none)."""
    size = []
    for name, own in (("width", photo.width), ("height", photo.height)):
        if image.get(name) is None:
            size.append(float(own))
            continue
        value = _number(image.get(name))
        if value is None or value <= 0:
            raise CocoFormatError(f"{where}.{name} must be a positive number, not {image.get(name)!r}")
        size.append(value)
    return size[0], size[1]


def _bbox(ann: Mapping[str, Any], where: str, width: float, height: float) -> tuple[float, float, float, float]:
    """``[x, y, w, h]`` checked: four finite numbers, a box of positive size inside the image."""
    raw = ann.get("bbox")
    if not isinstance(raw, list) or len(raw) != 4:
        raise CocoFormatError(f"{where}.bbox must be a list [x, y, width, height]")
    values = [_number(v) for v in raw]
    if any(v is None for v in values):
        raise CocoFormatError(f"{where}.bbox must hold four finite numbers, not {raw!r}")
    x, y, w, h = values
    if w <= 0 or h <= 0:
        raise CocoFormatError(f"{where}.bbox has no area (width {w:g}, height {h:g})")
    tol = EDGE_PX
    if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
        raise CocoFormatError(f"{where}.bbox {raw!r} lies outside the {width:g}×{height:g} image")
    return x, y, w, h


def _match_photo(session: Session, image: Mapping[str, Any], where: str, by_key: dict, by_name: dict) -> Photo | None:
    """The team photo an image names (only photos team tools may use: see
    :func:`labeling.annotations.team_photo`)."""
    attributes = {} if image.get("attributes") is None else image.get("attributes")
    if not isinstance(attributes, Mapping):
        raise CocoFormatError(f"{where}.attributes must be a JSON object")
    if attributes.get("photo_id") is not None:
        photo_id = _whole(attributes.get("photo_id"))
        if photo_id is None:
            raise CocoFormatError(f"{where}.attributes.photo_id must be a whole number")
        try:
            return team_photo(session, photo_id)
        except PhotoNotAvailable:
            pass
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
    equal the current ones are left alone (``unchanged``).

    Only photos team tools may use are matched. Every box is checked (finite, of positive size,
    inside the image); an image with a bad box or field is reported ``invalid`` with the field,
    and a photo gets at most one new version per file (a repeated image is ``invalid``)."""
    require(account, "import_annotations")
    annotator = account.name
    coco = load_coco(data)
    category_region = {}
    for category in coco["categories"]:
        name = str(category.get("name", "")).strip().lower().replace("-", "").replace("_", "")
        name = {"tzone": "tzone", "t zone": "tzone"}.get(name, name)
        if name in REGIONS and isinstance(category.get("id"), (int, str)):
            category_region[category.get("id")] = name
    if not category_region:
        raise CocoFormatError(f"no category of the file is a region ({', '.join(REGIONS)})")
    photos = list(session.exec(select(Photo).where(team_photo_clause())))
    by_key = {p.object_key: p for p in photos}
    by_name = {PurePosixPath(p.object_key).name: p for p in photos}
    originals = Counter(p.original_name for p in photos if p.original_name)
    by_name.update({p.original_name: p for p in photos
                    if p.original_name and originals[p.original_name] == 1 and p.original_name not in by_name})
    annotations_by_image: dict[Any, list] = {}
    for index, ann in enumerate(coco["annotations"]):
        annotations_by_image.setdefault(ann.get("image_id"), []).append((index, ann))

    report = CocoImportReport()
    seen: dict[int, int] = {}
    for index, image in enumerate(coco["images"]):
        where = f"images[{index}]"
        file_name = str(image.get("file_name", image.get("id")))
        try:
            photo = _match_photo(session, image, where, by_key, by_name)
        except CocoFormatError as exc:
            report.outcomes.append(ImageOutcome(file_name, "invalid", message=str(exc)))
            continue
        if photo is None:
            report.outcomes.append(ImageOutcome(file_name, "unmatched", message="no stored photo has this file name or id"))
            continue
        if photo.id in seen:
            report.outcomes.append(ImageOutcome(
                file_name, "invalid", photo.id,
                f"{where} is photo {photo.id} again (already images[{seen[photo.id]}]); one version per photo per file"))
            continue
        seen[photo.id] = index
        boxes, problems = {}, []
        try:
            width, height = _image_size(image, where, photo)
        except CocoFormatError as exc:
            report.outcomes.append(ImageOutcome(file_name, "invalid", photo.id, str(exc)))
            continue
        sx, sy = photo.width / width, photo.height / height
        for ann_index, ann in annotations_by_image.get(image.get("id"), []):
            region = category_region.get(ann.get("category_id")) if isinstance(ann.get("category_id"), (int, str)) else None
            if region is None:
                continue
            try:
                x, y, w, h = _bbox(ann, f"annotations[{ann_index}]", width, height)
            except CocoFormatError as exc:
                problems.append(str(exc))
                continue
            if region in boxes:
                problems.append(f"two {region} boxes")
                continue
            boxes[region] = (max(0.0, x * sx), max(0.0, y * sy), min(photo.width, (x + w) * sx),
                             min(photo.height, (y + h) * sy))
        if problems:
            report.outcomes.append(ImageOutcome(file_name, "invalid", photo.id, "; ".join(problems)))
            continue
        session.refresh(photo)
        attributes = image.get("attributes") or {}
        expected = photo.boxes_version
        if use_file_versions and attributes.get("boxes_version") is not None:
            expected = _whole(attributes.get("boxes_version"))
            if expected is None:
                report.outcomes.append(ImageOutcome(file_name, "invalid", photo.id,
                                                    f"{where}.attributes.boxes_version must be a whole number"))
                continue
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
