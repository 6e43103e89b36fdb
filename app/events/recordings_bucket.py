"""The recordings bucket (`RECORDINGS_S3_*`): the object store the recordings catalog
(`app.events.recordings`) lists files of.

`RecordingsBucket` is the configured bucket (S3 API, SigV4, path-style addressing, via
boto3): presigned download links, object deletion, and the `S3Upload` an egress start
without an upload target gets (`with_default_upload`).

What LiveKit's egress (v1.8.6) reports for an S3 upload: `FileInfo.filename` is the
object's key, `FileInfo.location` is `https://<bucket>.<endpoint>/<key>` whatever the
addressing style (so `object_key` recognises that form and the path-style one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from google.protobuf.message import Message
from livekit import api
from pydantic import SecretStr

from app.core.errors import UpstreamUnavailable

#: The problem code when the object store cannot be reached (503).
STORE_UNAVAILABLE = "recordings_store_unavailable"

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
    place. Nothing changes without a bucket. Called after
    `app.server_apis.media.check_media`: what the caller gave is checked as given; the
    configured store is the operator's."""
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
