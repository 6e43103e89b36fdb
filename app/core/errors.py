"""One error family for the whole service, and LiveKit's Twirp codes mapped onto it.

Every error leaves the service as RFC 9457 `application/problem+json` (see `app.http.problems`):
`{"type", "title", "status", "detail", "code", "request_id"}` plus any extra members.
The Twirp-code table is the one in `shared/api-contract.md` ("Mapping of LiveKit errors");
it lives here and nowhere else.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

log = logging.getLogger(__name__)


class AppError(Exception):
    """Base of every error the service answers with.

    `status` is the HTTP status, `code` the stable snake_case problem code, `detail` a
    human sentence saying what was wrong. `headers` are added to the response (e.g.
    `Retry-After`), `extra` are additional problem members (e.g. `errors`).
    """

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code  # type: ignore[misc]  # instance override of the class default
        self.headers = headers or {}
        self.extra = extra or {}


class BadRequest(AppError):
    """400: the request could not be read at all (e.g. a body that is not JSON)."""

    status, code, title = 400, "bad_request", "Bad request"


class Unauthorized(AppError):
    """401: no credentials, or credentials that are not ours. Carries WWW-Authenticate."""

    status, code, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str, *, code: str | None = None, scheme: str = "Bearer") -> None:
        super().__init__(detail, code=code, headers={"WWW-Authenticate": scheme})


class Forbidden(AppError):
    """403: a known caller asking for something it may not have."""

    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(AppError):
    """404: the named resource does not exist."""

    status, code, title = 404, "not_found", "Not found"


class Conflict(AppError):
    """409: the request conflicts with the current state (or a reused Idempotency-Key)."""

    status, code, title = 409, "conflict", "Conflict"


class PayloadTooLarge(AppError):
    """413: the body is over the route's limit."""

    status, code, title = 413, "payload_too_large", "Payload too large"


class UnsupportedMediaType(AppError):
    """415: the body is not one of the accepted content types."""

    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class InvalidInput(AppError):
    """422: well-formed but unacceptable input; `errors` lists `{"loc", "msg"}` items."""

    status, code, title = 422, "validation_failed", "Unprocessable content"


class RateLimited(AppError):
    """429: too many requests; `retry_after` seconds go into `Retry-After`."""

    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, detail: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(detail, code=code, headers={"Retry-After": str(max(1, retry_after))})


class HeaderFieldsTooLarge(AppError):
    """431: too many header fields, or one too long (RFC 6585 §5)."""

    status, code, title = 431, "header_fields_too_large", "Request header fields too large"


class InternalError(AppError):
    """500: an exception nobody expected; the detail never says more than `DETAIL`."""

    DETAIL = "an unexpected error occurred; quote the request_id"

    def __init__(self) -> None:
        super().__init__(self.DETAIL)


class FeatureNotEnabled(AppError):
    """501: the LiveKit deployment lacks what this call needs (e.g. Redis, egress)."""

    status, code, title = 501, "feature_not_enabled", "Not implemented by this LiveKit"


class UpstreamError(AppError):
    """502: LiveKit answered, but not usefully (or rejected our own credentials)."""

    status, code, title = 502, "livekit_error", "Bad gateway"


class UpstreamUnavailable(AppError):
    """503: LiveKit (or another dependency) cannot be reached now; retry later."""

    status, code, title = 503, "livekit_unavailable", "Service unavailable"

    def __init__(self, detail: str, *, code: str | None = None, retry_after: int = 1) -> None:
        super().__init__(detail, code=code, headers={"Retry-After": str(retry_after)})


class UpstreamTimeout(AppError):
    """504: LiveKit did not answer within LIVEKIT_TIMEOUT_SECONDS."""

    status, code, title = 504, "livekit_timeout", "Gateway timeout"


_INVALID = {"invalid_argument", "malformed", "out_of_range"}
_CONFLICT = {"already_exists", "aborted", "failed_precondition"}
_OUR_CREDENTIALS = {"unauthenticated", "permission_denied"}


