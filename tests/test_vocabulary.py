"""The status enums are the strings stored in the database: renaming a value would orphan rows."""

from __future__ import annotations

import sqlalchemy as sa

from app.core.vocabulary import MBTI_TYPES, BoxSource, Mbti, PhotoSource, ReviewStatus, RunStatus


def test_status_values_are_the_stored_strings():
    assert [s.value for s in RunStatus] == ["queued", "running", "done", "failed", "cancelled"]
    assert [s.value for s in ReviewStatus] == ["pending", "flagged", "accepted", "rejected"]
    assert [s.value for s in PhotoSource] == ["reference", "visitor"]
    assert [s.value for s in BoxSource] == ["auto", "human"]
    assert [m.value for m in Mbti] == [*MBTI_TYPES, "none"]


def test_a_status_is_written_as_its_value():
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (status VARCHAR(16))"))
        conn.execute(sa.text("INSERT INTO t VALUES (:s)"), {"s": RunStatus.CANCELLED})
        assert conn.execute(sa.text("SELECT status FROM t WHERE status = 'cancelled'")).scalar_one() == "cancelled"
