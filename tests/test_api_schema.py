"""schemathesis against the API's own OpenAPI schema (in-process ASGI): generated requests, valid
and invalid, to every operation must never get a 5xx, and responses must match the schema.

The app runs on a copy of the served project (sample project + a promoted tiny head), so classify
requests reach the real cascade; the examples are few to keep the run under a minute on 2 cores.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance



from app.api import api  # noqa: E402

# The schema as /openapi.json serves it, loaded eagerly (schemathesis' lazy ``from_fixture`` breaks on
# pytest 9: it sets ``Node._nodeid``). Requests go to the app in-process, like ``from_asgi`` does.
schema = schemathesis.openapi.from_dict(api.openapi())
schema.app = api


@pytest.fixture(autouse=True)
def served_app(served_app_env, monkeypatch):
    from app.core.settings import get_settings

    monkeypatch.setenv("FACETYPE_API_RATE_PER_MINUTE", "0")
    get_settings.cache_clear()


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_match_schema(case):
    # Generated data that fits the schema is still often unusable (random base64 is not a photo, a
    # generated date may lie before 1900): a 4xx there is the contract, not a failure.
    response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
    assert response.status_code < 500, response.text


@pytest.mark.parametrize("photo", ["obama.jpg", "no_face_coffee.jpg"])
@pytest.mark.parametrize("media_type", ["application/json", "multipart/form-data"])
def test_real_photos_answer_as_the_schema_says(photo, media_type):
    """The generated cases rarely hold a decodable photo; these send real ones, in both body
    formats, and validate the 200 answers (classified and refused) against the schema."""
    import base64

    from tests.api_helpers import FACES

    data = (FACES / photo).read_bytes()
    operation = schema["/v1/classify"]["POST"]
    if media_type == "application/json":
        body = {"user_img": base64.b64encode(data).decode(), "age": "1990-01-02", "mbti": "ENFP"}
    else:
        body = {"user_img": data, "age": "1990-01-02", "mbti": "ENFP"}
    case = operation.Case(body=body, media_type=media_type)
    response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
    assert response.status_code == 200, response.text
    assert response.json()["human"] is (photo == "obama.jpg")
