"""The contract's "Mapping of LiveKit errors" table, code by code
(`app.core.errors.error_for_twirp`).

Every Twirp code LiveKit's server SDK knows (`livekit.api.TwirpErrorCode`) is classified here,
so a code nobody thought of cannot fall through to a 500.
"""

from __future__ import annotations

import logging

import pytest
from livekit.api import TwirpErrorCode

from app.core.errors import (
    AppError,
    Conflict,
    FeatureNotEnabled,
    InvalidInput,
    NotFound,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    error_for_twirp,
)
from app.main import create_app
from tests.conftest import auth, make_settings

#: Every Twirp code `livekit-api` can hand us (https://twitchtv.github.io/twirp/docs/spec_v7.html).
ALL_TWIRP_CODES = sorted(
    value for name, value in vars(TwirpErrorCode).items() if name.isupper() and name[0] != "_"
)

#: The contract's table: Twirp code -> (REST status, problem code). `None` = "anything else".
TABLE: dict[str, tuple[int, str]] = {
    "invalid_argument": (422, "invalid_argument"),
    "malformed": (422, "invalid_argument"),
    "out_of_range": (422, "invalid_argument"),
    "not_found": (404, "not_found"),
    "already_exists": (409, "already_exists"),
    "aborted": (409, "aborted"),
    "failed_precondition": (409, "failed_precondition"),
    "resource_exhausted": (429, "livekit_rate_limited"),
    "unauthenticated": (502, "livekit_auth"),
    "permission_denied": (502, "livekit_auth"),
    "unimplemented": (501, "feature_not_enabled"),
    "unavailable": (503, "livekit_unavailable"),
    "deadline_exceeded": (504, "livekit_timeout"),
}
ANYTHING_ELSE = (502, "livekit_error")

#: The messages LiveKit's server answers when a service needs Redis it was not given
#: (livekit-server pkg/service/errors.go: ErrEgressNotConnected, ErrIngressNotConnected,
#: ErrSIPNotConnected).
REDIS_REQUIRED = [
    "egress not connected (redis required)",
    "ingress not connected (redis required)",
    "sip not connected (redis required)",
]


def test_the_sdk_code_list_is_the_twirp_spec_list():
    assert len(ALL_TWIRP_CODES) == 18
    assert {"invalid_argument", "not_found", "unavailable", "dataloss", "bad_route"} <= set(
        ALL_TWIRP_CODES
    )


@pytest.mark.parametrize("twirp_code", ALL_TWIRP_CODES)
def test_every_twirp_code_maps_to_its_contract_status(twirp_code):
    error = error_for_twirp(twirp_code, "something LiveKit said")
    status, code = TABLE.get(twirp_code, ANYTHING_ELSE)
    assert isinstance(error, AppError)
    assert (error.status, error.code) == (status, code)
    assert error.status != 500


@pytest.mark.parametrize("twirp_code", ["invalid_argument", "malformed", "out_of_range"])
def test_invalid_input_is_422_with_livekit_message(twirp_code):
    error = error_for_twirp(twirp_code, "name is too long")
    assert isinstance(error, InvalidInput)
    assert error.status == 422
    assert error.detail == "LiveKit: name is too long"
    assert "Retry-After" not in error.headers


def test_not_found_uses_the_routes_problem_code():
    error = error_for_twirp("not_found", "room not found", not_found_code="room_not_found")
    assert isinstance(error, NotFound)
    assert (error.status, error.code) == (404, "room_not_found")
    assert error.detail == "LiveKit: room not found"


def test_not_found_without_a_route_code_is_plain_not_found():
    error = error_for_twirp("not_found", "")
    assert (error.status, error.code) == (404, "not_found")
    assert error.detail == "LiveKit answered not_found"


def test_not_found_code_applies_to_not_found_only():
    for twirp_code in ALL_TWIRP_CODES:
        if twirp_code != "not_found":
            error = error_for_twirp(twirp_code, "x", not_found_code="room_not_found")
            assert error.code != "room_not_found", twirp_code


@pytest.mark.parametrize("twirp_code", ["already_exists", "aborted", "failed_precondition"])
def test_conflicts_are_409_named_by_the_twirp_code(twirp_code):
    error = error_for_twirp(twirp_code, "dispatch already exists")
    assert isinstance(error, Conflict)
    assert (error.status, error.code) == (409, twirp_code)


