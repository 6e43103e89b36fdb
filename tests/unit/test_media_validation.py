"""Egress and ingress bodies are checked before LiveKit is called (the app here points at a
port nothing listens on, so anything that reached LiveKit would be a 503): 422 naming the
field, 403 outside MEDIA_URL_ALLOW, scopes."""

from __future__ import annotations

import pytest

from tests.conftest import auth

NOWHERE = "http://127.0.0.1:9"
FILE = {"filepath": "rec/a.mp4"}

#: (path, body, what the problem must name)
INVALID = [
    ("/v1/egress/room-composite", {"room_name": "r"}, "an output is required"),
    ("/v1/egress/web", {"url": "https://e.test/", "file_outputs": []}, "an output is required"),
    ("/v1/egress/track", {"room_name": "r", "track_id": "TR_a"}, "`websocket_url`"),
    ("/v1/egress/web", {"url": "file:///etc/passwd", "file_outputs": [FILE]}, "`url` must be"),
    ("/v1/egress/web", {"file_outputs": [FILE]}, "url"),
    ("/v1/egress/room-composite",
     {"room_name": "r", "custom_base_url": "ftp://x", "file_outputs": [FILE]}, "custom_base_url"),
    ("/v1/egress/participant",
     {"room_name": "r", "identity": "a", "stream_outputs": [{"urls": ["http://x/live"]}]},
     "`stream_outputs[0].urls[0]` must be an rtmp://, rtmps:// or srt:// URL"),
    ("/v1/egress/room-composite",
     {"room_name": "r", "stream": {"urls": ["rtmp://ok/a", "https://x"]}}, "`stream.urls[1]`"),
    ("/v1/egress/track-composite",
     {"room_name": "r", "audio_track_id": "TR_a",
      "file_outputs": [{"filepath": "../../etc/cron.d/x"}]},
     "`file_outputs[0].filepath` must not contain a `..` segment"),
    ("/v1/egress/track",
     {"room_name": "r", "track_id": "TR_a", "file": {"filepath": "a/..\\\\b.ogg"}},
     "`file.filepath`"),
    ("/v1/egress/track", {"room_name": "r", "track_id": "TR_a", "websocket_url": "http://x"},
     "`websocket_url` must be a ws or wss URL"),
    ("/v1/egress/track-composite", {"room_name": "r", "file_outputs": [FILE]}, "audio_track_id"),
    ("/v1/egress/participant", {"room_name": "r", "file_outputs": [FILE]}, "identity"),
    ("/v1/egress/track",
     {"room_name": "r", "track_id": "TR_a", "file": FILE, "websocket_url": "wss://x"},
     "`file` and `websocket_url` are both given"),
    ("/v1/egress/room-composite",
     {"room_name": "r", "file": FILE, "preset": "H264_720P_30", "advanced": {"width": 640}},
     "`preset` and `advanced` are both given"),
    ("/v1/ingress", {"room_name": "r"}, "input_type"),
    ("/v1/ingress", {"input_type": "URL_INPUT"}, "`url` is required for URL_INPUT"),
    ("/v1/ingress", {"input_type": "URL_INPUT", "url": "file:///etc/passwd"},
     "`url` must be an http://, https:// or srt:// URL"),
    ("/v1/ingress", {"input_type": "RTMP_INPUT", "url": "https://x"}, "only for URL_INPUT"),
    ("/v1/ingress", {"input_type": "NOT_A_KIND"}, "input_type"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "named"), INVALID)
async def test_invalid_bodies_are_422_naming_the_field(app_client, path, body, named):
    async with app_client(NOWHERE) as http:
        response = await http.post(path, json=body, headers=auth("admin"))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert named in response.text


async def test_update_stream_needs_a_url_and_stream_schemes(app_client):
    async with app_client(NOWHERE) as http:
        empty = await http.patch("/v1/egress/EG_a/stream", json={}, headers=auth("admin"))
        wrong = await http.patch(
            "/v1/egress/EG_a/stream", json={"add_output_urls": ["http://x"]}, headers=auth("admin")
        )
    assert empty.status_code == wrong.status_code == 422
    assert "`add_output_urls[0]`" in wrong.text


async def test_camel_case_start_bodies_are_accepted(app_client):
    body = {"roomName": "r", "trackId": "TR_a", "file": {"filepath": "a.ogg"}}
    async with app_client(NOWHERE) as http:
        response = await http.post("/v1/egress/track", json=body, headers=auth("admin"))
    assert response.status_code == 503, response.text  # valid: it reached (no) LiveKit


