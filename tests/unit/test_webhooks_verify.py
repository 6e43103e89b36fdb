"""Webhook verification against a keyring, with hand-signed JWTs (no network, no store)."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import jwt
import pytest

from app.core.errors import BadRequest, Unauthorized, UnsupportedMediaType
from app.events.webhooks import PageToken
from app.livekit.webhook_verification import (
    check_content_type,
    parse_event,
    verify_signature,
)
from tests.components import signed_webhook, webhook_body

KEY, SECRET = "APImain", "main-secret-" + "x" * 32
OLD_KEY, OLD_SECRET = "APIold", "old-secret-" + "y" * 32
KEYRING = {KEY: SECRET, OLD_KEY: OLD_SECRET}
BODY = webhook_body("EV_unit", "room_started")


def _digest(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def _refused(body: bytes, authorization: str | None) -> Unauthorized:
    with pytest.raises(Unauthorized) as caught:
        verify_signature(body, authorization, KEYRING)
    assert caught.value.status == 401
    assert caught.value.code == "webhook_signature_invalid"
    return caught.value


def test_accepts_a_raw_token_and_a_bearer_token():
    token = signed_webhook(BODY, api_key=KEY, api_secret=SECRET)
    assert verify_signature(BODY, token, KEYRING) == KEY
    assert verify_signature(BODY, f"Bearer {token}", KEYRING) == KEY


def test_any_key_of_the_keyring_is_accepted_by_its_iss():
    token = signed_webhook(BODY, api_key=OLD_KEY, api_secret=OLD_SECRET)
    assert verify_signature(BODY, token, KEYRING) == OLD_KEY


def test_the_main_secret_does_not_stand_for_another_key():
    # Checked in one pass with the main key's secret, the token names another key.
    token = signed_webhook(BODY, api_key=OLD_KEY, api_secret=SECRET)
    assert "signature does not match" in _refused(BODY, token).detail


def test_a_flipped_body_byte_is_refused():
    token = signed_webhook(BODY, api_key=KEY, api_secret=SECRET)
    flipped = bytearray(BODY)
    flipped[10] ^= 0x01
    assert "does not match" in _refused(bytes(flipped), token).detail


def test_the_wrong_secret_is_refused():
    token = signed_webhook(BODY, api_key=KEY, api_secret="another-secret-" + "z" * 32)
    _refused(BODY, token)


def test_a_secret_of_another_key_is_refused():
    token = signed_webhook(BODY, api_key=KEY, api_secret=OLD_SECRET)
    _refused(BODY, token)


def test_an_unknown_issuer_is_refused():
    token = signed_webhook(BODY, api_key="APIstranger", api_secret=SECRET)
    assert "not a configured API key" in _refused(BODY, token).detail


def test_an_expired_token_is_refused():
    token = signed_webhook(BODY, api_key=KEY, api_secret=SECRET, ttl_seconds=-600)
    assert "expired" in _refused(BODY, token).detail


def test_a_token_without_exp_is_refused():
    token = jwt.encode({"iss": KEY, "sha256": _digest(BODY)}, SECRET, algorithm="HS256")
    _refused(BODY, token)


def test_a_token_without_sha256_is_refused():
    claims = {"iss": KEY, "exp": int(time.time()) + 300}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    assert "no sha256" in _refused(BODY, token).detail


def test_a_sha256_claim_that_is_not_base64_is_refused():
    token = signed_webhook(BODY, api_key=KEY, api_secret=SECRET, sha256="not base64!!")
    assert "not base64" in _refused(BODY, token).detail


def test_a_sha256_claim_of_another_body_is_refused():
    token = signed_webhook(BODY, api_key=KEY, api_secret=SECRET, sha256=_digest(b"{}"))
    _refused(BODY, token)


def test_alg_none_is_refused():
    claims = {"iss": KEY, "exp": int(time.time()) + 300, "sha256": _digest(BODY)}
    token = jwt.encode(claims, None, algorithm="none")
    _refused(BODY, token)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_another_algorithm_is_refused():
    claims = {"iss": KEY, "exp": int(time.time()) + 300, "sha256": _digest(BODY)}
    token = jwt.encode(claims, SECRET, algorithm="HS512")
    _refused(BODY, token)


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer ", "not-a-jwt", "a.b.c"])
def test_a_missing_or_malformed_header_is_refused(authorization):
    _refused(BODY, authorization)


def test_a_token_whose_claims_are_of_the_wrong_shape_is_refused():
    claims = {"iss": KEY, "exp": int(time.time()) + 300, "sha256": 5, "video": "x"}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    _refused(BODY, token)


@pytest.mark.parametrize(
    "content_type",
    ["application/webhook+json", "application/json", "application/json; charset=utf-8"],
)
def test_accepted_content_types(content_type):
    check_content_type(content_type)


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/xml"])
def test_other_content_types_are_415(content_type):
    with pytest.raises(UnsupportedMediaType) as caught:
        check_content_type(content_type)
    assert caught.value.status == 415


def test_parse_reads_livekit_protojson_into_columns():
    body = webhook_body(
        "EV_p",
        "participant_joined",
        room="r1",
        participant={"sid": "PA_1", "identity": "alice"},
        createdAt="1700000000",
    )
    event, columns = parse_event(body)
    assert event.participant.identity == "alice"
    assert columns["id"] == "EV_p"
    assert columns["event"] == "participant_joined"
    assert columns["room_name"] == "r1"
    assert columns["participant_identity"] == "alice"
    assert columns["egress_id"] is None
    assert columns["created_at"].timestamp() == 1700000000
    assert columns["body"] == body.decode()


def test_parse_takes_egress_and_ingress_ids_and_their_room():
    egress = json.dumps(
        {
            "event": "egress_started",
            "id": "EV_e",
            "egressInfo": {"egressId": "EG_1", "roomName": "r"},
        }
    ).encode()
    _, columns = parse_event(egress)
    assert (columns["egress_id"], columns["room_name"]) == ("EG_1", "r")
    ingress = json.dumps(
        {"event": "ingress_started", "id": "EV_i", "ingressInfo": {"ingressId": "IN_1"}}
    ).encode()
    assert parse_event(ingress)[1]["ingress_id"] == "IN_1"


def test_parse_accepts_unknown_event_types_and_fields():
    body = json.dumps({"event": "future_thing", "id": "EV_f", "futureField": {"a": 1}}).encode()
    event, columns = parse_event(body)
    assert event.event == columns["event"] == "future_thing"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b"\xff\xfe{}",
        b'{"event": "room_started"}',
        b'{"id": "EV_x"}',
        b'{"id": "EV_x", "event": "bad\\ntype"}',
        b'{"id": "EV_x", "event": "room_started", "room": {"name": 5}}',
        b'{"id": "EV_x", "event": "room_started", "createdAt": "yesterday"}',
        b"[" * 100000,
    ],
)
def test_unparseable_bodies_are_400(body):
    with pytest.raises(BadRequest) as caught:
        parse_event(body)
    assert caught.value.code == "webhook_malformed"


def test_page_tokens_round_trip_and_refuse_forgeries():
    token = PageToken(1234).encode()
    assert PageToken.decode(token) == PageToken(1234)
    for bad in ["", "xyz", "!!!", base64.urlsafe_b64encode(b"ev1:abc").decode()]:
        with pytest.raises(BadRequest):
            PageToken.decode(bad)