def test_resource_exhausted_is_429_with_retry_after():
    error = error_for_twirp("resource_exhausted", "too many requests")
    assert isinstance(error, RateLimited)
    assert error.status == 429
    assert int(error.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("twirp_code", ["unauthenticated", "permission_denied"])
def test_refused_credentials_are_502_and_raise_an_alert(twirp_code, caplog):
    with caplog.at_level(logging.DEBUG, logger="app.core.errors"):
        error = error_for_twirp(twirp_code, "invalid token")
    assert isinstance(error, UpstreamError)
    assert (error.status, error.code) == (502, "livekit_auth")
    # Never 401/403: the caller's credentials were fine, ours were not.
    assert "credentials" in error.detail
    alerts = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(alerts) == 1
    assert alerts[0].name == "app.core.errors"
    assert "ALERT" in alerts[0].getMessage()
    assert twirp_code in alerts[0].getMessage()


def test_other_codes_raise_no_alert(caplog):
    with caplog.at_level(logging.DEBUG, logger="app.core.errors"):
        for twirp_code in ALL_TWIRP_CODES:
            if twirp_code not in {"unauthenticated", "permission_denied"}:
                error_for_twirp(twirp_code, "x")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("message", REDIS_REQUIRED)
def test_internal_redis_required_is_501_feature_not_enabled(message):
    error = error_for_twirp("internal", message)
    assert isinstance(error, FeatureNotEnabled)
    assert (error.status, error.code) == (501, "feature_not_enabled")
    assert message in error.detail


def test_redis_required_is_matched_regardless_of_case():
    error = error_for_twirp("internal", "Egress Not Connected (Redis Required)")
    assert (error.status, error.code) == (501, "feature_not_enabled")


def test_unimplemented_is_501_feature_not_enabled():
    error = error_for_twirp("unimplemented", "not supported")
    assert isinstance(error, FeatureNotEnabled)
    assert (error.status, error.code) == (501, "feature_not_enabled")


def test_self_hosted_not_implemented_is_501_feature_not_enabled():
    # livekit-server refuses the Cloud-only ForwardParticipant / MoveParticipant this way
    error = error_for_twirp("unknown", "not implemented")
    assert (error.status, error.code) == (501, "feature_not_enabled")
    assert error_for_twirp("unknown", "could not find object").status == 502


def test_redis_required_only_counts_on_internal():
    error = error_for_twirp("unknown", "egress not connected (redis required)")
    assert (error.status, error.code) == ANYTHING_ELSE


def test_unavailable_is_503_with_retry_after():
    error = error_for_twirp("unavailable", "no nodes available")
    assert isinstance(error, UpstreamUnavailable)
    assert (error.status, error.code) == (503, "livekit_unavailable")
    assert int(error.headers["Retry-After"]) >= 1


def test_deadline_exceeded_is_504():
    error = error_for_twirp("deadline_exceeded", "context deadline exceeded")
    assert isinstance(error, UpstreamTimeout)
    assert (error.status, error.code) == (504, "livekit_timeout")


@pytest.mark.parametrize(
    "twirp_code",
    ["internal", "unknown", "dataloss", "bad_route", "canceled", "no_such_code", ""],
)
def test_anything_else_is_502(twirp_code):
    error = error_for_twirp(twirp_code, "boom")
    assert type(error) is UpstreamError
    assert (error.status, error.code) == ANYTHING_ELSE
    assert error.detail == "LiveKit: boom"


@pytest.mark.parametrize("twirp_code", ALL_TWIRP_CODES)
def test_retry_after_only_where_the_contract_says(twirp_code):
    error = error_for_twirp(twirp_code, "x")
    assert ("Retry-After" in error.headers) == (error.status in {429, 503})


# SIP: "A SIP call that fails with a SIP status returns 502 with sip_status_code and sip_status".


@pytest.mark.parametrize(
    ("twirp_code", "sip_code", "sip_status"),
    [
        ("unavailable", "486", "Busy Here"),
        ("resource_exhausted", "503", "Service Unavailable"),
        ("not_found", "404", "Not Found"),
        ("permission_denied", "603", "Decline"),
        ("deadline_exceeded", "480", "Temporarily Unavailable"),
    ],
)
def test_sip_status_is_502_with_sip_members(twirp_code, sip_code, sip_status, caplog):
    metadata = {"sip_status_code": sip_code, "sip_status": sip_status, "error_details": "x"}
    with caplog.at_level(logging.DEBUG, logger="app.core.errors"):
        error = error_for_twirp(
            twirp_code, "sip call failed", not_found_code="room_not_found", metadata=metadata
        )
    assert type(error) is UpstreamError
    assert (error.status, error.code) == (502, "sip_call_failed")
    assert error.extra == {"sip_status_code": int(sip_code), "sip_status": sip_status}
    assert "Retry-After" not in error.headers
    # A callee declining is not our credentials being refused.
    assert not [r for r in caplog.records if r.levelno == logging.CRITICAL]


def test_sip_status_code_without_reason_phrase():
    error = error_for_twirp("unavailable", "x", metadata={"sip_status_code": "603"})
    assert (error.status, error.code) == (502, "sip_call_failed")
    assert error.extra == {"sip_status_code": 603}


# "A callee that never answers is 504 with the SIP detail", whatever Twirp code wraps it.


@pytest.mark.parametrize(
    ("twirp_code", "message", "metadata"),
    [
        ("deadline_exceeded", "x", {"sip_status_code": "408", "sip_status": "Request Timeout"}),
        ("unavailable", "x", {"sip_status_code": "408"}),
        # livekit-sip v1.8 when its ringing timeout lapses (measured with a phone that rings)
        ("canceled", "twirp error unknown: sip request timed out", {}),
        ("deadline_exceeded", "sip request timed out", {}),
    ],
)
def test_a_callee_that_never_answers_is_504(twirp_code, message, metadata):
    error = error_for_twirp(twirp_code, message, metadata=metadata)
    assert (error.status, error.code) == (504, "sip_call_timeout")
    assert error.extra["sip_status_code"] == 408
    assert error.extra["sip_status"] == "Request Timeout"


def test_a_timeout_that_is_not_sip_keeps_the_table():
    error = error_for_twirp("canceled", "twirp error unknown: request timed out")
    assert (error.status, error.code) == (502, "livekit_error")
    assert error.extra == {}


def test_a_failed_transfer_names_its_reason():
    error = error_for_twirp("unavailable", "x", metadata={"sip_transfer_reason": "STR_X"})
    assert (error.status, error.code) == (502, "sip_call_failed")
    assert error.extra == {"sip_transfer_reason": "STR_X"}


def test_metadata_without_sip_status_keeps_the_table():
    error = error_for_twirp("not_found", "x", not_found_code="room_not_found", metadata={"a": "b"})
    assert (error.status, error.code) == (404, "room_not_found")
    assert error.extra == {}


# How errors leave the service: problem+json, as /openapi.json documents them.

UNUSED_LIVEKIT = "http://127.0.0.1:9"  # never called by these tests


@pytest.mark.parametrize(
    "body", [b"{", b"\x00", b"\xff\xfe*a", b"not json"], ids=["cut", "nul", "not-utf8", "text"]
)
async def test_an_unreadable_body_is_400_malformed_json(app_client, body):
    async with app_client(UNUSED_LIVEKIT) as http:
        response = await http.post(
            "/v1/tokens",
            content=body,
            headers={"content-type": "application/json", **auth("minter")},
        )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["code"]) == (400, "malformed_json")
    assert problem["request_id"] == response.headers["x-request-id"]


