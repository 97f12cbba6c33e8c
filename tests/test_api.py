"""The JSON API (app/api.py): the source's request shape, every bad input as a 4xx with a JSON
message, consent-only storage, results, types, health, the rate limit and the privacy of the logs.

A promoted model is needed for classify: the ``served_app_env`` fixture (tests/conftest.py) gives each
test a copy of a project with the sample loaded and a quickly trained head, built once per session.
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import select

from app.core import db, settings, storage
from app.core.vocabulary import MBTI_TYPES, REGIONS, TYPES
from app.services import submissions
from tests.conftest import clear_caches
from tests.conftest_paths import TEST_DATA

FACES = TEST_DATA / "faces"
BAD = TEST_DATA / "bad"
EXPECTED = json.loads((FACES / "expected.json").read_text())

@pytest.fixture
def served_env(served_app_env, monkeypatch):
    """served_app_env (sample project, promoted model) with the rate limit off unless a test sets it."""
    monkeypatch.setenv("FACETYPE_API_RATE_PER_MINUTE", "0")
    settings.get_settings.cache_clear()
    return settings.get_settings()


@pytest.fixture
def client(served_env):
    from app.api import api

    with TestClient(api) as c:
        yield c


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def source_request(photo: Path | str = "obama.jpg", **overrides) -> dict:
    """The source's Flutter request body."""
    path = photo if isinstance(photo, Path) else FACES / photo
    body = {"user_img": b64(path), "age": "1990-01-02", "mbti": "ESTJ", "consent_store": False}
    body.update(overrides)
    return body


