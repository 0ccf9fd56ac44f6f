"""Schemathesis against the service's OpenAPI document: generated requests (valid and invalid) for every operation
must never get a 5xx, and every answer must match the documented status codes, content types and schemas.

Run twice: an open service, and one that requires an API key (Schemathesis then also checks that requests without
the key are refused).
"""

from __future__ import annotations

import warnings

import pytest

pytest.importorskip("fastapi", reason="the web service needs the [serve] extra")
schemathesis = pytest.importorskip("schemathesis", reason="the fuzz test needs Schemathesis: pip install -e '.[dev]'")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings  # noqa: E402

import openfer  # noqa: E402
from openfer.service import ServiceConfig, create_app  # noqa: E402

pytestmark = pytest.mark.slow

#: Examples per operation: bounded so the run takes seconds on two cores, derandomized so failures reproduce.
EXAMPLES = 30
KEY = "fuzz-key"
#: "Schema-valid data is accepted" cannot hold for uploads: the schema says "a binary file", the service takes only
#: images (or videos) and answers 415/422 to the random bytes a generator makes. Every other check runs.
SKIP = [schemathesis.checks.positive_data_acceptance]
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

_analyzer = openfer.Analyzer(classifier="fast")
# Schemathesis's ASGI client names its own host; the Host/Origin checks have their own tests in test_service.py.
OPEN = create_app(ServiceConfig(allowed_hosts=("*",)), analyzer=_analyzer)
KEYED = create_app(ServiceConfig(api_key=KEY, allowed_hosts=("*",)), analyzer=_analyzer)
open_schema = schemathesis.openapi.from_asgi("/openapi.json", OPEN)
keyed_schema = schemathesis.openapi.from_asgi("/openapi.json", KEYED)


@pytest.fixture(scope="module", autouse=True)
def running_apps():
    with TestClient(OPEN), TestClient(KEYED):  # run the lifespans: worker pools and job stores
        yield


@open_schema.parametrize()
@FUZZ
def test_open_api_conforms_to_its_openapi_document(case):
    case.call_and_validate(excluded_checks=SKIP)


@keyed_schema.parametrize()
@FUZZ
def test_keyed_api_conforms_to_its_openapi_document(case):
    case.call_and_validate(headers={"X-API-Key": KEY}, excluded_checks=SKIP)


def test_documents_say_when_a_key_is_needed():
    with TestClient(OPEN) as c:
        assert "securitySchemes" not in c.get("/openapi.json").json().get("components", {})
    with TestClient(KEYED) as c:
        doc = c.get("/openapi.json").json()
        assert doc["paths"]["/v1/analyze"]["post"]["security"] == [{"APIKeyHeader": []}]