async def test_a_valid_json_body_that_breaks_the_schema_is_422_with_errors(app_client):
    async with app_client(UNUSED_LIVEKIT) as http:
        response = await http.post(
            "/v1/tokens", json={"ttl_seconds": "soon"}, headers=auth("minter")
        )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert problem["errors"][0]["loc"] == ["body", "ttl_seconds"]


@pytest.fixture(scope="module")
def openapi(tmp_path_factory) -> dict:
    settings = make_settings(UNUSED_LIVEKIT, tmp_path_factory.mktemp("openapi"))
    return create_app(settings).openapi()


def operations(openapi: dict) -> list[tuple[str, str, dict]]:
    return [(m.upper(), p, op) for p, item in openapi["paths"].items() for m, op in item.items()]


def test_openapi_documents_every_error_as_a_problem(openapi):
    problem = {"schema": {"$ref": "#/components/schemas/Problem"}}
    for method, path, operation in operations(openapi):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")) and path != "/readyz":
                assert response["content"] == {"application/problem+json": problem}, (
                    method,
                    path,
                    status,
                )
    assert "HTTPValidationError" not in openapi["components"]["schemas"]
    assert {"type", "title", "status", "detail", "code"} <= set(
        openapi["components"]["schemas"]["Problem"]["required"]
    )


def test_openapi_documents_400_wherever_a_json_body_is_read(openapi):
    with_body = [(m, p, op) for m, p, op in operations(openapi) if "requestBody" in op]
    assert with_body
    for method, path, operation in with_body:
        assert "400" in operation["responses"], (method, path)


def test_openapi_readyz_documents_its_report(openapi):
    responses = openapi["paths"]["/readyz"]["get"]["responses"]
    for status in ("200", "503"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Readiness"}


def test_openapi_token_endpoint_admits_anonymous_callers(openapi):
    """`/v1/token` works without a bearer when the policy admits anonymous callers."""
    assert {} in openapi["paths"]["/v1/token"]["post"]["security"]
    assert {} not in openapi["paths"]["/v1/tokens"]["post"]["security"]
