"""URLs that LiveKit's egress and ingress workers fetch: `MEDIA_URL_ALLOW`.

A web egress page, a room composite `custom_base_url` and a `URL_INPUT` ingress source are
fetched by the workers from inside the operator's network, so a caller could make them
reach internal hosts (server-side request forgery). When `MEDIA_URL_ALLOW` holds patterns,
each such URL must match one (shell-style globs over the whole URL, case-sensitive,
`fnmatch.fnmatchcase`: `https://app.example.com/*`); otherwise it is 403
`media_url_not_allowed`. With no patterns every URL that passed validation is allowed.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from app.errors import Forbidden

MEDIA_URL_NOT_ALLOWED = "media_url_not_allowed"


def check_media_url(url: str | None, patterns: list[str], field: str) -> None:
    """Raise `Forbidden` (403 `media_url_not_allowed`, naming `field`) when `patterns` is
    non-empty and `url` matches none of them; None or an empty `url` passes."""
    if not url or not patterns:
        return
    if not any(fnmatchcase(url, pattern) for pattern in patterns):
        raise Forbidden(
            f"`{field}` is outside MEDIA_URL_ALLOW: the media workers may not fetch it",
            code=MEDIA_URL_NOT_ALLOWED,
        )
