"""Training data built from the database: reference photos, their boxes and their person's type.

Rules:

* Only photos of reference people with a type are used; photos whose review status is
  ``rejected`` are left out.
* Boxes: the newest box version that holds a human box wins (a human review beats any later
  automatic re-run); otherwise the photo's current version. A photo needs all three regions.
* The *landmark boxes* of a photo are its newest all-automatic version (what the landmark
  locator produced at intake); they stand in for the gate's regions at evaluation time.
* Splits are by person, never by photo, stratified by type.
* Augmentations move boxes with the pixels (crop, scale, flip); colour jitter leaves them.

``synthetic_labels`` is True when the people are the sample project's synthetic ones; every
metric computed on such data must say so (their types follow a rule planted in the synthetic
faces, not real opinions).
"""

from __future__ import annotations

import csv
import functools
import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from sqlmodel import select

from app.core.db import Photo, ReferencePerson, RegionBox, TypeProfile, session_scope
from app.core.settings import get_settings
from app.core.vocabulary import REGIONS, TYPES, BoxSource, PhotoSource, ReviewStatus
from models.intake import decode_image
from models.transforms import resize_max_side, scale_boxes


@dataclass(frozen=True)
class Sample:
    photo_id: int
    object_key: str
    person_id: int
    person_key: str
    type_index: int
    #: region -> [x0, y0, x1, y1] in original image pixels (the training target)
    boxes: dict
    box_version: int
    box_source: str  # BoxSource.HUMAN when any box of the chosen version is human, else AUTO
    #: region -> box from the locator (newest all-auto version); the gate's regions at eval time
    landmark_boxes: dict = field(default_factory=dict)
    width: int = 0
    height: int = 0
    #: the person's mean survey score (what the labels were ranked by), when known
    survey_score: float | None = None


@dataclass
class DatasetSnapshot:
    samples: list
    synthetic_labels: bool
    skipped: dict

    def describe(self) -> dict:
        """JSON for ModelVersion.data_snapshot: which photos and which box versions."""
        return {
            "n_photos": len(self.samples),
            "n_people": len({s.person_id for s in self.samples}),
            "photos": [
                {"id": s.photo_id, "person": s.person_key, "boxes_version": s.box_version,
                 "box_source": s.box_source}
                for s in self.samples
            ],
            "type_counts": type_counts(self.samples),
            "skipped": self.skipped,
            "synthetic_labels": self.synthetic_labels,
        }


@functools.cache
def sample_person_keys(sample_dir: Path | None = None) -> frozenset[str]:
    """The ids of the sample project's synthetic reference people."""
    with ((sample_dir or get_settings().sample_dir) / "people.csv").open(encoding="utf-8-sig", newline="") as f:
        return frozenset(row["person_id"] for row in csv.DictReader(f))


def is_sample_person(person_key: str) -> bool:
    """True for the sample project's people, whose types are made up."""
    return person_key in sample_person_keys()


def sample_ceiling(sample_dir: Path | None = None) -> dict:
    """The sample project's ceiling (``ceiling_accuracy``, ``ceiling_within_one``): what its hidden
    rule reaches on the true traits; empty when the sample has none."""
    path = (sample_dir or get_settings().sample_dir) / "ceiling.json"
    if not path.is_file():
        return {}
    ceiling = json.loads(path.read_text(encoding="utf-8"))
    return {k: ceiling[k] for k in ("ceiling_accuracy", "ceiling_within_one") if k in ceiling}


def survey_type_shares(url: str | None = None) -> list[float] | None:
    """The survey's type shares (percent, TYPES order) from the type profiles; None when unknown."""
    with session_scope(url) as session:
        shares = {p.name: p.share_percent for p in session.exec(select(TypeProfile))}
    if set(shares) != set(TYPES) or any(not v or v <= 0 for v in shares.values()):
        return None
    return [float(shares[t]) for t in TYPES]


def labels_are_synthetic(person_keys: Iterable[str]) -> bool:
    """True when every person is one of the sample project's synthetic people (made-up types)."""
    keys = list(person_keys)
    return bool(keys) and all(is_sample_person(k) for k in keys)


def type_counts(samples: Sequence[Sample]) -> dict:
    counts = {t: 0 for t in TYPES}
    for s in samples:
        counts[TYPES[s.type_index]] += 1
    return counts


def _boxes_by_version(rows: Sequence[RegionBox]) -> dict[int, list[RegionBox]]:
    out: dict[int, list[RegionBox]] = defaultdict(list)
    for row in rows:
        out[row.version].append(row)
    return out


def choose_boxes(rows: Sequence[RegionBox], current_version: int) -> tuple[int, str, dict] | None:
    """(version, source, {region: box}) for the training target, or None when incomplete."""
    versions = _boxes_by_version(rows)
    human = [v for v, bs in versions.items() if any(b.source == BoxSource.HUMAN for b in bs)]
    if human:
        version = max(human)
    elif current_version in versions:
        version = current_version
    elif versions:
        version = max(versions)
    else:
        return None
    chosen = {b.region: b.as_list() for b in versions[version] if b.region in REGIONS}
    if set(chosen) != set(REGIONS):
        return None
    source = BoxSource.HUMAN if version in human else BoxSource.AUTO
    return version, source, chosen