ALLOW = "https://app.example.com/*,srt://cams.example.com:*"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/egress/web", {"url": "http://169.254.169.254/latest/meta-data", "file": FILE}),
        ("/v1/egress/web", {"url": "https://app.example.com.evil.test/x", "file": FILE}),
        ("/v1/egress/room-composite",
         {"room_name": "r", "custom_base_url": "http://10.0.0.1/", "file": FILE}),
        ("/v1/ingress", {"input_type": "URL_INPUT", "url": "http://intranet.local/a.mp4"}),
    ],
)  # fmt: skip
async def test_urls_outside_media_url_allow_are_403(app_client, path, body):
    async with app_client(NOWHERE, media_url_allow=ALLOW) as http:
        response = await http.post(path, json=body, headers=auth("admin"))
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "media_url_not_allowed"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/egress/web", {"url": "https://app.example.com/board?x=1", "file": FILE}),
        ("/v1/ingress", {"input_type": "URL_INPUT", "url": "srt://cams.example.com:9000"}),
    ],
)
async def test_urls_inside_media_url_allow_reach_livekit(app_client, path, body):
    async with app_client(NOWHERE, media_url_allow=ALLOW) as http:
        response = await http.post(path, json=body, headers=auth("admin"))
    assert response.status_code == 503, response.text  # allowed: it reached (no) LiveKit


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/v1/egress/web",
         {"url": "https://app.example.com/x", "stream_outputs": [{"urls": ["rtmp://10.0.0.1/a"]}]},
         "stream_outputs[0].urls[0]"),
        ("POST", "/v1/egress/participant",
         {"room_name": "r", "identity": "a", "file_outputs": [FILE],
          "webhooks": [{"url": "http://169.254.169.254/hook"}]}, "webhooks[0].url"),
        ("POST", "/v1/egress/track-composite",
         {"room_name": "r", "audio_track_id": "TR_a",
          "file_outputs": [{"filepath": "a.ogg", "s3": {"endpoint": "http://127.0.0.1:9000"}}]},
         "file_outputs[0].s3.endpoint"),
        ("POST", "/v1/egress/track",
         {"room_name": "r", "track_id": "TR_a", "websocket_url": "wss://10.0.0.1/ws"},
         "websocket_url"),
        ("POST", "/v1/egress/room-composite",
         {"room_name": "r", "custom_base_url": "https://a.example.com@169.254.169.254/",
          "file": FILE}, "custom_base_url"),
        ("PATCH", "/v1/egress/EG_a/stream", {"add_output_urls": ["srt://10.0.0.1:9000"]},
         "add_output_urls[0]"),
    ],
)  # fmt: skip
async def test_every_url_of_an_egress_is_within_media_url_allow(
    app_client, method, path, body, field
):
    async with app_client(NOWHERE, media_url_allow=ALLOW) as http:
        response = await http.request(method, path, json=body, headers=auth("admin"))
    assert response.status_code == 403, response.text  # refused before (no) LiveKit: not 503
    assert response.json()["code"] == "media_url_not_allowed"
    assert response.json()["field"] == field


def test_media_url_allow_is_read_from_the_environment(monkeypatch):
    from app.config.settings import Settings

    monkeypatch.setenv("MEDIA_URL_ALLOW", ALLOW)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.media_url_allow == ["https://app.example.com/*", "srt://cams.example.com:*"]


@pytest.mark.parametrize(
    ("method", "path", "key", "scope"),
    [
        ("POST", "/v1/egress/track", "reader", "egress:write"),
        ("POST", "/v1/egress/EG_a/stop", "reader", "egress:write"),
        ("POST", "/v1/ingress", "reader", "ingress:write"),
        ("DELETE", "/v1/ingress/IN_a", "reader", "ingress:write"),
        ("GET", "/v1/egress", "nobody", "rooms:read"),
        ("GET", "/v1/ingress/IN_a", "nobody", "rooms:read"),
    ],
)
async def test_scopes(app_client, method, path, key, scope):
    async with app_client(NOWHERE) as http:
        response = await http.request(method, path, json={}, headers=auth(key))
    assert response.status_code == 403, response.text
    assert scope in response.json()["detail"]
