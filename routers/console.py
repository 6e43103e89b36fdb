"""The operator console at `/console`: static HTML, CSS and ES modules from `console/`.

The console holds no server-side state and no key: the page signs in with a service key it
keeps in the tab's session storage and calls the REST routes with it as the Bearer header.
Files are served from a fixed list read at import (no path from the request reaches the
file system), with a Content-Security-Policy that allows this origin only (and, for the
page's `<audio>`/`<video>` of a recording, the recordings bucket's origin as `media-src`).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.core.errors import NotFound
from app.http.deps import RecordingsBucketDep
from schemas.problems import problems

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}
#: Every file under console/static/, by name.
STATIC_FILES = {
    path.name: path
    for path in sorted((CONSOLE_DIR / "static").iterdir())
    if path.suffix in MEDIA_TYPES
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(tags=["console"], include_in_schema=False)


@router.get("/console", response_class=FileResponse)
async def console_page(bucket: RecordingsBucketDep) -> FileResponse:
    """The console's single page; its media may come from the recordings bucket."""
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    if bucket is not None:
        policy = headers["Content-Security-Policy"]
        headers["Content-Security-Policy"] = f"{policy}; media-src 'self' {bucket.origin}"
    return FileResponse(
        CONSOLE_DIR / "index.html", media_type="text/html; charset=utf-8", headers=headers
    )


@router.get("/console/static/{name}", response_class=FileResponse, responses=problems(404))
async def console_file(name: str) -> FileResponse:
    """One of the console's static files; 404 `not_found` for any other name."""
    path = STATIC_FILES.get(name)
    if path is None:
        raise NotFound(f"the console has no file {name!r}")
    return FileResponse(
        path,
        media_type=f"{MEDIA_TYPES[path.suffix]}; charset=utf-8",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )
