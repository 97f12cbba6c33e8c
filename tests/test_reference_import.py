"""Importing reference photos: stored once by sha256, auto-labeled, bad files skipped with reasons,
batch size limited."""


import pytest
from sqlmodel import select

from app.core import settings as app_settings
from app.core.db import Photo, ReferencePerson, RegionBox, migrate, session_scope
from app.core.auth import Account, PermissionDenied
from labeling.photos import BatchTooLarge, NoSuchPerson, import_reference_batch
from tests.conftest_paths import TEST_DATA

ADMIN = Account("root", "admin", "unused")
LEAD = Account("lee", "lead", "unused")
SAMPLE_PHOTOS = sorted((app_settings.get_settings().sample_dir / "photos" / "p001").glob("*.jpg"))


@pytest.fixture
def person_id(database_url):
    with session_scope(database_url) as session:
        person = ReferencePerson(person_key="x01", pseudonym="Composite X")
        session.add(person)
        session.flush()
        return person.id


def test_mixed_batch_adds_good_skips_bad_and_stores_each_photo_once(database_url, object_store, person_id):
    bad = sorted((TEST_DATA / "bad").iterdir())
    files = [(p.name, p) for p in SAMPLE_PHOTOS + bad] + [("again.jpg", SAMPLE_PHOTOS[0].read_bytes())]
    seen = []
    outcomes = import_reference_batch(person_id, files, progress=lambda d, t, n: seen.append((d, t)),
                                      url=database_url, store=object_store, account=ADMIN)
    assert seen[-1] == (len(files), len(files))
    by_status = {}
    for o in outcomes:
        by_status.setdefault(o.status, []).append(o)
    assert len(by_status["added"]) == len(SAMPLE_PHOTOS)
    assert len(by_status["duplicate"]) == 1 and by_status["duplicate"][0].filename == "again.jpg"
    assert {o.filename: o.reason for o in by_status["skipped"]} == {
        "empty.png": "empty", "not_an_image.jpg": "not_an_image", "pixel_bomb.png": "too_large",
        "tiny_8x8.png": "too_small", "truncated.jpg": "truncated"}
    assert all(o.message for o in by_status["skipped"])
    with session_scope(database_url) as session:
        photos = session.exec(select(Photo)).all()
        boxes = session.exec(select(RegionBox)).all()
    assert len(photos) == len(SAMPLE_PHOTOS) and len(boxes) == 3 * len(SAMPLE_PHOTOS)
    assert sorted(object_store.list("reference/")) == sorted(p.object_key for p in photos)


def test_batch_over_the_limit_is_refused_before_any_work(app_env, monkeypatch):
    migrate()
    monkeypatch.setattr("labeling.photos.get_settings", lambda: app_env.model_copy(update={"max_batch_files": 2}))
    with pytest.raises(BatchTooLarge, match="FACETYPE_MAX_BATCH_FILES"):
        import_reference_batch(1, [("a.jpg", b"x")] * 3, account=LEAD)


def test_import_needs_a_chosen_person_and_the_role(database_url, object_store, person_id):
    photo = [("a.jpg", SAMPLE_PHOTOS[0].read_bytes())]
    with pytest.raises(NoSuchPerson, match="choose the person"):
        import_reference_batch(None, photo, url=database_url, store=object_store, account=LEAD)
    with pytest.raises(NoSuchPerson, match="no reference person"):
        import_reference_batch(person_id + 1, photo, url=database_url, store=object_store, account=LEAD)
    with pytest.raises(PermissionDenied):
        import_reference_batch(person_id, photo, url=database_url, store=object_store,
                               account=Account("ana", "annotator", "unused"))
    with pytest.raises(PermissionDenied):  # a path on the server: admins only
        import_reference_batch(person_id, [("a.jpg", SAMPLE_PHOTOS[0])], url=database_url, store=object_store,
                               account=LEAD)
    with session_scope(database_url) as session:
        assert session.exec(select(Photo)).all() == []


def test_duplicate_names_the_person_the_stored_photo_belongs_to(database_url, object_store, person_id):
    photo = [("a.jpg", SAMPLE_PHOTOS[0].read_bytes())]
    (added,) = import_reference_batch(person_id, photo, url=database_url, store=object_store, account=LEAD)
    with session_scope(database_url) as session:
        other = ReferencePerson(person_key="y02", pseudonym="Composite Y")
        session.add(other)
        session.flush()
        other_id = other.id
    (again,) = import_reference_batch(other_id, photo, url=database_url, store=object_store, account=LEAD)
    assert again.status == "duplicate" and again.photo_id == added.photo_id
    assert "x01 (Composite X)" in again.message and "not the person you chose" in again.message