def error_for_twirp(
    twirp_code: str,
    message: str,
    *,
    not_found_code: str = "not_found",
    metadata: dict[str, str] | None = None,
) -> AppError:
    """Map one LiveKit Twirp error to the contract's status.

    `twirp_code` is the Twirp error code (https://twitchtv.github.io/twirp/docs/spec_v7.html),
    `message` LiveKit's text, `not_found_code` the problem code to use for `not_found`
    (e.g. `room_not_found`). SIP status metadata, when present, becomes problem members and
    decides the status whatever Twirp code wraps it (LiveKit sends 486 Busy Here as
    `resource_exhausted`, a refused transfer as `permission_denied`): a callee that never
    answered is 504 `sip_call_timeout`, any other SIP failure 502 `sip_call_failed`.
    """
    detail = f"LiveKit: {message}" if message else f"LiveKit answered {twirp_code}"
    extra = _sip_members(metadata or {})
    if _sip_not_answered(twirp_code, message, extra):
        extra = {"sip_status_code": SIP_REQUEST_TIMEOUT, "sip_status": "Request Timeout", **extra}
        return UpstreamTimeout(detail, code="sip_call_timeout", extra=extra)
    if "sip_status_code" in extra or "sip_transfer_reason" in extra:
        return UpstreamError(detail, code="sip_call_failed", extra=extra)
    if twirp_code in _INVALID:
        return InvalidInput(detail, code="invalid_argument")
    if twirp_code == "not_found":
        return NotFound(detail, code=not_found_code)
    if twirp_code in _CONFLICT:
        return Conflict(detail, code=twirp_code)
    if twirp_code == "resource_exhausted":
        return RateLimited(detail, retry_after=1, code="livekit_rate_limited")
    if twirp_code in _OUR_CREDENTIALS:
        log.critical("ALERT LiveKit refused our API credentials: %s %s", twirp_code, message)
        return UpstreamError("LiveKit refused this service's credentials", code="livekit_auth")
    if _not_enabled(twirp_code, message):
        if twirp_code == "unknown":
            detail += (
                " (LiveKit Cloud and Private Cloud implement it; self-hosted LiveKit does not)"
            )
        return FeatureNotEnabled(detail)
    if twirp_code == "unavailable":
        return UpstreamUnavailable(detail)
    if twirp_code == "deadline_exceeded":
        return UpstreamTimeout(detail)
    return UpstreamError(detail)


def _not_enabled(twirp_code: str, message: str) -> bool:
    """A feature this LiveKit deployment lacks: Twirp `unimplemented`; `internal` "... (redis
    required)" (egress, ingress, SIP without Redis); or `unknown` "not implemented", which is
    how a self-hosted server refuses Cloud-only calls (ForwardParticipant, MoveParticipant)."""
    lowered = message.lower()
    return (
        twirp_code == "unimplemented"
        or (twirp_code == "internal" and "redis required" in lowered)
        or (twirp_code == "unknown" and lowered.endswith("not implemented"))
    )


def _sip_members(metadata: dict[str, str]) -> dict[str, Any]:
    """`sip_status_code` (int), `sip_status` and `sip_transfer_reason` from a SIP call or
    transfer failure, when present."""
    members: dict[str, Any] = {}
    if code := metadata.get("sip_status_code"):
        members["sip_status_code"] = int(code) if code.isdigit() else code
    if status := metadata.get("sip_status"):
        members["sip_status"] = status
    if reason := metadata.get("sip_transfer_reason"):
        members["sip_transfer_reason"] = reason
    return members


#: SIP `408 Request Timeout` (RFC 3261 §21.4.9): nobody answered in time.
SIP_REQUEST_TIMEOUT = 408


def _sip_not_answered(twirp_code: str, message: str, sip: dict[str, Any]) -> bool:
    """A SIP call whose callee never answered: SIP status 408, or what livekit-sip v1.8
    answers when its ringing timeout lapses (it CANCELs the INVITE): Twirp `canceled` or
    `deadline_exceeded` with "sip request timed out" and no SIP status."""
    if sip.get("sip_status_code") == SIP_REQUEST_TIMEOUT:
        return True
    return (
        "sip_status_code" not in sip
        and twirp_code in {"canceled", "deadline_exceeded"}
        and "sip request timed out" in message.lower()
    )
