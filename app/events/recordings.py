"""The recordings catalog (contract: Recordings): every file, segment playlist and image
series an egress wrote, from its `egress_ended` event (received or derived), with the
object store it was uploaded to (`RECORDINGS_S3_*`).

- `catalog_writer` turns stored `egress_ended` events into `recordings` rows in the events'
  own transaction (`store.events.add_writer`); `recording_id` is derived from the egress id
  and the result's kind and index, so a repeated event is one row.
- `RecordingsBucket` is the configured bucket (S3 API, SigV4, path-style addressing, via
  boto3): presigned download links, object deletion, and the `S3Upload` an egress start
  without an upload target gets (`with_default_upload`).
- Listing, one entry, `DELETE` (the object first, then the entry) and the retention purge
  (`purge_expired_recordings`, safe on several replicas at once).

What LiveKit's egress (v1.8.6) reports for an S3 upload: `FileInfo.filename` is the
object's key, `FileInfo.location` is `https://<bucket>.<endpoint>/<key>` whatever the
addressing style (so `object_key` recognises that form and the path-style one). Times in
`EgressInfo` and its results are Unix nanoseconds, `duration` too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from google.protobuf.json_format import ParseError
from google.protobuf.message import Message
from livekit import api
from pydantic import SecretStr

from app.core.errors import NotFound, UpstreamUnavailable
from app.store import recordings as queries
from app.store.cursor import Cursor
from app.store.engine import Store
from app.store.errors import database_errors
from app.store.events import EventWriter
from schemas.common import Page
from schemas.protojson import from_livekit_json
from schemas.recordings import Recording, RecordingDetails, RecordingQuery

RECORDING_NOT_FOUND = "recording_not_found"
#: The problem code when the object store cannot be reached (503).
STORE_UNAVAILABLE = "recordings_store_unavailable"

#: How often the retention purge runs (seconds), and how many entries it takes at a time.
RETENTION_INTERVAL_SECONDS = 3600
RETENTION_BATCH = 100

#: The output messages of LiveKit's egress requests that carry an upload target (their
#: `output` oneof: `s3`, `gcp`, `azure`, `aliOSS`; none set means a local file).
UPLOAD_OUTPUTS = frozenset(
    {
        "livekit.EncodedFileOutput",
        "livekit.DirectFileOutput",
        "livekit.SegmentedFileOutput",
        "livekit.ImageOutput",
    }
)

_NS = 1_000_000_000


class RecordingsBucket:
    """The configured bucket of `RECORDINGS_S3_*` (S3 API). `endpoint` is the store's URL
    (`None`: AWS S3); requests are SigV4-signed with path-style addressing, as SeaweedFS,
    MinIO-compatible stores and AWS all accept. Built once per process (the lifespan)."""

    def __init__(
        self,
        *,
        endpoint: str | None,
        bucket: str,
        region: str,
        access_key: str,
        secret: SecretStr,
        link_seconds: int,
    ) -> None:
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.bucket = bucket
        self.region = region
        self.access_key = access_key
        self._secret = secret
        self.link_seconds = link_seconds
        self._client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret.get_secret_value(),
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                connect_timeout=5,
                read_timeout=10,
                retries={"max_attempts": 2, "mode": "standard"},
            ),
        )

    @property
    def origin(self) -> str:
        """The scheme, host and port download links point at (the console's `media-src`)."""
        parts = urlsplit(self._client.meta.endpoint_url)
        return f"{parts.scheme}://{parts.netloc}"

    def upload(self) -> api.S3Upload:
        """The `S3Upload` LiveKit's egress writes to this bucket with (credentials included:
        it goes to LiveKit only; `schemas.credentials` drops them from every answer)."""
        return api.S3Upload(
            access_key=self.access_key,
            secret=self._secret.get_secret_value(),
            region=self.region,
            endpoint=self.endpoint or "",
            bucket=self.bucket,
            force_path_style=True,
        )

    def object_key(self, location: str, filename: str) -> str | None:
        """The key of the object a result describes when it lies in this bucket: its
        `location` is the virtual-host form egress reports (`https://<bucket>.<endpoint
        host or s3.amazonaws.com>/<key>`) or the path-style URL (`<endpoint>/<bucket>/<key>`),
        with `filename` as key. None otherwise (a local file, another bucket)."""
        if not location or not filename:
            return None
        key = filename.lstrip("/")
        endpoint = self.endpoint or "s3.amazonaws.com"
        host = endpoint.split("://", 1)[-1]
        forms = {
            f"https://{self.bucket}.{endpoint}/{key}",
            f"https://{self.bucket}.{host}/{key}",
            f"{endpoint}/{self.bucket}/{key}",
        }
        return key if location in forms else None

    def download_url(self, key: str) -> str:
        """A presigned GET of `key` (SigV4 query string), valid `link_seconds`; computed
        locally, no request is made."""
        url: str = self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=self.link_seconds,
        )
        return url

    async def delete_object(self, key: str) -> None:
        """Delete `key` (an object already gone is fine: S3's DeleteObject answers 204).
        Raises `UpstreamUnavailable` (503 `recordings_store_unavailable`) when the store
        cannot be reached or refuses (the message names the S3 error code, no credential)."""
        try:
            await asyncio.to_thread(self._client.delete_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return
            code = exc.response.get("Error", {}).get("Code", "unknown")
            raise UpstreamUnavailable(
                f"the recordings store refused to delete the object ({code})",
                code=STORE_UNAVAILABLE,
            ) from None
        except BotoCoreError as exc:
            raise UpstreamUnavailable(
                f"the recordings store cannot be reached ({exc.__class__.__name__})",
                code=STORE_UNAVAILABLE,
            ) from None


def with_default_upload(request: Message, bucket: RecordingsBucket | None) -> None:
    """Give every file, segment and image output of the egress `request` that names no
    upload target (`s3`, `gcp`, `azure`, `aliOSS` all unset) the bucket's `S3Upload`, in
    place. Nothing changes without a bucket. Called after `app.media.check_media`: what the
    caller gave is checked as given; the configured store is the operator's."""
    if bucket is None:
        return
    upload = bucket.upload()
    for output in _upload_outputs(request):
        if output.WhichOneof("output") is None:
            output.s3.CopyFrom(upload)


def _upload_outputs(request: Message) -> Iterator[Any]:
    for field in request.DESCRIPTOR.fields:
        if field.message_type is None or field.message_type.full_name not in UPLOAD_OUTPUTS:
            continue
        if field.is_repeated:
            yield from getattr(request, field.name)
        elif request.HasField(field.name):
            yield getattr(request, field.name)


# --- the catalog -----------------------------------------------------------------------


def recording_id(egress_id: str, kind: str, index: int) -> str:
    """The id of an egress's `index`-th result of `kind` (`RC_` and 24 hex digits of a
    SHA-256): the same on every replica and for every copy of the event."""
    digest = hashlib.sha256(f"{egress_id}\x00{kind}\x00{index}".encode()).hexdigest()
    return f"RC_{digest[:24]}"


def _time(ns: int) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(ns / _NS, dt.UTC) if ns > 0 else None


def entries_of(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The `recordings` rows of one stored event (`webhook_events` column values): one per
    file, segment and image result of an `egress_ended` (its `derived` member, if any, is
    ignored like every unknown field); none for another event or a body that does not read
    as a `WebhookEvent`."""
    if event.get("event") != "egress_ended":
        return []
    try:
        parsed = from_livekit_json(json.loads(event["body"]), api.WebhookEvent)
    except (ValueError, TypeError, ParseError):
        return []
    info = parsed.egress_info
    if not info.egress_id:
        return []
    received: dt.datetime = event["created_at"]
    results: list[tuple[str, str, str, int, int, int, int]] = []
    for item in list(info.file_results) or ([info.file] if info.HasField("file") else []):
        results.append(("file", item.location, item.filename, item.size, item.duration,
                        item.started_at, item.ended_at))  # fmt: skip
    segments = list(info.segment_results) or ([info.segments] if info.HasField("segments") else [])
    for seg in segments:
        results.append(("segments", seg.playlist_location, seg.playlist_name, seg.size,
                        seg.duration, seg.started_at, seg.ended_at))  # fmt: skip
    for image in info.image_results:
        results.append(("image", "", image.filename_prefix, 0, 0, image.started_at,
                        image.ended_at))  # fmt: skip
    counts: dict[str, int] = {}
    rows = []
    for kind, location, filename, size, duration, started, ended in results:
        index = counts[kind] = counts.get(kind, -1) + 1
        rows.append(
            {
                "recording_id": recording_id(info.egress_id, kind, index),
                "egress_id": info.egress_id,
                "session_id": info.room_id or None,
                "room_name": info.room_name or None,
                "kind": kind,
                "location": location,
                "filename": filename,
                "size_bytes": size,
                "duration_seconds": duration / _NS,
                "started_at": _time(started) or _time(info.started_at),
                "ended_at": _time(ended) or _time(info.ended_at) or received,
                "status": api.EgressStatus.Name(info.status),
            }
        )
    return rows


def catalog_writer(store: Store) -> EventWriter:
    """The `EventWriter` (`store.events.add_writer`) that adds the recordings of every
    newly stored `egress_ended` event in the event's own transaction."""

    return queries.event_writer(store, entries_of)


@dataclass(frozen=True)
class RecordingPageToken(Cursor):
    """The cursor of the recordings list: `ended_at` and `recording_id` of the last entry
    of the page (the list is ordered by both, descending)."""

    PREFIX: ClassVar[str] = "rc1:"
    ended_at: dt.datetime
    recording_id: str


def _recording(row: Any) -> Recording:
    return Recording.model_validate(row._mapping)


async def list_recordings(store: Store, query: RecordingQuery) -> Page[Recording]:
    """Recordings newest first (by their end), filtered by `room_name`, `session_id` and
    the window `[start, end)` of their end, one page at a time. Raises 400
    (`invalid_page_token`), 503 (store unavailable)."""
    cursor = RecordingPageToken.decode(query.page_token) if query.page_token else None
    with database_errors():
        rows = await queries.page(
            store,
            room_name=query.room_name,
            session_id=query.session_id,
            start=query.start,
            end=query.end,
            after=(cursor.ended_at, cursor.recording_id) if cursor else None,
            limit=query.limit + 1,
        )
    page = rows[: query.limit]
    token = None
    if len(rows) > query.limit:
        token = RecordingPageToken(page[-1].ended_at, page[-1].recording_id).encode()
    return Page[Recording](items=[_recording(row) for row in page], next_page_token=token)


async def get_recording(
    store: Store, bucket: RecordingsBucket | None, recording_id: str
) -> RecordingDetails:
    """One recording, with `download_url` when its object is in the configured bucket.
    Raises 404 `recording_not_found`, 503 (store unavailable)."""
    with database_errors():
        row = await queries.get(store, recording_id)
    if row is None:
        raise NotFound(f"no recording {recording_id!r}", code=RECORDING_NOT_FOUND)
    details = RecordingDetails.model_validate(row._mapping)
    key = bucket.object_key(row.location, row.filename) if bucket else None
    if bucket is not None and key is not None:
        details.download_url = bucket.download_url(key)
    return details


async def _delete(store: Store, bucket: RecordingsBucket | None, row: Any) -> bool:
    """The object (when it is in the bucket), then the entry: a failure to delete the
    object keeps the entry, so nothing is left that the catalog does not list."""
    key = bucket.object_key(row.location, row.filename) if bucket else None
    if bucket is not None and key is not None:
        await bucket.delete_object(key)
    with database_errors():
        return await queries.delete(store, row.recording_id)


async def delete_recording(
    store: Store, bucket: RecordingsBucket | None, recording_id: str
) -> None:
    """Delete a recording: its object when it is in the configured bucket (one already
    gone is fine), then its entry. A file elsewhere (a worker's local disk, another
    bucket) is not the service's to delete: only the entry goes. Raises 404
    `recording_not_found`, 503 (the database or the object store unavailable)."""
    with database_errors():
        row = await queries.get(store, recording_id)
    if row is None:
        raise NotFound(f"no recording {recording_id!r}", code=RECORDING_NOT_FOUND)
    await _delete(store, bucket, row)


async def purge_expired_recordings(
    store: Store,
    bucket: RecordingsBucket | None,
    retention_days: int,
    now: dt.datetime | None = None,
) -> int:
    """Delete every recording that ended more than `retention_days` ago (object, then
    entry; `RETENTION_BATCH` at a time); returns how many entries this call deleted.
    Several replicas may run it at once: an object or an entry another one deleted first
    is not an error. A store that cannot be reached ends the run (503 error raised)."""
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=retention_days)
    deleted = 0
    while True:
        rows = await queries.ended_before(store, cutoff, RETENTION_BATCH)
        for row in rows:
            deleted += await _delete(store, bucket, row)
        if len(rows) < RETENTION_BATCH:
            return deleted