def _landmark_boxes(rows: Sequence[RegionBox]) -> dict:
    versions = _boxes_by_version(rows)
    auto = [v for v, bs in versions.items() if bs and all(b.source == BoxSource.AUTO for b in bs)]
    if not auto:
        return {}
    return {b.region: b.as_list() for b in versions[max(auto)] if b.region in REGIONS}


def load_samples(url: str | None = None, synthetic: bool | None = None) -> DatasetSnapshot:
    """All usable reference photos from the database at ``url`` (default: the app's)."""
    skipped = {"rejected": 0, "no_type": 0, "incomplete_boxes": 0}
    samples: list[Sample] = []
    with session_scope(url) as session:
        people = {p.id: p for p in session.exec(select(ReferencePerson))}
        photos = session.exec(
            select(Photo).where(Photo.source == PhotoSource.REFERENCE).order_by(Photo.id)
        ).all()
        ids = [p.id for p in photos]
        rows_by_photo: dict[int, list[RegionBox]] = defaultdict(list)
        if ids:
            for row in session.exec(select(RegionBox).where(RegionBox.photo_id.in_(ids))):
                rows_by_photo[row.photo_id].append(row)
        for photo in photos:
            person = people.get(photo.person_id)
            if photo.review_status == ReviewStatus.REJECTED:
                skipped["rejected"] += 1
                continue
            if person is None or person.type_name not in TYPES:
                skipped["no_type"] += 1
                continue
            rows = rows_by_photo.get(photo.id, [])
            chosen = choose_boxes(rows, photo.boxes_version)
            if chosen is None:
                skipped["incomplete_boxes"] += 1
                continue
            version, source, boxes = chosen
            landmarks = _landmark_boxes(rows)
            if set(landmarks) != set(REGIONS):
                landmarks = boxes
            samples.append(
                Sample(
                    photo_id=photo.id,
                    object_key=photo.object_key,
                    person_id=person.id,
                    person_key=person.person_key,
                    type_index=TYPES.index(person.type_name),
                    boxes=boxes,
                    box_version=version,
                    box_source=source,
                    landmark_boxes=landmarks,
                    width=photo.width,
                    height=photo.height,
                    survey_score=person.survey_score,
                )
            )
    if synthetic is None:
        synthetic = labels_are_synthetic({s.person_key for s in samples})
    return DatasetSnapshot(samples=samples, synthetic_labels=bool(synthetic), skipped=skipped)


# ----------------------------------------------------------------------------- splits


def _people_by_type(samples: Sequence[Sample]) -> dict[int, list[int]]:
    by_type: dict[int, set[int]] = defaultdict(set)
    for s in samples:
        by_type[s.type_index].add(s.person_id)
    return {t: sorted(p) for t, p in sorted(by_type.items())}


def person_folds(samples: Sequence[Sample], k: int, seed: int = 0) -> list[set[int]]:
    """Person ids dealt into ``k`` folds, type by type (stratified), shuffled with ``seed``."""
    if k < 2:
        raise ValueError("k must be at least 2")
    rng = random.Random(seed)
    folds: list[set[int]] = [set() for _ in range(k)]
    offset = 0
    for _t, people in _people_by_type(samples).items():
        people = list(people)
        rng.shuffle(people)
        for i, pid in enumerate(people):
            folds[(offset + i) % k].add(pid)
        offset += len(people)
    return folds


def split_by_person(
    samples: Sequence[Sample], val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """(train, held-out) with every person's photos on one side only."""
    people = {s.person_id for s in samples}
    if len(people) < 2:
        raise ValueError("need at least two people to hold some out")
    k = max(2, round(1 / max(min(val_fraction, 0.5), 1e-3)))
    held = person_folds(samples, k, seed)[0]
    if not held:
        held = {sorted(people)[0]}
    train = [s for s in samples if s.person_id not in held]
    val = [s for s in samples if s.person_id in held]
    return train, val


def kfold_by_person(samples: Sequence[Sample], k: int = 5, seed: int = 0):
    """Yield (fold, train, held-out) for k-fold cross-validation by person."""
    for i, held in enumerate(person_folds(samples, k, seed)):
        yield i, [s for s in samples if s.person_id not in held], [s for s in samples if s.person_id in held]


class ImageBank:
    """Decoded, downscaled images per photo, loaded once from the object store."""

    def __init__(self, store, max_side: int = 640):
        self.store = store
        self.max_side = max_side
        self._images: dict[int, tuple[np.ndarray, float]] = {}

    def load(self, samples: Sequence[Sample], progress: Callable[[int, int], None] | None = None):
        for i, s in enumerate(samples):
            self.image(s)
            if progress:
                progress(i + 1, len(samples))
        return self

    def image(self, sample: Sample) -> tuple[np.ndarray, float]:
        if sample.photo_id not in self._images:
            image = decode_image(self.store.get(sample.object_key))
            self._images[sample.photo_id] = resize_max_side(image, self.max_side)
        return self._images[sample.photo_id]

    def get(self, sample: Sample, landmarks: bool = False) -> tuple[np.ndarray, dict]:
        image, scale = self.image(sample)
        return image, scale_boxes(sample.landmark_boxes if landmarks else sample.boxes, scale)
