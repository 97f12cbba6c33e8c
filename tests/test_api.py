"""The JSON API (app/api): the source's request shape, consent-only storage, results, types,
health and not-ready answers. Bad input and limits: tests/test_api_limits.py.

A promoted model is needed for classify: the ``served_app_env`` fixture (tests/conftest.py) gives each
test a copy of a project with the sample loaded and a quickly trained head, built once per session.
"""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import select

from app.core import db, storage
from app.core.vocabulary import MBTI_TYPES, REGIONS, TYPES
from app.services import submissions
from tests.api_helpers import EXPECTED, FACES, assert_error, source_request, visitor_rows
from tests.conftest import clear_caches
from tests.servers import free_port


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


def test_multipart_mbti_unknown_is_kept_as_none(client):
    """"I don't know" (`none`, any case) is an answer in the API as on the Try it page."""
    response = client.post(
        "/v1/classify",
        data={"age": "1985-07-30", "mbti": "None", "consent_store": "true"},
        files={"user_img": ("obama2.jpg", (FACES / "obama2.jpg").read_bytes(), "image/jpeg")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["stored"] is True
    with db.session_scope() as session:
        stored = session.exec(select(db.Submission)).one()
    assert stored.mbti == "none" and str(stored.birth_date) == "1985-07-30"


def test_both_body_formats_are_documented_from_the_models(client):
    content = client.get("/openapi.json").json()["paths"]["/v1/classify"]["post"]["requestBody"]["content"]
    for media_type in ("application/json", "multipart/form-data"):
        fields = content[media_type]["schema"]["properties"]
        assert fields["age"]["format"] == "date"
        assert fields["mbti"]["enum"] == [*MBTI_TYPES, "none"]
    assert content["multipart/form-data"]["schema"]["properties"]["user_img"]["format"] == "binary"


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


def test_a_setting_of_the_wrong_kind_is_named_by_the_api_instead_of_a_failed_start(app_env, monkeypatch):
    """FACETYPE_MAX_UPLOAD_MB=abc: the API still starts (the rate limiter reads its settings inside the
    start's configuration-error handling) and names the setting to fix, as the app's pages do, without
    its value. Once the setting is fixed, the next health check prepares again and builds the limiter."""
    from app.api import api
    from app.api import routes

    monkeypatch.setenv("FACETYPE_MAX_UPLOAD_MB", "abc")
    clear_caches()
    with TestClient(api) as c:
        health = c.get("/healthz")
        assert health.status_code == 503
        assert health.json()["message"] == "A setting has a value that cannot be used (FACETYPE_MAX_UPLOAD_MB)."
        refused = assert_error(c.post("/v1/classify", json={"user_img": "x", "age": "1990-01-01", "mbti": "ESTJ"}),
                               503, "unavailable")
        assert "FACETYPE_MAX_UPLOAD_MB" in refused["message"]
        assert "abc" not in health.text + refused["message"]
        assert c.get("/openapi.json").status_code == 200
        assert api.state.limiter is None

        monkeypatch.delenv("FACETYPE_MAX_UPLOAD_MB")
        clear_caches()
        monkeypatch.setattr(routes, "prepare", lambda: None)  # the project is prepared elsewhere in these tests
        api.state.last_prepare = 0.0  # the next health check tries again at once
        c.get("/healthz")
        assert api.state.config_error is None
        assert api.state.limiter is not None


def test_an_unreachable_database_is_not_described_by_the_api(app_env, monkeypatch):
    from app.api import api

    port = free_port()
    monkeypatch.setenv("FACETYPE_DATABASE_URL", f"postgresql+psycopg://secretuser@127.0.0.1:{port}/secretdb")
    clear_caches()
    with TestClient(api) as c:
        answers = [c.get("/healthz"), c.post("/v1/classify", json={"user_img": "x", "age": "1990-01-01",
                                                                    "mbti": "ESTJ"}), c.get("/v1/types")]
    for answer in answers:
        assert answer.status_code == 503
        for detail in ("secretuser", "secretdb", str(port), "psycopg"):
            assert detail not in answer.text, (answer.request.url, detail)
    assert "FACETYPE_DATABASE_URL" in answers[0].json()["message"]
