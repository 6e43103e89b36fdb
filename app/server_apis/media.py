"""What LiveKit's workers and servers fetch or send to, and the one check of it.

LiveKit's egress workers load pages (a web egress `url`, a room composite's template at
`custom_base_url`), send media to stream URLs, WebSockets and object stores (S3 and AliOSS
`endpoint`s, through an upload `proxy`), write files where a path says, and POST to an
egress's `webhooks`; its ingress workers pull a `URL_INPUT` source. Such descriptions reach
LiveKit through the egress and ingress routes, and also inside a `RoomConfiguration`
(`room_config` on `POST /v1/token` and `POST /v1/tokens`, a SIP dispatch rule's
`room_config`) and `egress` on `POST /v1/rooms`, which LiveKit starts when the room is
created: from inside the operator's network, so a caller could make them reach internal
hosts (server-side request forgery) or write outside their directory.

`check_media` is the one check, applied to the LiveKit message each entry becomes, before
LiveKit sees it (contract: Conventions):

1. every field of `URL_FIELDS` set at any depth is a URL of the schemes its `UrlRole`
   takes, else 422 naming the field (an `endpoint` may be a bare host, read as `http://`
   as LiveKit's AliOSS SDK reads it);
2. every field of `PATH_FIELDS` (where a worker writes) has no `..` segment, else 422;
3. then every such URL is admitted by MEDIA_URL_ALLOW (`app.server_apis.urlpatterns`), else 403
   `media_url_not_allowed` naming the field (never repeating the URL).

Fields are classified by their fully-qualified protobuf names and the message is walked by
its descriptors, so a field is checked wherever it nests. `NOT_URL_FIELDS` holds the fields
whose names look like URLs or paths but that nothing fetches or writes to; the unit test
`tests/unit/test_media_fields.py` fails on any string field reachable from the messages the
service accepts that is named like a URL, endpoint, host or path and is classified nowhere,
so a field a new LiveKit version adds cannot slip past.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from app.core.errors import Forbidden, InvalidInput
from app.server_apis.urlpatterns import UrlAllowList

MEDIA_URL_NOT_ALLOWED = "media_url_not_allowed"


@dataclass(frozen=True)
class UrlRole:
    """What one kind of URL field takes: URLs of `schemes`, said as `what` in a problem.
    `bare_host` is the scheme a value without `scheme://` is read with (None: refused)."""

    schemes: tuple[str, ...]
    what: str
    bare_host: str | None = None

    def url(self, value: str) -> str:
        """`value` as the URL the worker will use (a bare host gets `bare_host://`)."""
        if self.bare_host and "://" not in value:
            return f"{self.bare_host}://{value}"
        return value

    def takes(self, url: str) -> bool:
        """True when `url` starts with one of the schemes (any case) and `://`."""
        return url.lower().startswith(tuple(f"{scheme}://" for scheme in self.schemes))


#: Pages a browser loads, webhooks POSTed to.
WEB = UrlRole(("http", "https"), "an http:// or https:// URL")
#: RTMP and SRT outputs (livekit/egress `types.StreamOutput`).
STREAM = UrlRole(("rtmp", "rtmps", "srt"), "an rtmp://, rtmps:// or srt:// URL")
#: A track egress's raw track over a WebSocket.
WEBSOCKET = UrlRole(("ws", "wss"), "a ws or wss URL")
#: An object store's API (S3-compatible, AliOSS): a URL or a bare host.
ENDPOINT = UrlRole(("http", "https"), "an http:// or https:// URL or a host name", "http")
#: The proxy an upload goes through (Go's `http.ProxyURL`).
PROXY = UrlRole(("http", "https", "socks5"), "an http://, https:// or socks5:// URL")
#: What a URL_INPUT ingress pulls.
INGRESS_SOURCE = UrlRole(("http", "https", "srt"), "an http://, https:// or srt:// URL")

#: Every field of LiveKit's messages (livekit/protocol `livekit_egress.proto`,
#: `livekit_ingress.proto`) that a worker or server fetches or sends to, by full name.
URL_FIELDS: dict[str, UrlRole] = {
    "livekit.WebEgressRequest.url": WEB,
    "livekit.RoomCompositeEgressRequest.custom_base_url": WEB,
    "livekit.WebhookConfig.url": WEB,
    "livekit.StreamOutput.urls": STREAM,
    "livekit.StreamDestination.url": STREAM,
    "livekit.UpdateStreamRequest.add_output_urls": STREAM,
    "livekit.TrackEgressRequest.websocket_url": WEBSOCKET,
    "livekit.S3Upload.endpoint": ENDPOINT,
    "livekit.AliOSSUpload.endpoint": ENDPOINT,
    "livekit.ProxyConfig.url": PROXY,
    "livekit.CreateIngressRequest.url": INGRESS_SOURCE,
}

#: Fields that name where a worker writes (a file path or name prefix), by full name.
PATH_FIELDS: frozenset[str] = frozenset(
    {
        "livekit.EncodedFileOutput.filepath",
        "livekit.DirectFileOutput.filepath",
        "livekit.AutoTrackEgress.filepath",
        "livekit.SegmentedFileOutput.filename_prefix",
        "livekit.SegmentedFileOutput.playlist_name",
        "livekit.SegmentedFileOutput.live_playlist_name",
        "livekit.ImageOutput.filename_prefix",
    }
)

#: Fields named like URLs or paths that nothing fetches, sends to or writes to, and why.
NOT_URL_FIELDS: dict[str, str] = {
    "livekit.UpdateStreamRequest.remove_output_urls": "names outputs the egress already has",
    "livekit.SIPDispatchRuleIndividual.room_prefix": "the start of a room name",
    "livekit.SIPDispatchRuleCallee.room_prefix": "the start of a room name",
}


def check_media(message: Message, allow: UrlAllowList, *, at: str = "") -> None:
    """Check every URL and path field of `message`, at any depth (see the module doc).

    `at` is where `message` sits in the request body (`room_config`), for the problem's
    field name. Raises `InvalidInput` (422, the field in `detail` and in `errors[].loc`) for
    a URL without a `scheme://` its field takes, or a path with a `..` segment; then
    `Forbidden` (403 `media_url_not_allowed`, the field in `detail` and `field`) for a URL
    `allow` does not admit.
    """
    urls: list[tuple[tuple[str | int, ...], str]] = []
    for loc, name, value in _fields(message, (at,) if at else ()):
        if name in PATH_FIELDS:
            if ".." in value.replace("\\", "/").split("/"):
                raise _invalid(loc, "must not contain a `..` segment")
            continue
        role = URL_FIELDS[name]
        url = role.url(value)
        if not role.takes(url):
            raise _invalid(loc, f"must be {role.what}")
        urls.append((loc, url))
    for loc, url in urls:
        if not allow.admits(url):
            field = _dotted(loc)
            raise Forbidden(
                f"`{field}` is outside MEDIA_URL_ALLOW: LiveKit's workers may not be sent there",
                code=MEDIA_URL_NOT_ALLOWED,
                extra={"field": field},
            )


def _fields(
    message: Message, loc: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], str, str]]:
    """(location, full field name, value) of every `URL_FIELDS` and `PATH_FIELDS` value set
    in `message`, at any depth, by its descriptors."""
    for field, value in message.ListFields():
        where = (*loc, field.name)
        repeated = bool(field.is_repeated)
        nested = field.message_type
        if nested is not None and nested.GetOptions().map_entry:
            if nested.fields_by_name["value"].message_type is not None:
                for key, item in value.items():
                    yield from _fields(item, (*where, str(key)))
        elif nested is not None:
            for index, item in enumerate(value) if repeated else [(None, value)]:
                yield from _fields(item, where if index is None else (*where, index))
        elif field.full_name in URL_FIELDS or field.full_name in PATH_FIELDS:
            items: list[Any] = list(enumerate(value)) if repeated else [(None, value)]
            for index, item in items:
                yield (where if index is None else (*where, index)), field.full_name, item


def _dotted(loc: tuple[str | int, ...]) -> str:
    """`("stream_outputs", 0, "urls", 1)` -> `stream_outputs[0].urls[1]`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def _invalid(loc: tuple[str | int, ...], problem: str) -> InvalidInput:
    message = f"`{_dotted(loc)}` {problem}"
    return InvalidInput(message, extra={"errors": [{"loc": ["body", *loc], "msg": message}]})
