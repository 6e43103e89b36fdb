"""`app.server_apis.media`: which of LiveKit's fields a worker or server fetches, sends to or
writes to,
and the one check of them. The classification is proven complete over the descriptors of
every message the service accepts, so a field a new LiveKit version adds cannot slip past;
`check_media` is shown to find such fields at any depth."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from livekit import api
from livekit.protocol import egress, ingress, room, sip

from app.core.errors import Forbidden, InvalidInput
from app.server_apis.media import NOT_URL_FIELDS, PATH_FIELDS, URL_FIELDS, check_media
from app.server_apis.urlpatterns import ANY_URL, UrlAllowList

#: The request messages whose contents reach LiveKit's workers, wherever they enter.
ACCEPTED = [
    egress.RoomCompositeEgressRequest,
    egress.WebEgressRequest,
    egress.ParticipantEgressRequest,
    egress.TrackCompositeEgressRequest,
    egress.TrackEgressRequest,
    egress.UpdateStreamRequest,
    room.RoomConfiguration,
    room.CreateRoomRequest,
    sip.SIPDispatchRuleInfo,
    sip.SIPDispatchRuleUpdate,
    sip.CreateSIPDispatchRuleRequest,
    ingress.CreateIngressRequest,
]

#: String field names that say "a URL, an endpoint, a host" or "a path".
URL_LIKE = re.compile(r"(^|_)(urls?|hosts?|hostname)($|_)|endpoint|uri|webhook|proxy|server")
PATH_LIKE = re.compile(r"path|filename|playlist|prefix|(^|_)dir(ectory)?($|_)|folder")


def reachable(descriptor: Descriptor, seen: set[str] | None = None) -> Iterator[FieldDescriptor]:
    """Every field of `descriptor` and of the messages its fields hold, at any depth (map
    values included), each once."""
    seen = set() if seen is None else seen
    if descriptor.full_name in seen:
        return
    seen.add(descriptor.full_name)
    for field in descriptor.fields:
        yield field
        if field.message_type is not None:
            yield from reachable(field.message_type, seen)


def string_fields() -> list[FieldDescriptor]:
    seen: set[str] = set()
    fields = [f for m in ACCEPTED for f in reachable(m.DESCRIPTOR, seen)]
    return [f for f in fields if f.type == FieldDescriptor.TYPE_STRING]


def test_every_field_named_like_a_url_or_a_path_is_classified():
    classified = URL_FIELDS.keys() | PATH_FIELDS | NOT_URL_FIELDS.keys()
    missed = [
        field.full_name
        for field in string_fields()
        if (URL_LIKE.search(field.name) or PATH_LIKE.search(field.name))
        and field.full_name not in classified
    ]
    assert not missed, f"classify these in app.server_apis.media: {missed}"


def test_the_tables_name_real_string_fields_reached_by_the_accepted_messages():
    pool = descriptor_pool.Default()
    reached = {field.full_name for field in string_fields()}
    for name in URL_FIELDS.keys() | PATH_FIELDS | NOT_URL_FIELDS.keys():
        field = pool.FindFieldByName(name)
        assert field.type == FieldDescriptor.TYPE_STRING, name
        assert name in reached, name
    assert not URL_FIELDS.keys() & PATH_FIELDS
    assert not (URL_FIELDS.keys() | PATH_FIELDS) & NOT_URL_FIELDS.keys()


def test_the_guard_sees_the_fields_the_issue_names():
    """The name patterns catch every kind of field the check is about (else the guard above
    would prove nothing)."""
    names = {f.full_name: f.name for f in string_fields()}
    for full_name in URL_FIELDS:
        assert URL_LIKE.search(names[full_name]), full_name
    for full_name in PATH_FIELDS:
        assert PATH_LIKE.search(names[full_name]), full_name


ALLOW = UrlAllowList.parse(["https://*.example.com/*", "rtmps://live.example.com"])
S3_INTERNAL = {"bucket": "b", "endpoint": "http://169.254.169.254"}


def room_config(**egress_fields) -> api.RoomConfiguration:
    return api.RoomConfiguration(egress=api.RoomEgress(**egress_fields))


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (room_config(room=api.RoomCompositeEgressRequest(
            custom_base_url="http://169.254.169.254/latest")), "egress.room.custom_base_url"),
        (room_config(room=api.RoomCompositeEgressRequest(stream_outputs=[api.StreamOutput(
            urls=["rtmps://live.example.com/a", "rtmp://10.0.0.1/live"])])),
         "egress.room.stream_outputs[0].urls[1]"),
        (room_config(room=api.RoomCompositeEgressRequest(
            webhooks=[api.WebhookConfig(url="http://10.0.0.1:8080/hook")])),
         "egress.room.webhooks[0].url"),
        (room_config(tracks=api.AutoTrackEgress(filepath="t", s3=api.S3Upload(**S3_INTERNAL))),
         "egress.tracks.s3.endpoint"),
        (room_config(participant=api.AutoParticipantEgress(segment_outputs=[
            api.SegmentedFileOutput(aliOSS=api.AliOSSUpload(endpoint="oss.internal"))])),
         "egress.participant.segment_outputs[0].aliOSS.endpoint"),
        (room_config(tracks=api.AutoTrackEgress(s3=api.S3Upload(
            bucket="b", proxy=api.ProxyConfig(url="http://127.0.0.1:3128")))),
         "egress.tracks.s3.proxy.url"),
        (api.TrackEgressRequest(websocket_url="wss://a.example.com@10.0.0.1/"), "websocket_url"),
        (api.UpdateStreamRequest(add_output_urls=["rtmps://live.example.com:1936/x"]),
         "add_output_urls[0]"),
        (api.CreateIngressRequest(url="srt://10.0.0.1:9000"), "url"),
    ],
)  # fmt: skip
def test_urls_outside_the_allow_list_are_403_naming_the_field(message, field):
    with pytest.raises(Forbidden) as raised:
        check_media(message, ALLOW)
    assert raised.value.code == "media_url_not_allowed"
    assert raised.value.extra == {"field": field}
    assert f"`{field}`" in raised.value.detail
    check_media(message, ANY_URL)  # no patterns: any URL


def test_where_the_message_sits_prefixes_the_field():
    config = room_config(room=api.RoomCompositeEgressRequest(custom_base_url="http://10.0.0.1"))
    with pytest.raises(Forbidden) as raised:
        check_media(config, ALLOW, at="room_config")
    assert raised.value.extra == {"field": "room_config.egress.room.custom_base_url"}


@pytest.mark.parametrize(
    ("message", "says"),
    [
        (room_config(room=api.RoomCompositeEgressRequest(file_outputs=[
            api.EncodedFileOutput(filepath="rec/../../etc/cron.d/x")])),
         "`egress.room.file_outputs[0].filepath` must not contain a `..` segment"),
        (room_config(tracks=api.AutoTrackEgress(filepath="..\\\\x")),
         "`egress.tracks.filepath` must not contain"),
        (room_config(room=api.RoomCompositeEgressRequest(
            image_outputs=[api.ImageOutput(filename_prefix="../img")])),
         "`egress.room.image_outputs[0].filename_prefix`"),
        (room_config(room=api.RoomCompositeEgressRequest(custom_base_url="file:///etc/passwd")),
         "`egress.room.custom_base_url` must be an http:// or https:// URL"),
        (room_config(room=api.RoomCompositeEgressRequest(
            webhooks=[api.WebhookConfig(url="gopher://x")])),
         "`egress.room.webhooks[0].url` must be an http:// or https:// URL"),
        (room_config(room=api.RoomCompositeEgressRequest(stream_outputs=[api.StreamOutput(
            urls=["http://x/live"])])), "must be an rtmp://, rtmps:// or srt:// URL"),
        (room_config(tracks=api.AutoTrackEgress(s3=api.S3Upload(endpoint="ftp://x"))),
         "`egress.tracks.s3.endpoint` must be an http:// or https:// URL or a host name"),
    ],
)  # fmt: skip
def test_bad_schemes_and_climbing_paths_are_422_naming_the_field(message, says):
    for allow in (ALLOW, ANY_URL):
        with pytest.raises(InvalidInput) as raised:
            check_media(message, allow)
        assert says in raised.value.detail
        assert raised.value.extra["errors"][0]["loc"][0] == "body"


def test_a_bad_scheme_is_422_even_when_another_url_is_outside_the_allow_list():
    config = room_config(room=api.RoomCompositeEgressRequest(
        custom_base_url="http://10.0.0.1",
        webhooks=[api.WebhookConfig(url="ftp://x")],
    ))  # fmt: skip
    with pytest.raises(InvalidInput):
        check_media(config, ALLOW)


def test_allowed_urls_and_bare_endpoints_pass():
    allow = UrlAllowList.parse(["https://*.example.com/*", "http://oss.example.com"])
    config = room_config(
        room=api.RoomCompositeEgressRequest(
            custom_base_url="https://app.example.com/layout",
            file_outputs=[api.EncodedFileOutput(
                filepath="rec/{room_name}.mp4",
                aliOSS=api.AliOSSUpload(endpoint="oss.example.com"),
            )],
            webhooks=[api.WebhookConfig(url="https://hooks.example.com/egress")],
        )
    )  # fmt: skip
    check_media(config, allow)
    with pytest.raises(Forbidden):  # a bare host is read as http://, as AliOSS's SDK does
        check_media(config, UrlAllowList.parse(["https://*.example.com/*"]))
