"""Request limits over real HTTP, through uvicorn with each of its HTTP parsers (h11 and
httptools): body size (413 before parsing), authentication before the body (401), header
count and size (431), X-Request-ID echoing, and the last-resort 500 (problem+json with the
request id, logged with its traceback, counted in /metrics, no trace or secret out)."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from app.http.middleware import (
    MAX_BODY_BYTES,
    MAX_HEADER_BLOCK_BYTES,
    MAX_HEADER_BYTES,
    MAX_HEADERS,
)
from tests.components import LiveService, signed_webhook, webhook_body
from tests.conftest import API_KEY, API_SECRET, auth, serving
from tests.helpers import assert_problem

UNUSED_LIVEKIT = "http://127.0.0.1:9"  # nothing here calls LiveKit before refusing


@pytest.fixture(scope="module", params=["h11", "httptools"])
def service(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[LiveService]:
    """The service served by uvicorn with one HTTP parser, plus a route that fails."""
    with serving(
        UNUSED_LIVEKIT, tmp_path_factory.mktemp("limits"), http_parser=request.param
    ) as live:
        assert live._server.config.http == request.param

        async def boom() -> None:
            raise RuntimeError(f"unexpected, holding {API_SECRET}")

        live.app.add_api_route("/v1/test-boom", boom, methods=["GET"])
        yield live


@pytest.fixture
async def http(service: LiveService) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        yield client


# --- bodies --------------------------------------------------------------------------------


async def test_a_body_over_1_mib_is_413_before_it_is_parsed(http):
    over = b"{" + b" " * MAX_BODY_BYTES + b"}"  # would be valid JSON, and 400 if parsed
    response = await http.post(
        "/v1/rooms", content=over, headers={**auth("admin"), "content-type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")


async def test_a_chunked_body_over_1_mib_is_413(http):
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * (64 * 1024)

    response = await http.post(
        "/v1/rooms", content=chunks(), headers={**auth("admin"), "content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload_too_large")


async def test_a_webhook_over_1_mib_is_413(http):
    body = webhook_body("EV_big", metadata="x" * MAX_BODY_BYTES)
    token = signed_webhook(body, api_key=API_KEY, api_secret=API_SECRET)
    response = await http.post(
        "/v1/webhooks/livekit",
        content=body,
        headers={"Authorization": token, "content-type": "application/webhook+json"},
    )
    assert_problem(response, 413, "payload_too_large")


async def test_a_body_of_exactly_1_mib_is_read(http):
    body = json.dumps({"name": "r" * 10, "metadata": "m" * 100}).encode()
    body += b" " * (MAX_BODY_BYTES - len(body))
    response = await http.post(
        "/v1/rooms", content=body, headers={**auth("admin"), "content-type": "application/json"}
    )
    # read and parsed (metadata is fine): LiveKit is unreachable, so the answer is 503
    assert_problem(response, 503, "livekit_unavailable")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-key"}, {"Authorization": "Basic eDp5"}],
    ids=["none", "unknown-key", "other-scheme"],
)
@pytest.mark.parametrize(
    "body", [b"{not json", b"x" * (MAX_BODY_BYTES + 1)], ids=["malformed", "too-large"]
)
async def test_an_unauthenticated_request_is_401_whatever_its_body(http, headers, body):
    response = await http.post(
        "/v1/rooms", content=body, headers={**headers, "content-type": "application/json"}
    )
    problem = assert_problem(
        response, 401, "invalid_service_key" if "not-a-key" in str(headers) else "unauthorized"
    )
    assert response.headers["www-authenticate"] == "Bearer"
    assert "not-a-key" not in json.dumps(problem)


async def test_a_token_request_without_credentials_is_401_whatever_its_body(tmp_path):
    with serving(UNUSED_LIVEKIT, tmp_path, token_policy={"service_keys": {}}) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
            for body in (b"{not json", b"x" * (MAX_BODY_BYTES + 1)):
                response = await http.post(
                    "/v1/token", content=body, headers={"content-type": "application/json"}
                )
                assert_problem(response, 401, "unauthorized")


async def test_an_unsigned_webhook_is_401_whatever_its_body(http):
    response = await http.post(
        "/v1/webhooks/livekit",
        content=b"x" * (MAX_BODY_BYTES + 1),
        headers={"content-type": "application/webhook+json"},
    )
    assert_problem(response, 401, "webhook_signature_invalid")


#: Bodies a caller that is not authenticated may send with its credential: whatever they
#: are (not JSON, wrong types, a field over its limit, a large body within 1 MiB), the answer
#: is 401, on the direct way (a body framed by Content-Length) and the usual one (chunked).
UNAUTHENTICATED_BODIES = {
    "malformed": b'{"room_name":',
    "wrong-types": b'{"room_name":5,"participant_attributes":[1]}',
    "oversize-field": json.dumps({"room_name": "r" * 300}).encode(),
    "large": b"{" + b" " * (MAX_BODY_BYTES - 2) + b"}",
}


async def chunked(body: bytes) -> AsyncIterator[bytes]:
    """`body` sent chunked (`Transfer-Encoding: chunked`): such a request goes the usual
    way, not the direct one (`routers.direct.DirectRoutesMiddleware`)."""
    for start in range(0, len(body), 64 * 1024):
        yield body[start : start + 64 * 1024]


async def assert_401_whatever_the_body(
    http: httpx.AsyncClient, path: str, headers: dict[str, str], code: str
) -> None:
    for name, body in UNAUTHENTICATED_BODIES.items():
        for content in (body, chunked(body)):
            response = await http.post(
                path, content=content, headers={**headers, "content-type": "application/json"}
            )
            framing = "chunked" if "transfer-encoding" in response.request.headers else "length"
            assert response.status_code == 401, (name, framing, response.text)
            assert_problem(response, 401, code)
            assert response.headers["www-authenticate"] == "Bearer"


async def test_an_unknown_credential_is_401_whatever_the_body_on_every_way(http):
    garbage = {"Authorization": "Bearer garbage"}
    await assert_401_whatever_the_body(http, "/v1/token", garbage, "unauthorized")
    await assert_401_whatever_the_body(http, "/v1/rooms", garbage, "invalid_service_key")


async def test_an_end_user_token_that_does_not_verify_is_401_whatever_the_body(
    tmp_path, local_jwks
):
    from tests.unit.test_end_user_jwks import IdentityProvider

    idp = IdentityProvider()
    local_jwks.document = idp.jwks()
    jwks_policy = {"end_users": {"jwks_url": local_jwks.url, "rule": {"rooms": ["*"]}}}
    with serving(UNUSED_LIVEKIT, tmp_path, token_policy=jwks_policy) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
            for token in (idp.es256(kid="rsa-1"), idp.hs256_with_rsa_public_key(), "garbage"):
                headers = {"Authorization": f"Bearer {token}"}
                await assert_401_whatever_the_body(http, "/v1/token", headers, "invalid_user_token")
            # the same caller with a valid token is served (and its body read)
            valid = {"Authorization": f"Bearer {idp.rs256()}", "content-type": "application/json"}
            response = await http.post("/v1/token", content=b'{"room_name":', headers=valid)
            assert_problem(response, 400, "malformed_json")


async def test_a_webhook_with_a_bad_signature_is_401_whatever_the_body(http):
    for body in (b"{not json", b'{"event": 5}', webhook_body("EV_bad")):
        token = signed_webhook(body, api_key=API_KEY, api_secret="not-the-secret" * 3)
        for content_type in ("application/webhook+json", "text/plain"):
            for content in (body, chunked(body)):
                response = await http.post(
                    "/v1/webhooks/livekit",
                    content=content,
                    headers={"Authorization": token, "content-type": content_type},
                )
                assert_problem(response, 401, "webhook_signature_invalid")


# --- headers -------------------------------------------------------------------------------


async def test_one_header_over_16_kib_is_431(http):
    response = await http.get("/healthz", headers={"X-Big": "a" * (MAX_HEADER_BYTES + 1)})
    problem = assert_problem(response, 431, "header_fields_too_large")
    assert "x-big" in problem["detail"]


async def test_more_than_100_headers_is_431(http):
    many = {f"X-H{i}": "v" for i in range(MAX_HEADERS + 1)}
    assert_problem(await http.get("/healthz", headers=many), 431, "header_fields_too_large")


async def test_headers_within_the_limits_are_served(http):
    # httpx adds host, accept, accept-encoding, connection and user-agent
    fields = {f"X-H{i}": "v" * 400 for i in range(MAX_HEADERS - 10)}
    fields["X-Big"] = "b" * (MAX_HEADER_BYTES - 100)
    assert sum(len(k) + len(v) for k, v in fields.items()) < MAX_HEADER_BLOCK_BYTES
    response = await http.get("/healthz", headers=fields)
    assert response.status_code == 200, response.text


async def test_a_header_block_over_64_kib_is_431(http):
    fields = {f"X-H{i}": "v" * 8000 for i in range(9)}
    assert_problem(await http.get("/healthz", headers=fields), 431, "header_fields_too_large")


def test_a_huge_header_block_never_reaches_the_app(service):
    """Far beyond every limit (2 MiB of header): refused, or the connection closed."""
    with socket.create_connection(("127.0.0.1", service.port), timeout=30) as sock:
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (2 * 1024 * 1024)
        try:
            sock.sendall(head + b"\r\n\r\n")
            answer = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            answer = b""
    assert answer == b"" or answer.split(b" ", 2)[1] in (b"400", b"431"), answer[:200]


# --- X-Request-ID --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given", ["abc-123", "x" * 128, "!~#$%&'*+.^_`|"], ids=["simple", "128", "punctuation"]
)
async def test_a_valid_request_id_is_echoed(http, given):
    response = await http.get("/healthz", headers={"X-Request-ID": given})
    assert response.headers["x-request-id"] == given


@pytest.mark.parametrize(
    "given",
    [b"x" * 129, b"has space", b"tab\there", b"caf\xc3\xa9", b"\xff\xfe", b""],
    ids=["129", "space", "tab", "utf8", "latin1", "empty"],
)
async def test_an_invalid_request_id_is_replaced(http, given):
    response = await http.get("/v1/rooms/x", headers=[(b"X-Request-ID", given)])
    echoed = response.headers["x-request-id"]
    assert echoed.encode() != given and 1 <= len(echoed) <= 128 and echoed.isascii()
    assert response.json()["request_id"] == echoed  # the 401 problem carries the same id


# --- the last resort -----------------------------------------------------------------------


async def test_an_unexpected_exception_is_a_problem_500_logged_and_counted(http, caplog):
    with caplog.at_level(logging.ERROR, logger="app.http.problems"):
        response = await http.get("/v1/test-boom", headers={"X-Request-ID": "boom-1"})
    problem = assert_problem(response, 500, "internal_error")
    assert problem["request_id"] == "boom-1"
    assert API_SECRET not in response.text and "Traceback" not in response.text
    assert "RuntimeError" not in response.text
    logged = [r for r in caplog.records if getattr(r, "request_id", None) == "boom-1"]
    assert logged and logged[0].exc_info and logged[0].exc_info[0] is RuntimeError
    metrics = (await http.get("/metrics")).text
    assert 'control_plane_unhandled_exceptions_total{exception="RuntimeError"}' in metrics
    assert any(
        'route="/v1/test-boom"' in line and 'status="500"' in line
        for line in metrics.splitlines()
        if line.startswith("control_plane_http_requests_total{")
    )
