"""Fuzz tier: schemathesis over the service's own /openapi.json.

The app runs in-process (schemathesis' ASGI transport, lifespan included) against a real
LiveKit dev server of its own, so what the fuzz creates stays out of the other tests'
server; it is called with the `admin` service key. For every operation, generated
requests (valid and invalid) must never get a 5xx, and every response must be one the
schema documents: its status code, content type, headers and body.

The document is the one `create_app().openapi()` builds (what `/openapi.json` serves, which
`test_served_document_is_the_fuzzed_one` checks); requests go to an app whose settings point
at the `fuzz_livekit` fixture.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import ASGIClient
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from starlette.types import Receive, Scope, Send

from app.core.devserver import LocalLiveKit
from app.main import create_app
from tests.components import LocalRedis
from tests.conftest import API_KEY, API_SECRET, KEYS, make_settings

pytestmark = pytest.mark.integration


#: What every response must satisfy: never a 5xx; a status, content type, headers and body
#: the schema documents; auth enforced where the schema declares it; 405 for methods a path
#: does not have. Left out: `negative_data_rejection` (pydantic coerces by design what a
#: JSON Schema validator calls a type error: "5" for an integer, as LiveKit's protojson
#: does for 64-bit integers, 0/1 for a boolean, a number for a date-time),
#: `positive_data_acceptance` (a schema-valid body may break a rule JSON Schema cannot
#: state, e.g. a `room_join` grant needs `video.room`), and the stateful checks.
def not_a_server_error_but_no_egress_worker(ctx: Any, response: Any, case: Any) -> bool | None:
    """`not_a_server_error`, except the contract's 504 for an egress start that reaches a
    room LiveKit has (the fuzzed room routes create some) while this tier runs no egress
    worker: the service answers 504 `livekit_timeout` at its deadline, saying so."""
    if (
        response.status_code == 504
        and case.method.upper() == "POST"
        and case.path.startswith("/v1/egress/")
        and "no egress worker accepted the request" in response.text
    ):
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [
    not_a_server_error_but_no_egress_worker,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
    missing_required_header,
    unsupported_method,
]

#: Examples per operation (positive and negative together); a few ms each, in-process
#: against LiveKit on loopback. Each request is bounded by `request-timeout`; a per-example
#: Hypothesis deadline would be a timed assertion on shared cores.
MAX_EXAMPLES = 100

CONFIG = schemathesis.Config.from_dict(
    {
        # The `admin` service key for the HTTPBearer scheme; schemathesis also drops it to
        # check that routes refuse callers without one.
        "auth": {"openapi": {"HTTPBearer": {"bearer": KEYS["admin"][0]}}},
        # Bounded: the coverage phase enumerates every case a schema allows (tens of
        # thousands for the webhook body); the fuzzing phase draws MAX_EXAMPLES.
        "phases": {"coverage": {"enabled": False}},
        "generation": {"max-examples": MAX_EXAMPLES},
        "request-timeout": 30,
        "operations": [
            # An event stream never ends on its own: read its first frames, then cut it.
            {
                "include-path-regex": "/events/stream$",
                "request-timeout": 0.5,
                "generation": {"max-examples": 20},
            },
        ],
    }
)


class AppUnderTest:
    """The ASGI app schemathesis calls, fixed when tests are collected; it forwards to the
    app `fuzz_app` builds once LiveKit's URL is known (lifespan messages included)."""

    def __init__(self) -> None:
        self.target: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.target is not None, "the fuzz_app fixture has not run"
        await self.target(scope, receive, send)


#: The OpenAPI document; no component is needed to build it.
DOCUMENT = create_app(make_settings("http://127.0.0.1:7880", Path(tempfile.gettempdir()))).openapi()
APP = AppUnderTest()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)
schema.app = APP


@schema.hook
def filter_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> bool:
    """`GET /v1/webhooks/events/stream` is the event stream's own operation (its route is
    matched first), not an event whose id is `stream`."""
    return (path_parameters or {}).get("event_id") != "stream"


@pytest.fixture(scope="module")
def fuzz_livekit() -> Iterator[LocalLiveKit]:
    """A LiveKit dev server of the fuzz tier's own, with a Redis of its own: what the
    generated requests create (rooms, SIP trunks with any numbers or none, dispatch rules,
    ingresses) stays there, out of the other tests' LiveKit."""
    redis = LocalRedis().start()
    server = LocalLiveKit(api_key=API_KEY, api_secret=API_SECRET, redis=redis.address)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        redis.stop()


@pytest.fixture(scope="module")
def fuzz_app(
    fuzz_livekit: LocalLiveKit, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FastAPI]:
    """The service against the real LiveKit dev server, with its own event store; every
    generated request (and every probe a check sends) goes to it in-process.

    Module-scoped: Hypothesis reuses it for every example; schemathesis starts its lifespan on
    the first request of each operation's test and ends it after that test."""
    APP.target = create_app(make_settings(fuzz_livekit.url, tmp_path_factory.mktemp("fuzz")))
    yield APP.target
    APP.target = None


def test_served_document_is_the_fuzzed_one(fuzz_app):
    with ASGIClient(fuzz_app) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json() == DOCUMENT


@schema.parametrize()
@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=True,
)
def test_no_server_errors_and_responses_match_the_schema(case, fuzz_app):
    case.call_and_validate(checks=CHECKS)
