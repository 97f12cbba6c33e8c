"""Load the sample project (data/sample) into the database and the store. Idempotent: what is
already there is kept, what is missing is added, so it can run at every start.

``python -m app.services.sample`` loads it from the command line.
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import select

from app.core import auth
from app.core.db import (
    ReferencePerson,
    SurveyRating,
    TypeProfile,
    migrate,
    session_scope,
)
from app.core.settings import get_settings
from app.core.storage import ObjectStore, get_store
from labeling import survey, survey_store
from labeling.photos import import_reference_photo

SAMPLE_SCALE = (1.0, 5.0)


@dataclass
class SampleLoadReport:
    types_added: int = 0
    people_added: int = 0
    ratings_added: int = 0
    people_labeled: int = 0
    photos: dict[str, int] = field(default_factory=lambda: {"added": 0, "duplicate": 0, "skipped": 0})
    skipped: list[tuple[str, str]] = field(default_factory=list)


def load_sample_project(
    url: str | None = None,
    store: ObjectStore | None = None,
    sample_dir: Path | None = None,
    progress=None,
) -> SampleLoadReport:
    """Add whatever of the sample project is missing. ``progress(done, total)`` is called per photo."""
    sample_dir = sample_dir or get_settings().sample_dir
    store = store or get_store()
    report = SampleLoadReport()
    profiles = json.loads((sample_dir / "types.json").read_text(encoding="utf-8"))
    with (sample_dir / "people.csv").open(encoding="utf-8-sig", newline="") as f:
        people = list(csv.DictReader(f))

    with session_scope(url) as session:
        known_types = set(session.exec(select(TypeProfile.name)))
        for profile in profiles:
            if profile["name"] not in known_types:
                session.add(TypeProfile(**{k: profile[k] for k in ("name", "order", "description", "share_percent")}))
                report.types_added += 1
        known_people = set(session.exec(select(ReferencePerson.person_key)))
        for row in people:
            if row["person_id"] not in known_people:
                session.add(ReferencePerson(person_key=row["person_id"], pseudonym=row["name"]))
                report.people_added += 1
        session.flush()

        if session.exec(select(SurveyRating.id).limit(1)).first() is None:
            ratings = survey.parse_ratings(
                sample_dir / "ratings.csv", SAMPLE_SCALE, known_people=[row["person_id"] for row in people]
            )
            report.ratings_added = survey_store.store_ratings(session, auth.SYSTEM, ratings, SAMPLE_SCALE,
                                                              "sample ratings.csv").n_ratings
            ordered = sorted(profiles, key=lambda p: p["order"])
            result = survey.label_people(
                ratings, [p["name"] for p in ordered], [p["share_percent"] for p in ordered]
            )
            report.people_labeled = len(survey_store.apply_labels(session, auth.SYSTEM, result.label_csv()))

    photo_files = sorted((sample_dir / "photos").glob("*/*.jpg"))
    for done, path in enumerate(photo_files, start=1):
        with session_scope(url) as session:
            person = session.exec(select(ReferencePerson).where(ReferencePerson.person_key == path.parent.name)).one()
            outcome = import_reference_photo(session, store, person, path.read_bytes(), str(path))
        report.photos[outcome.status] += 1
        if outcome.status == "skipped":
            report.skipped.append((str(path), outcome.reason))
        if progress:
            progress(done, len(photo_files))
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    migrate()
    report = load_sample_project(sample_dir=args.sample_dir)
    print(
        f"types +{report.types_added}, people +{report.people_added}, ratings +{report.ratings_added}, "
        f"labeled {report.people_labeled}, photos {report.photos}"
    )
    for path, reason in report.skipped:
        print(f"skipped {path}: {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