# ---------------------------------------------------------------------------- an admin's server folder


def test_server_folder_never_follows_links_out(tmp_path):
    import os

    from labeling.photos import server_folder_files

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"not for import")
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.jpg").write_bytes(b"a")
    (folder / "sub" / "b.jpg").write_bytes(b"b")
    (folder / ".hidden.jpg").write_bytes(b"h")
    os.symlink(outside / "secret.jpg", folder / "link.jpg")
    os.symlink(outside, folder / "linked-folder")
    os.symlink("/etc/passwd", folder / "passwd.jpg")
    os.symlink("/dev/zero", folder / "zero.jpg")
    os.mkfifo(folder / "pipe.jpg")
    listing = server_folder_files(folder)
    assert [name for name, _ in listing.files] == [str(folder / "a.jpg"), str(folder / "sub" / "b.jpg")]
    assert listing.skipped == {"hidden_file": 1, "link": 4, "not_a_file": 1}  # said, not left out silently
    os.symlink(folder, tmp_path / "folder-link")
    with pytest.raises(NotADirectoryError):
        server_folder_files(tmp_path / "folder-link")


def test_server_folder_counts_the_hidden_entries_it_leaves_out_and_says_why(tmp_path):
    from labeling.photos import server_folder_files

    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.jpg").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    for name in ("a.jpg", ".DS_Store", "._a.jpg", "sub/.b.jpg", "sub/b.jpg"):
        (tmp_path / name).write_bytes(b"x")
    listing = server_folder_files(tmp_path)
    assert [path.name for _, path in listing.files] == ["a.jpg", "b.jpg"]
    assert listing.skipped == {"hidden_file": 3, "hidden_folder": 1}
    assert listing.skipped_summary() == ("3 hidden files (the name starts with a dot), "
                                         "1 hidden folder (not opened)")
    assert server_folder_files(tmp_path / "sub").skipped_summary() == "1 hidden file (the name starts with a dot)"
    (tmp_path / "sub" / ".b.jpg").unlink()
    assert server_folder_files(tmp_path / "sub").skipped_summary() == ""


def test_server_folder_stops_walking_at_the_limit(tmp_path, monkeypatch):
    import os

    from labeling import photos

    for sub in range(5):
        (tmp_path / f"d{sub}").mkdir()
        for i in range(3):
            (tmp_path / f"d{sub}" / f"{i}.jpg").write_bytes(b"x")
    visited = []
    real_walk = os.walk

    def counting_walk(*args, **kwargs):
        for entry in real_walk(*args, **kwargs):
            visited.append(entry[0])
            yield entry

    monkeypatch.setattr(photos.os, "walk", counting_walk)
    with pytest.raises(BatchTooLarge, match="FACETYPE_MAX_BATCH_FILES"):
        photos.server_folder_files(tmp_path, limit=4)
    assert len(visited) <= 3  # the root and two of the five folders, not the whole tree


def test_server_files_over_the_size_cap_are_skipped_unread(tmp_path, monkeypatch, person_id, database_url, object_store):
    import os

    from labeling import photos

    monkeypatch.setenv("FACETYPE_MAX_UPLOAD_MB", "1")
    app_settings.get_settings.cache_clear()
    try:
        big = tmp_path / "big.jpg"
        with big.open("wb") as f:
            f.truncate(50 * 1024 * 1024)  # sparse: 50 MB claimed
        pipe = tmp_path / "pipe.jpg"
        os.mkfifo(pipe)
        outcomes = import_reference_batch(person_id, [("big.jpg", big), ("pipe.jpg", pipe),
                                                      ("link.jpg", tmp_path / "link.jpg")],
                                          url=database_url, store=object_store, account=ADMIN)
    finally:
        app_settings.get_settings.cache_clear()
    assert [(o.status, o.reason) for o in outcomes][:2] == [("skipped", "too_large"), ("skipped", "unreadable")]
    assert "FACETYPE_MAX_UPLOAD_MB" in outcomes[0].message
    assert len(photos.read_server_file(big, 1024)) == 1025
