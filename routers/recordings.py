"""Recordings catalog routes (contract: Recordings): the files egresses wrote, their
download links and their deletion."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.events.recordings import delete_recording, get_recording, list_recordings
from app.http.deps import RecordingsBucketDep, RecordingsReadCaller, RecordingsWriteCaller, StoreDep
from schemas.common import Page
from schemas.problems import problems
from schemas.recordings import Recording, RecordingDetails, RecordingQuery

router = APIRouter(prefix="/v1", tags=["recordings"])

RecordingId = Annotated[str, Path(max_length=64, description="the recording's id, `RC_...`")]


@router.get(
    "/recordings",
    operation_id="list_recordings",
    responses=problems(400, 401, 403, 422, 503),
)
async def list_egress_recordings(
    store: StoreDep,
    query: Annotated[RecordingQuery, Query()],
    _: RecordingsReadCaller,
) -> Page[Recording]:
    """Every file an egress wrote (from `egress_ended`, received or derived), newest first;
    follow `next_page_token`."""
    return await list_recordings(store, query)


@router.get(
    "/recordings/{recording_id}",
    operation_id="get_recording",
    responses=problems(401, 403, 404, 503),
)
async def get_egress_recording(
    recording_id: RecordingId,
    store: StoreDep,
    bucket: RecordingsBucketDep,
    _: RecordingsReadCaller,
) -> RecordingDetails:
    """One recording, with `download_url` (presigned, valid `RECORDINGS_LINK_SECONDS`) when
    its object is in the configured bucket."""
    return await get_recording(store, bucket, recording_id)


@router.delete(
    "/recordings/{recording_id}",
    operation_id="delete_recording",
    status_code=204,
    responses=problems(401, 403, 404, 503),
)
async def delete_egress_recording(
    recording_id: RecordingId,
    store: StoreDep,
    bucket: RecordingsBucketDep,
    _: RecordingsWriteCaller,
) -> None:
    """Delete the recording's object (when it is in the configured bucket; one already gone
    is fine), then its entry."""
    await delete_recording(store, bucket, recording_id)
