"""`python -m bench.micro`: per-operation costs on one core, as JSON (microseconds, the best
of 5 runs): minting a join token with the service (`SignedAccessToken.sign`) and with
livekit-api (`AccessToken.to_jwt`); verifying and parsing a 1.2 KB webhook with the
service (`verify_signature` + `parse_event`) and with livekit-api's `WebhookReceiver`.
`python -m bench` runs it pinned to the servers' core, beside the Node SDK's `toJwt`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any

from livekit import api

from app.livekit.access_tokens import SignedAccessToken
from app.livekit.webhook_verification import parse_event, verify_signature

KEY, SECRET = "APIbench", "s" * 43


def webhook_event(event_id: str, created_at: int | None = None) -> bytes:
    """A participant_joined event as LiveKit sends it (protojson), about 1.2 KB."""
    now = created_at or int(time.time())
    data: dict[str, Any] = {
        "event": "participant_joined", "id": event_id, "createdAt": str(now),
        "room": {
            "sid": "RM_bench", "name": "bench-room", "emptyTimeout": 300,
            "departureTimeout": 20, "maxParticipants": 500, "creationTime": str(now),
            "creationTimeMs": str(now * 1000), "numParticipants": 42, "numPublishers": 3,
            "enabledCodecs": [{"mime": m} for m in ("audio/opus", "audio/red", "video/VP8",
                                                    "video/H264", "video/VP9", "video/AV1")],
            "version": {"unixMicro": str(now * 10**6)},
        },
        "participant": {
            "sid": "PA_bench", "identity": f"user-{event_id[-6:]}", "state": "ACTIVE",
            "joinedAt": str(now), "joinedAtMs": str(now * 1000), "name": "Bench User",
            "version": 2, "isPublisher": True, "kind": "STANDARD",
            "permission": {"canSubscribe": True, "canPublish": True, "canPublishData": True},
            "attributes": {"lang": "de", "team": "blue"},
            "metadata": '{"avatar":"https://example.com/avatars/bench.png"}',
            "tracks": [{
                "sid": "TR_bench", "type": "AUDIO", "name": "microphone", "source": "MICROPHONE",
                "mimeType": "audio/red", "mid": "0", "stream": "camera",
                "version": {"unixMicro": str(now * 10**6)},
                "audioFeatures": ["TF_AUTO_GAIN_CONTROL", "TF_ECHO_CANCELLATION"],
            }],
        },
    }  # fmt: skip
    return json.dumps(data, separators=(",", ":")).encode()


def webhook_authorization(body: bytes, key: str, secret: str, ttl_seconds: int = 3600) -> str:
    """The Authorization value LiveKit sends with `body` (livekit-api signs it)."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    token = api.AccessToken(key, secret).with_ttl(dt.timedelta(seconds=ttl_seconds))
    return token.with_sha256(digest).to_jwt()


def best_us(operation: Callable[[], object], number: int) -> float:
    """The best of 5 runs of `number` calls, in microseconds per call."""
    return min(timeit.repeat(operation, number=number, repeat=5)) / number * 1e6


def join_grants() -> api.VideoGrants:
    return api.VideoGrants(room_join=True, room="bench", can_publish=True, can_subscribe=True)


def mint_ours() -> tuple[str, int]:
    token = SignedAccessToken(KEY, SECRET)
    token.with_identity("p").with_ttl(dt.timedelta(seconds=600)).with_grants(join_grants())
    return token.sign()


def mint_livekit_api() -> str:
    token = api.AccessToken(KEY, SECRET).with_identity("p")
    return token.with_ttl(dt.timedelta(seconds=600)).with_grants(join_grants()).to_jwt()


def main() -> None:
    body = webhook_event("EV_micro_000001")
    authorization = webhook_authorization(body, KEY, SECRET)
    keyring = {KEY: SECRET}
    receiver = api.WebhookReceiver(api.TokenVerifier(KEY, SECRET))
    text = body.decode()

    def webhook_ours() -> object:
        verify_signature(body, authorization, keyring)
        return parse_event(body)

    def verify_only() -> object:
        return verify_signature(body, authorization, keyring)

    results = {
        "mint_ours_us": best_us(mint_ours, 5000),
        "mint_livekit_api_us": best_us(mint_livekit_api, 2000),
        "webhook_ours_us": best_us(webhook_ours, 1000),
        "webhook_verify_only_us": best_us(verify_only, 2000),
        "webhook_receiver_us": best_us(lambda: receiver.receive(text, authorization), 1000),
        "webhook_bytes": len(body),
    }
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
