"""Review queue, version-checked saves, conflicts, audit trail and quality figures (SQLite and
PostgreSQL), including 100 concurrent saves on PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlmodel import func, select

from app.core.db import BoxAudit, Photo, ReferencePerson, RegionBox, session_scope
from labeling import annotations as ann
from labeling import quality
from labeling import queue

AUTO = {"face": (100.0, 80.0, 500.0, 560.0), "tzone": (200.0, 200.0, 400.0, 380.0), "jaw": (150.0, 380.0, 450.0, 580.0)}


def add_photo(session, person_key="p01", confidences=(0.9, 0.8, 0.95), width=640, height=640, boxes=AUTO,
              object_key=None) -> int:
    """A reference photo with auto boxes as version 1 (no face gate; for tests)."""
    person = session.exec(select(ReferencePerson).where(ReferencePerson.person_key == person_key)).first()
    if person is None:
        person = ReferencePerson(person_key=person_key, pseudonym=f"Person {person_key}")
        session.add(person)
        session.flush()
    n = session.exec(select(func.count()).select_from(Photo)).one()
    digest = f"{n + 1:08x}" + "ab" * 28
    photo = Photo(object_key=object_key or f"reference/{person.id}/{digest[:32]}.jpg", size_bytes=1, sha256=digest,
                  width=width, height=height, source="reference", person_id=person.id, boxes_version=1)
    session.add(photo)
    session.flush()
    for (region, box), conf in zip(boxes.items(), confidences):
        session.add(RegionBox(photo_id=photo.id, version=1, region=region, x0=box[0], y0=box[1], x1=box[2], y1=box[3],
                              source="auto", confidence=conf))
    session.flush()
    return int(photo.id)


def moved(boxes, region, dx, dy):
    out = dict(boxes)
    x0, y0, x1, y1 = out[region]
    out[region] = (x0 + dx, y0 + dy, x1 + dx, y1 + dy)
    return out


def test_queue_lowest_confidence_first_with_filters(database_url):
    with session_scope(database_url) as s:
        a = add_photo(s, "p01", (0.9, 0.9, 0.9))
        b = add_photo(s, "p01", (0.9, 0.3, 0.9))
        c = add_photo(s, "p02", (0.6, 0.7, 0.8))
        d = add_photo(s, "p02", ())  # no boxes at all: most urgent
    with session_scope(database_url) as s:
        assert [q.photo_id for q in queue.review_queue(s)] == [d, b, c, a]
        assert queue.review_queue(s)[1].min_confidence == pytest.approx(0.3)
        p2 = s.exec(select(ReferencePerson.id).where(ReferencePerson.person_key == "p02")).one()
        assert [q.photo_id for q in queue.review_queue(s, person_id=p2)] == [d, c]
        assert queue.queue_count(s) == 4
        assert isinstance(ann.save_boxes(s, b, 1, AUTO, "ann", "accept"), ann.SaveResult)
        assert isinstance(ann.save_boxes(s, c, 1, AUTO, "bob", "flag", "eyes closed?"), ann.SaveResult)
    with session_scope(database_url) as s:
        assert [q.photo_id for q in queue.review_queue(s)] == [d, a]
        assert [q.photo_id for q in queue.review_queue(s, statuses=("flagged",))] == [c]
        assert [q.photo_id for q in queue.review_queue(s, statuses=queue.REVIEW_STATUSES, annotator="ann")] == [b]
        # Second review: accepted photos this annotator did not review yet.
        assert [q.photo_id for q in queue.review_queue(s, ("accepted",), exclude_annotator="bob")] == [b]
        assert queue.review_queue(s, ("accepted",), exclude_annotator="ann") == []
        assert queue.status_counts(s) == {"pending": 2, "flagged": 1, "accepted": 1, "rejected": 0}
        assert queue.annotators(s) == ["ann", "bob"]


def test_accept_writes_new_human_version_and_audit(database_url):
    with session_scope(database_url) as s:
        pid = add_photo(s)
    new = moved(AUTO, "jaw", 12.5, -4.0)
    with session_scope(database_url) as s:
        result = ann.save_boxes(s, pid, 1, new, "ann", "accept")
    assert isinstance(result, ann.SaveResult) and result.version == 2 and result.review_status == "accepted"
    with session_scope(database_url) as s:
        photo = s.get(Photo, pid)
        assert photo.boxes_version == 2 and photo.review_status == "accepted"
        v1 = ann.boxes_at(s, pid, 1)
        v2 = ann.boxes_at(s, pid, 2)
        assert {r.source for r in v1} == {"auto"}  # history is kept
        assert {r.source for r in v2} == {"human"} and {r.annotator for r in v2} == {"ann"}
        assert ann.box_map(v2) == new
        (audit,) = queue.audit_trail(s, pid)
        assert (audit.annotator, audit.action, audit.from_version, audit.to_version) == ("ann", "accept", 1, 2)
        assert audit.before["boxes"]["jaw"]["box"] == list(AUTO["jaw"])
        assert audit.after["boxes"]["jaw"]["box"] == list(new["jaw"])
        assert audit.before["review_status"] == "pending" and audit.after["review_status"] == "accepted"
        assert audit.at is not None


def test_flag_keeps_untouched_auto_boxes_and_reject_needs_reason(database_url):
    with session_scope(database_url) as s:
        pid = add_photo(s)
    with session_scope(database_url) as s:
        result = ann.save_boxes(s, pid, 1, moved(AUTO, "face", 3, 0), "ann", "flag", "is the chin cut?")
        rows = {r.region: r for r in ann.boxes_at(s, pid, result.version)}
        assert rows["face"].source == "human" and rows["jaw"].source == "auto" and rows["jaw"].confidence == 0.95
        assert s.get(Photo, pid).review_note == "is the chin cut?"
        with pytest.raises(ann.AnnotationError):
            ann.save_boxes(s, pid, 2, AUTO, "ann", "reject", "  ")
        with pytest.raises(ann.AnnotationError):
            ann.save_boxes(s, pid, 2, AUTO, "", "accept")
        with pytest.raises(ann.AnnotationError):
            ann.save_boxes(s, pid, 2, {"nose": (0, 0, 1, 1)}, "ann", "accept")
        rejected = ann.save_boxes(s, pid, 2, AUTO, "ann", "reject", "blurred")
        assert rejected.review_status == "rejected"
        # A deleted region (the tzone) is absent from the new version.
        no_tzone = {k: v for k, v in AUTO.items() if k != "tzone"}
        draft = ann.save_boxes(s, pid, 3, no_tzone, "ann", "save")
        assert set(draft.boxes) == {"face", "jaw"} and draft.review_status == "rejected"


def test_second_session_gets_conflict_and_nothing_is_lost(database_url):
    with session_scope(database_url) as s:
        pid = add_photo(s)
    # Two annotators open the photo at version 1.
    with session_scope(database_url) as s:
        opened_a = s.get(Photo, pid).boxes_version
    with session_scope(database_url) as s:
        opened_b = s.get(Photo, pid).boxes_version
    mine_a = moved(AUTO, "jaw", 10, 0)
    mine_b = moved(AUTO, "tzone", 0, 7)
    with session_scope(database_url) as s:
        first = ann.save_boxes(s, pid, opened_a, mine_a, "ann", "accept")
    with session_scope(database_url) as s:
        second = ann.save_boxes(s, pid, opened_b, mine_b, "bob", "accept")
    assert isinstance(first, ann.SaveResult)
    assert isinstance(second, ann.Conflict) and not second.ok
    assert (second.expected_version, second.current_version) == (1, 2)
    assert second.mine == mine_b and second.theirs == mine_a  # both versions shown
    assert second.theirs_annotator == "ann" and second.theirs_status == "accepted"
    assert set(second.differing_regions()) == {"jaw", "tzone"}
    with session_scope(database_url) as s:
        assert s.get(Photo, pid).boxes_version == 2  # not overwritten
        assert len(queue.audit_trail(s, pid)) == 1
    # Bob chooses per region: his T-zone, Ann's jaw.
    with session_scope(database_url) as s:
        resolved = ann.resolve_conflict(s, second, {"tzone": "mine", "jaw": "theirs", "face": "theirs"}, "bob")
    assert isinstance(resolved, ann.SaveResult) and resolved.version == 3
    assert resolved.boxes == {**mine_a, "tzone": mine_b["tzone"]}
    with session_scope(database_url) as s:
        trail = queue.audit_trail(s, pid)
        assert [(t.annotator, t.from_version, t.to_version) for t in trail] == [("bob", 2, 3), ("ann", 1, 2)]
        assert trail[0].action == "resolve_accept"
        # Every version is still there.
        assert ann.box_map(ann.boxes_at(s, pid, 2)) == mine_a


def test_stale_photo_object_in_session_does_not_bypass_the_check(database_url):
    with session_scope(database_url) as s:
        pid = add_photo(s)
    with session_scope(database_url) as s1:
        s1.get(Photo, pid)  # loaded at version 1 and kept in s1's identity map
        with session_scope(database_url) as s2:
            assert isinstance(ann.save_boxes(s2, pid, 1, AUTO, "ann", "accept"), ann.SaveResult)
        again = ann.save_boxes(s1, pid, 1, moved(AUTO, "face", 1, 1), "bob", "accept")
        assert isinstance(again, ann.Conflict) and again.current_version == 2


def test_hundred_concurrent_saves_on_postgresql(postgres_server):
    from app.core.db import get_engine, migrate

    url = postgres_server.create_database("concurrent_saves")
    migrate(url)
    with session_scope(url) as s:
        pid = add_photo(s)
    n = 100
    barrier = threading.Barrier(20)
    results: list = [None] * n
    errors: list = []

    def worker(i):
        try:
            with session_scope(url) as s:
                version = s.exec(select(Photo.boxes_version).where(Photo.id == pid)).one()
            if i < 20:
                barrier.wait(timeout=30)  # the first 20 all start from the same version
            boxes = moved(AUTO, "jaw", float(i), float(i) / 2)
            with session_scope(url) as s:
                results[i] = (boxes, ann.save_boxes(s, pid, version, boxes, f"annotator{i % 7}", "accept"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    saved = [(boxes, r) for boxes, r in results if isinstance(r, ann.SaveResult)]
    conflicts = [r for _, r in results if isinstance(r, ann.Conflict)]
    assert len(saved) + len(conflicts) == n
    assert len(saved) >= 1 and len(conflicts) >= 1
    versions = sorted(r.version for _, r in saved)
    assert versions == list(range(2, 2 + len(saved)))  # each success is its own new version
    for c in conflicts:
        assert c.current_version > c.expected_version
    with session_scope(url) as s:
        assert s.get(Photo, pid).boxes_version == 1 + len(saved)
        audits = list(s.exec(select(BoxAudit).where(BoxAudit.photo_id == pid)))
        assert len(audits) == len(saved)  # exactly one audit entry per successful save
        assert sorted(a.to_version for a in audits) == versions
        for boxes, r in saved:  # nothing lost: every successful save is a complete version
            assert ann.box_map(ann.boxes_at(s, pid, r.version)) == boxes
    get_engine(url).dispose()


def test_quality_figures(database_url):
    with session_scope(database_url) as s:
        p1 = add_photo(s)
        p2 = add_photo(s)
    with session_scope(database_url) as s:
        ann.save_boxes(s, p1, 1, moved(AUTO, "jaw", 30, 0), "ann", "accept")  # jaw moved 30 px
        ann.save_boxes(s, p2, 1, AUTO, "ann", "accept")
        ann.save_boxes(s, p1, 2, moved(AUTO, "jaw", 60, 0), "bob", "accept")  # second review
    with session_scope(database_url) as s:
        trail = queue.audit_trail(s, p1)
        assert trail[0].action == "second_review"
        iou = quality.auto_vs_human_iou(s)
        assert iou["face"]["photos"] == 2 and iou["face"]["mean_iou"] == pytest.approx(1.0)
        jaw_iou_60 = (240 * 200) / (360 * 200)  # 300 wide boxes shifted by 60
        assert iou["jaw"]["mean_iou"] == pytest.approx((jaw_iou_60 + 1.0) / 2)
        stats = {row["annotator"]: row for row in quality.annotator_stats(s)}
        assert stats["ann"]["photos"] == 2 and stats["ann"]["accepted"] == 2
        # ann moved the jaw by 30 px on one of six boxes: mean corner shift 30*2/4 / 6
        assert stats["ann"]["mean_shift_px"] == pytest.approx(15.0 / 6)
        assert stats["bob"]["max_shift_px"] == pytest.approx(15.0) and stats["bob"]["boxes_moved"] == 1
        agreement = quality.annotator_agreement(s)
        assert agreement.photos == 1 and agreement.decision_agreement == 1.0
        assert agreement.per_region["jaw"]["mean_iou"] == pytest.approx((270 * 200) / (330 * 200))
        assert agreement.per_region["face"]["mean_iou"] == pytest.approx(1.0)


def test_accept_needs_every_region_or_a_not_visible_mark(database_url):
    """Accept with a deleted box is refused in the service, whatever the page does; a "not visible" mark
    lets it through and is kept in the audit row. Flag and save may still leave a region out."""
    with session_scope(database_url) as s:
        pid = add_photo(s)
    no_tzone = {k: v for k, v in AUTO.items() if k != "tzone"}
    with session_scope(database_url) as s:
        with pytest.raises(ann.AnnotationError, match="no tzone box"):
            ann.save_boxes(s, pid, 1, no_tzone, "ann", "accept")
        with pytest.raises(ann.AnnotationError, match="unknown region"):
            ann.save_boxes(s, pid, 1, no_tzone, "ann", "accept", not_visible=["nose"])
    with session_scope(database_url) as s:
        assert s.get(Photo, pid).boxes_version == 1  # nothing written
        flagged = ann.save_boxes(s, pid, 1, no_tzone, "ann", "flag", "where is the T-zone?")
        assert isinstance(flagged, ann.SaveResult) and set(flagged.boxes) == {"face", "jaw"}
    with session_scope(database_url) as s:
        accepted = ann.save_boxes(s, pid, 2, no_tzone, "ann", "accept", not_visible=["tzone", "jaw"])
        assert isinstance(accepted, ann.SaveResult) and accepted.review_status == "accepted"
        (latest, _) = queue.audit_trail(s, pid)
        assert latest.after["not_visible"] == ["tzone"]  # the drawn jaw is not marked hidden
        assert "not_visible" not in _.after


def test_conflict_default_keeps_the_other_annotators_fix_to_a_region_i_did_not_touch(database_url):
    with session_scope(database_url) as s:
        pid = add_photo(s)
    theirs = moved(AUTO, "jaw", 25, 0)  # the other annotator fixed the jaw
    mine = moved(AUTO, "tzone", 0, 9)  # this annotator, from the same version, fixed only the T-zone
    with session_scope(database_url) as s:
        assert isinstance(ann.save_boxes(s, pid, 1, theirs, "other", "accept"), ann.SaveResult)
    with session_scope(database_url) as s:
        conflict = ann.save_boxes(s, pid, 1, mine, "me", "accept")
    assert isinstance(conflict, ann.Conflict)
    assert conflict.changed_by_me() == ["tzone"]
    assert conflict.default_choice() == {"face": "theirs", "tzone": "mine", "jaw": "theirs"}
    with session_scope(database_url) as s:
        resolved = ann.resolve_conflict(s, conflict, {}, "me")  # saved as offered
    assert resolved.boxes == {**AUTO, "jaw": theirs["jaw"], "tzone": mine["tzone"]}