def assert_error(response, status: int, error: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and len(body["message"]) > 10
    if error is not None:
        assert body["error"] == error, body
    return body


def visitor_rows(url: str | None = None) -> tuple[int, int]:
    with db.session_scope() as session:
        subs = len(list(session.exec(select(db.Submission))))
        photos = len(list(session.exec(select(db.Photo).where(db.Photo.source == "visitor"))))
    return subs, photos


# ============================================================================ the source's contract


def test_source_request_shape_classifies_and_stores_nothing(client, served_env):
    response = client.post("/v1/classify", json=source_request())
    assert response.status_code == 200, response.text
    body = response.json()
    # the source's fields
    assert body["human"] is True
    assert body["male_type"] in TYPES
    with db.session_scope() as session:
        profile = session.exec(select(db.TypeProfile).where(db.TypeProfile.name == body["male_type"])).one()
    assert body["dsc"] == profile.description
    imgs = [body[f"img{i}"] for i in range(1, 5)]
    assert all(u and u.startswith("http://testserver/v1/reference-images/") for u in imgs)
    assert len(set(imgs)) == 4
    # the details
    assert body["reason"] is None and body["message"]
    assert 0 <= body["score"] <= 100 and 0 <= body["confidence"] <= 1
    assert set(body["per_region"]) == set(REGIONS)
    for region in body["per_region"].values():
        assert region["type"] in TYPES and len(region["probs"]) == len(TYPES) and len(region["box"]) == 4
    assert body["model"]["kind"] == "head" and isinstance(body["model"]["id"], int)
    assert body["stored"] is False and body["result_code"] is None and body["delete_code"] is None
    # the reference images are served by the API, and are of people of the same type
    for url in imgs:
        image = client.get(url.removeprefix("http://testserver"))
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        photo_id = int(url.rsplit("/", 1)[1])
        with db.session_scope() as session:
            photo = session.get(db.Photo, photo_id)
            person = session.get(db.ReferencePerson, photo.person_id)
        assert photo.source == "reference" and person.type_name == body["male_type"]
    # no consent: nothing of the visit was written
    assert visitor_rows() == (0, 0)
    assert storage.get_store().list("visitor/") == []


def test_register_result_path_and_data_url_prefix(client):
    body = source_request("astronaut.png")
    body["user_img"] = "data:image/png;base64," + body["user_img"]
    response = client.post("/RegisterResult", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["human"] is True


def test_multipart_upload(client):
    response = client.post(
        "/v1/classify",
        data={"age": "1985-07-30", "mbti": "infp"},
        files={"user_img": ("obama2.jpg", (FACES / "obama2.jpg").read_bytes(), "image/jpeg")},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["human"] is True and body["male_type"] in TYPES and body["stored"] is False


@pytest.mark.parametrize("photo", ["no_face_coffee.jpg", "several_faces.jpg", "obama_partial_face.jpg"])
def test_not_a_usable_face_is_human_false_with_reason(client, photo):
    response = client.post("/v1/classify", json=source_request(photo, consent_store=True))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["human"] is False
    assert body["reason"] == EXPECTED[photo]["gate"]
    assert len(body["message"]) > 20
    assert body["male_type"] is None and body["dsc"] is None and body["img1"] is None
    assert body["stored"] is False and body["result_code"] is None  # a refusal is never stored
    assert visitor_rows() == (0, 0)


# ============================================================================ bad input: 4xx with a message


BAD_JSON_CASES = {
    "not base64": ({"user_img": "this is *not* base64!!"}, 400, "not_base64"),
    "not an image": ({"user_img": b64(BAD / "not_an_image.jpg")}, 422, "not_an_image"),
    "empty photo": ({"user_img": ""}, 422, "invalid_request"),
    "only whitespace": ({"user_img": "  \n "}, 422, "empty"),
    "bad padding": ({"user_img": "===="}, 400, "not_base64"),
    "truncated": ({"user_img": b64(BAD / "truncated.jpg")}, 422, "truncated"),
    "too few pixels": ({"user_img": b64(BAD / "tiny_8x8.png")}, 422, "too_small"),
    "pixel bomb": ({"user_img": b64(BAD / "pixel_bomb.png")}, 413, "too_large"),
    "bad MBTI": ({"mbti": "ABCD"}, 422, "invalid_request"),
    "MBTI too long": ({"mbti": "ESTJX"}, 422, "invalid_request"),
    "MBTI not a string": ({"mbti": 42}, 422, "invalid_request"),
    "date not ISO": ({"age": "02.01.1990"}, 422, "invalid_request"),
    "date not real": ({"age": "1990-02-30"}, 422, "invalid_request"),
    "date in the future": ({"age": (date.today() + timedelta(days=1)).isoformat()}, 422, "invalid_request"),
    "date too early": ({"age": "1899-12-31"}, 422, "invalid_request"),
    "age as a number": ({"age": 34}, 422, "invalid_request"),
    "consent not boolean": ({"consent_store": "maybe"}, 422, "invalid_request"),
}


@pytest.mark.parametrize("case", list(BAD_JSON_CASES), ids=list(BAD_JSON_CASES))
def test_bad_json_input_is_4xx_with_message(client, case):
    change, status, error = BAD_JSON_CASES[case]
    body = {**source_request(), **change}
    body = assert_error(client.post("/v1/classify", json=body), status, error)
    if error == "invalid_request":
        assert body["fields"] and body["fields"][0]["field"] in ("user_img", "age", "mbti", "consent_store")
    assert visitor_rows() == (0, 0)


@pytest.mark.parametrize("field", ["user_img", "age", "mbti"])
def test_missing_field_is_422_naming_it(client, field):
    body = source_request()
    del body[field]
    err = assert_error(client.post("/v1/classify", json=body), 422, "invalid_request")
    assert field in err["message"] and "missing" in err["message"]
    assert "obama" not in json.dumps(err) and "/9j/" not in json.dumps(err)  # the input is not echoed


def test_missing_file_in_multipart_is_422(client):
    err = assert_error(client.post("/v1/classify", data={"age": "1990-01-02", "mbti": "ESTJ"},
                                   files={"other": ("x.txt", b"x")}), 422, "invalid_request")
    assert "user_img" in err["message"]


def test_malformed_requests_are_4xx(client):
    assert_error(client.post("/v1/classify", content=b"{not json", headers={"content-type": "application/json"}),
                 400, "invalid_json")
    assert_error(client.post("/v1/classify", json=["a", "list"]), 422)
    assert_error(client.post("/v1/classify", content=b"", headers={"content-type": "application/json"}), 400)
    assert_error(client.post("/v1/classify", content=b"abc", headers={"content-type": "image/jpeg"}), 415)
    assert_error(client.post("/v1/classify", content=b"--x\r\nbroken",
                             headers={"content-type": "multipart/form-data; boundary=x"}), 422)
    assert_error(client.get("/v1/classify"), 405)
    assert_error(client.get("/nowhere"), 404, "not_found")


def test_huge_requests_are_413(client, monkeypatch):
    monkeypatch.setenv("FACETYPE_MAX_UPLOAD_MB", "1")
    settings.get_settings.cache_clear()
    # declared too large: refused on the Content-Length header, before the body is read
    big = json.dumps({**source_request(), "user_img": "A" * 1_500_000})
    assert_error(client.post("/v1/classify", content=big, headers={"content-type": "application/json"}),
                 413, "request_too_large")
    # streamed without a Content-Length: refused while reading
    def chunks():
        for _ in range(40):
            yield b"A" * 65536
    assert_error(client.post("/v1/classify", content=chunks(), headers={"content-type": "application/json"}),
                 413, "request_too_large")
    # the body fits, the decoded photo does not
    photo = base64.b64encode(b"\xff\xd8\xff" + b"\0" * (1024 * 1024 + 10)).decode()
    assert_error(client.post("/v1/classify", json=source_request(user_img=photo)), 413, "photo_too_large")
    # multipart file over the limit
    assert_error(client.post("/v1/classify", data={"age": "1990-01-02", "mbti": "ESTJ"},
                             files={"user_img": ("big.jpg", b"\0" * (1024 * 1024 + 10), "image/jpeg")}), 413)


# ============================================================================ consent, results, delete


def test_consent_store_round_trip_and_delete(client, caplog):
    caplog.set_level(logging.DEBUG)
    request = source_request("biden.jpg", age="1977-03-14", mbti="INTP", consent_store=True)
    response = client.post("/v1/classify", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stored"] is True and body["result_code"] and body["delete_code"]
    code, delete_code = body["result_code"], body["delete_code"]
    assert visitor_rows() == (1, 1)
    assert len(storage.get_store().list("visitor/")) == 1

    again = client.get(f"/v1/results/{code.lower()}")
    assert again.status_code == 200, again.text
    stored = again.json()
    assert stored["human"] is True and stored["male_type"] == body["male_type"] and stored["dsc"] == body["dsc"]
    assert stored["score"] == pytest.approx(body["score"], abs=1e-3)
    assert stored["delete_code"] is None and stored["expires_at"] and stored["img1"]
    assert "1977" not in again.text and "INTP" not in again.text  # birth date and MBTI never come back

    # visitor photos are never served as reference images
    with db.session_scope() as session:
        visitor_photo = session.exec(select(db.Photo).where(db.Photo.source == "visitor")).one()
    assert_error(client.get(f"/v1/reference-images/{visitor_photo.id}"), 404)

    wrong = code + "-AAAA-BBBB-CCCC-DDDD"
    assert_error(client.delete(f"/v1/results/{code}", headers={"X-Delete-Code": wrong}), 404, "not_found")
    assert_error(client.delete(f"/v1/results/{code}"), 422, "invalid_request")  # no delete code
    assert visitor_rows() == (1, 1)
    gone = client.delete(f"/v1/results/{code}", headers={"X-Delete-Code": delete_code})
    assert gone.status_code == 200 and gone.json()["deleted"] is True
    assert visitor_rows() == (0, 0) and storage.get_store().list("visitor/") == []
    assert_error(client.get(f"/v1/results/{code}"), 404, "not_found")
    assert_error(client.delete(f"/v1/results/{code}", headers={"X-Delete-Code": delete_code}), 404)

    # privacy: no photo bytes, birth date or MBTI in the logs (result codes are fine)
    logged = caplog.text
    assert "1977-03-14" not in logged and "1977" not in logged
    assert "INTP" not in logged and "intp" not in logged
    assert request["user_img"][:40] not in logged and delete_code not in logged


@pytest.mark.parametrize("code", ["NOPE", "ZZZZZZZZ", "x" * 60, "ABC%2FDEF"])
def test_unknown_result_codes_are_404(client, code):
    assert_error(client.get(f"/v1/results/{code}"), 404, "not_found")


def test_stored_result_with_the_database_down_is_503_json(client, monkeypatch):
    """A kept result cannot be looked up while the database is down: 503 with the JSON error body
    (it used to be 500 internal_error)."""
    body = client.post("/v1/classify", json=source_request("biden.jpg", consent_store=True)).json()

    def database_down(*_args, **_kwargs):
        raise sa.exc.OperationalError("SELECT", {}, Exception("database went away (test)"))

    monkeypatch.setattr(submissions, "session_scope", database_down)
    response = client.get(f"/v1/results/{body['result_code']}")
    assert_error(response, 503, "unavailable")
    assert "cannot be reached" in response.json()["message"]


# ============================================================================ types, health, not ready


def test_types(client):
    body = client.get("/v1/types").json()
    assert [t["name"] for t in body["types"]] == list(TYPES)
    assert all(t["description"] for t in body["types"]) and "fun" in body["disclaimer"].lower()


def test_healthz_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["store"] == "ok"
    assert body["model_ready"] is True and body["model"]["kind"] == "head"


def test_no_promoted_model_is_503_with_message(served_env):
    from app.api import api

    with db.session_scope() as session:
        for row in session.exec(select(db.ModelVersion)):
            row.promoted = False
            session.add(row)
    clear_caches()
    with TestClient(api) as c:
        err = assert_error(c.post("/v1/classify", json=source_request()), 503, "no_model")
        assert "model" in err["message"]
        health = c.get("/healthz").json()
        assert health["status"] == "ok" and health["model_ready"] is False and health["message"]
        # bad input is still refused as such (checked before the model)
        assert_error(c.post("/v1/classify", json=source_request(mbti="XXXX")), 422)


@pytest.mark.parametrize("storage_url", ["file-not-folder", "ftp://example.test/x"])
def test_configuration_error_is_503_on_healthz(app_env, monkeypatch, tmp_path, storage_url):
    from app.api import api

    if storage_url == "file-not-folder":
        not_a_folder = tmp_path / "store-is-a-file"
        not_a_folder.write_text("x")
        storage_url = str(not_a_folder)
    monkeypatch.setenv("FACETYPE_STORAGE_URL", storage_url)
    clear_caches()
    with TestClient(api) as c:
        health = c.get("/healthz")
        assert health.status_code == 503
        assert "FACETYPE_STORAGE_URL" in health.json()["message"]
        assert_error(c.post("/v1/classify", json={"user_img": "x", "age": "1990-01-01", "mbti": "ESTJ"}), 503)
        assert c.get("/openapi.json").status_code == 200


# ============================================================================ rate limit, S3 URLs


def test_rate_limit_per_client_is_429_json(served_env, monkeypatch):
    from app.api import api

    monkeypatch.setenv("FACETYPE_API_RATE_PER_MINUTE", "1")
    monkeypatch.setenv("FACETYPE_API_RATE_BURST", "2")
    settings.get_settings.cache_clear()
    with TestClient(api) as c:
        assert c.get("/v1/results/AAAAAAAA").status_code == 404
        assert c.get("/v1/results/AAAAAAAA").status_code == 404
        err = assert_error(c.get("/v1/results/AAAAAAAA"), 429, "rate_limited")
        assert int(c.get("/v1/results/AAAAAAAA").headers["retry-after"]) >= 1
        assert "try again" in err["message"]
        assert c.get("/healthz").status_code == 200  # cheap endpoints are not limited
        assert c.get("/v1/types").status_code == 200


def test_rate_limiter_refills():
    from app.api.limits import RateLimiter

    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])
    assert limiter.take("a") == 0 and limiter.take("a") == 0
    assert limiter.take("a") > 0
    assert limiter.take("b") == 0  # per client
    now[0] += 1.0
    assert limiter.take("a") == 0
    assert RateLimiter(per_minute=0, burst=1).take("a") == 0  # 0 turns it off


def test_reference_urls_are_presigned_on_s3(client, monkeypatch):
    """On S3 the img URLs are the store's presigned URLs (here a stand-in for the S3 store)."""
    local = storage.get_store()

    class PresigningStore:
        def __getattr__(self, name):
            return getattr(local, name)

        def url(self, key):
            return f"https://s3.example.test/bucket/{key}?X-Amz-Signature=abc"

    def presigning_get_store():
        return PresigningStore()

    presigning_get_store.cache_clear = lambda: None  # the fixtures clear the caches on the way out
    monkeypatch.setattr(storage, "get_store", presigning_get_store)
    body = client.post("/v1/classify", json=source_request("obama_rgba.png")).json()
    assert body["human"] is True
    assert all(body[f"img{i}"].startswith("https://s3.example.test/bucket/") for i in range(1, 5))


def test_mbti_types_all_accepted_by_schema():
    from app.api.schemas import ClassifyRequest

    for mbti in MBTI_TYPES:
        assert ClassifyRequest(user_img="x", age="2000-01-01", mbti=mbti.lower()).mbti == mbti
