import pytest

from app.core import storage
from app.core.storage import LocalStore, ObjectNotFound, StorageError, check_key, new_key, open_store
from tests.conftest import settings_for_s3


def test_put_get_list_delete(object_store):
    key = new_key("visitor/photos", "jpg")
    object_store.put(key, b"\xff\xd8photo", "image/jpeg")
    object_store.put("reference/p01/a.jpg", b"a")
    assert object_store.get(key) == b"\xff\xd8photo"
    assert object_store.list("visitor/") == [key]
    assert set(object_store.list()) == {key, "reference/p01/a.jpg"}
    object_store.delete(key)
    assert object_store.list("visitor/") == []
    with pytest.raises(ObjectNotFound):
        object_store.get(key)


def test_url_points_at_the_object(object_store):
    object_store.put("reference/p01/a.jpg", b"abc")
    url = object_store.url("reference/p01/a.jpg")
    if url.startswith("file://"):
        assert url.endswith("/reference/p01/a.jpg")
    else:
        import urllib.request

        assert urllib.request.urlopen(url, timeout=5).read() == b"abc"


@pytest.mark.parametrize(
    "key", ["../etc/passwd", "/etc/passwd", "a/../../b", "A/B.jpg", "", "a//b", "a/.hidden", "a\\b", "x" * 300]
)
def test_keys_from_outside_are_never_paths(object_store, key):
    with pytest.raises(ValueError):
        object_store.get(key)
    with pytest.raises(ValueError):
        check_key(key)


def test_new_keys_are_unique_and_valid():
    keys = {new_key("visitor/photos", ".JPG") for _ in range(100)}
    assert len(keys) == 100
    assert all(k.startswith("visitor/photos/") and k.endswith(".jpg") for k in keys)


def test_local_store_down_is_a_storage_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    store = LocalStore(blocker / "store")
    with pytest.raises(StorageError, match="local store"):
        store.put("visitor/a.jpg", b"x")
    with pytest.raises(StorageError):
        store.ping()


def test_s3_server_down_is_a_storage_error(seaweed_server):
    from tests.servers import free_port

    down = settings_for_s3(seaweed_server, "facetype").model_copy(
        update={"s3_endpoint_url": f"http://127.0.0.1:{free_port()}"}
    )
    store = open_store(down)
    with pytest.raises(StorageError, match="S3"):
        store.put("visitor/a.jpg", b"x")
    with pytest.raises(StorageError):
        store.ping()


def test_s3_wrong_credentials_are_refused(seaweed_server):
    s3 = settings_for_s3(seaweed_server, "facetype-creds")
    open_store(s3).create_bucket()
    wrong = s3.model_copy(update={"aws_secret_access_key": "wrong"})
    with pytest.raises(StorageError):
        open_store(wrong).put("visitor/a.jpg", b"x")


def test_open_store_picks_backend_from_url(tmp_path, seaweed_server):
    from app.core.settings import Settings

    assert isinstance(open_store(Settings(storage_url=str(tmp_path))), LocalStore)
    assert isinstance(open_store(Settings(storage_url=f"file://{tmp_path}")), LocalStore)
    s3 = open_store(settings_for_s3(seaweed_server, "facetype-open"))
    assert isinstance(s3, storage.S3Store) and s3.bucket == "facetype-open" and s3.prefix == "facetype"
    with pytest.raises(ValueError, match="FACETYPE_STORAGE_URL"):
        open_store(Settings(storage_url="ftp://x/y"))


def _disk_full_after_half(monkeypatch):
    """Every file the store writes takes half the bytes, then fails as a full disk does."""
    import errno
    import os

    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage.os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode)))


def test_a_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    store = LocalStore(tmp_path / "store")
    _disk_full_after_half(monkeypatch)
    with pytest.raises(StorageError, match="No space left"):
        store.put("visitor/photos/a.jpg", b"\xff\xd8" + b"face" * 1000)
    assert [p for p in (tmp_path / "store").rglob("*") if p.is_file()] == []


def test_the_sweep_removes_only_stale_partial_files(tmp_path):
    import os

    store = LocalStore(tmp_path / "store")
    store.put("visitor/photos/kept.jpg", b"kept")
    stale = tmp_path / "store" / "visitor" / "photos" / "old.jpg.part"
    fresh = tmp_path / "store" / "visitor" / "photos" / "writing.jpg.part"
    stale.write_bytes(b"half a face")
    fresh.write_bytes(b"being written")
    os.utime(stale, (0, 0))
    assert store.sweep_partial() == 1
    assert not stale.exists() and fresh.exists()
    assert store.list() == ["visitor/photos/kept.jpg"]


def test_the_folder_store_is_private(tmp_path):
    store = LocalStore(tmp_path / "var" / "store")
    store.put("visitor/photos/a.jpg", b"face")
    assert (tmp_path / "var" / "store" / "visitor" / "photos" / "a.jpg").stat().st_mode & 0o777 == 0o600
    for folder in ("var", "var/store", "var/store/visitor", "var/store/visitor/photos"):
        assert (tmp_path / folder).stat().st_mode & 0o777 == 0o700, folder
