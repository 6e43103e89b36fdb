"""The gateway to LiveKit's server APIs: the only module that imports livekit-api services.

`LiveKit` owns one `livekit.api.LiveKitAPI` (created and closed by the app's lifespan) and
runs every call under the deadline `LIVEKIT_TIMEOUT_SECONDS`, turning each failure into
the contract's `AppError` (see `app.core.errors.error_for_twirp`): no LiveKit exception escapes.
Each call carries the token livekit-api would sign for it, signed by `SignedAccessToken`
(`CallAuthorization`).

There is one call form, and every route uses it:
`await lk.run(lk.<service>.<method>(request), not_found_code="<resource>_not_found")`.
A Twirp `not_found` becomes 404 with that code; anything the SDK raises that is not one of
the known failures (a bug or a change in livekit-api, a protobuf it cannot build) is 502
`livekit_error`, never a 500.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import TypeVar

import aiohttp
from google.protobuf.message import DecodeError, Message
from livekit import api
from livekit.api.agent_dispatch_service import AgentDispatchService
from livekit.api.egress_service import EgressService
from livekit.api.ingress_service import IngressService
from livekit.api.room_service import RoomService
from livekit.api.sip_service import SipService

from app.core.errors import (
    AppError,
    NotFound,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    error_for_twirp,
)
from app.core.readiness import CachedCheck
from app.livekit.access_tokens import SignedAccessToken
from app.livekit.services import LIVEKIT_SERVICES

log = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=Message)


class CallAuthorization:
    """The `Authorization` header of one Twirp call, as livekit-api's
    `Service._auth_header(grants, sip)` makes it: a token of the API key holding exactly
    the call's video grants and SIP grants, livekit-api's default TTL (6 hours), signed
    HS256 with the API secret. The same claims, built by `SignedAccessToken` instead of
    `AccessToken` (the same bytes too where the claims are printable ASCII): about a fifth
    of the time (bench/README.md), on every call to LiveKit.

    `LiveKit` puts one in place of each service's `_auth_header` (livekit-api's own
    per-call hook; pyproject.toml pins livekit-api, and tests/unit/test_gateway.py compares
    the headers with livekit-api's and fails if the hook moves)."""

    def __init__(self, api_key: str, api_secret: str) -> None:
        self.api_key = api_key
        self.api_secret = api_secret

    def __call__(
        self, grants: api.VideoGrants | None, sip: api.SIPGrants | None = None
    ) -> dict[str, str]:
        """`{"authorization": "Bearer <JWT>"}` for a call needing `grants` and `sip`."""
        token = SignedAccessToken(self.api_key, self.api_secret)
        if grants:
            token.with_grants(grants)
        if sip is not None:
            token.with_sip_grants(sip)
        return {"authorization": f"Bearer {token.to_jwt()}"}


class LiveKit:
    """LiveKit's Twirp services behind one deadline and one error mapping.

    Use the service properties to build a call and `run` to await it:
    `await lk.run(lk.room.list_rooms(req), not_found_code="room_not_found")`. Each
    property is a row's `client` in `app.livekit.services.LIVEKIT_SERVICES`, whose calls are
    signed by `CallAuthorization`.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        timeout_seconds: float,
        *,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """`url` is http(s):// or ws(s)://; `session` is a caller-owned aiohttp session
        (tests pass one with extra headers), otherwise one is created and closed here."""
        self.url = url
        self.timeout_seconds = timeout_seconds
        self._api = api.LiveKitAPI(
            url,
            api_key,
            api_secret,
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
            session=session,
            failover=False,
        )
        authorization = CallAuthorization(api_key, api_secret)
        for service in LIVEKIT_SERVICES:
            getattr(self, service.client)._auth_header = authorization
        self._readiness = CachedCheck(self._probe)

    @property
    def room(self) -> RoomService:
        """LiveKit RoomService."""
        return self._api.room

    @property
    def agent_dispatch(self) -> AgentDispatchService:
        """LiveKit AgentDispatchService."""
        return self._api.agent_dispatch

    @property
    def egress(self) -> EgressService:
        """LiveKit Egress service."""
        return self._api.egress

    @property
    def ingress(self) -> IngressService:
        """LiveKit Ingress service."""
        return self._api.ingress

    @property
    def sip(self) -> SipService:
        """LiveKit SIP service."""
        return self._api.sip

    async def run(
        self,
        call: Awaitable[T],
        *,
        not_found_code: str = "not_found",
        timeout_seconds: float | None = None,
    ) -> T:
        """Await one LiveKit call under the deadline; map every failure to an `AppError`.

        Raises the contract's table: 422/404/409/429/501/502/503/504 (see `app.core.errors`).
        `not_found_code` is the problem code a Twirp `not_found` becomes (the route's
        resource: `egress_not_found`, `sip_trunk_not_found` ...). Any other exception from
        the SDK is 502 `livekit_error` (logged with its type, not its arguments).
        `timeout_seconds` replaces LIVEKIT_TIMEOUT_SECONDS for a call that waits on purpose
        (a SIP call ringing until it is answered).
        """
        deadline = timeout_seconds or self.timeout_seconds
        try:
            async with asyncio.timeout(deadline):
                return await call
        except api.SipCallError as exc:
            raise error_for_twirp(exc.code, exc.message, metadata=exc.metadata) from exc
        except api.TwirpError as exc:
            raise error_for_twirp(
                exc.code, exc.message, not_found_code=not_found_code, metadata=exc.metadata
            ) from exc
        except TimeoutError as exc:
            raise UpstreamTimeout(f"LiveKit did not answer within {deadline:g} s") from exc
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise UpstreamUnavailable(f"LiveKit at {self.url} is unreachable: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"LiveKit call failed: {exc}") from exc
        except DecodeError as exc:  # a 200 that is not LiveKit's protobuf (e.g. a proxy page)
            raise UpstreamError(f"LiveKit at {self.url} answered something unreadable") from exc
        except AppError:
            raise
        except Exception as exc:  # livekit-api raised something it does not document
            log.error("unexpected %s from livekit-api", type(exc).__name__, exc_info=False)
            raise UpstreamError(f"LiveKit call failed unexpectedly ({type(exc).__name__})") from exc

    async def run_list(
        self, call: Awaitable[T], *, not_found_code: str, by_id: bool, empty: T
    ) -> T:
        """`run` for a List call (`ListEgress`, `ListIngress`). LiveKit answers one filtered
        by an id it does not know with `not_found`: when `by_id` that lists nothing (`empty`,
        the List…Response without items); otherwise it is the 404 `not_found_code`."""
        try:
            return await self.run(call, not_found_code=not_found_code)
        except NotFound:
            if by_id:
                return empty
            raise

    def update_sip(self, method: str, request: Message, response: type[M]) -> Awaitable[M]:
        """SIP service `method` (`UpdateSIPInboundTrunk`, `UpdateSIPOutboundTrunk`,
        `UpdateSIPDispatchRule`) with LiveKit's whole `Update…Request`, `update` or `replace`
        form: livekit-api's `update_*_fields` helpers drop `ListUpdate.clear` and the fields
        newer than their keyword arguments. Await it with `run`."""
        sip = self._api.sip
        return sip._client.request("SIP", method, request, sip._admin_headers(), response)

    async def readiness(self, max_age_seconds: float = 0.0) -> str:
        """`"ok"` when LiveKit answers the cheapest authenticated call (ListRooms for a name
        that cannot exist), else `"failed: <problem code>"` (e.g. `livekit_unavailable`; for
        /readyz, which anyone may call: the detail, which names LiveKit's URL, is logged).
        A result younger than `max_age_seconds` is answered again without a call, and
        concurrent callers share one call (`app.core.readiness.CachedCheck`)."""
        return await self._readiness.result(max_age_seconds)

    async def _probe(self) -> str:
        try:
            await self.run(self.room.list_rooms(api.ListRoomsRequest(names=["readyz-probe"])))
        except AppError as exc:
            log.warning("readiness: %s", exc.detail)
            return f"failed: {exc.code}"
        return "ok"

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._api.aclose()


def one_with_id(items: Iterable[M], id_field: str, id_: str, *, what: str, code: str) -> M:
    """The message in `items` (a List…Response's, asked for by id: LiveKit has no Get for
    egresses and ingresses) whose `id_field` is `id_`. Raises `NotFound` (404 `code`,
    "<what> '<id>' does not exist") when none is."""
    for item in items:
        if getattr(item, id_field) == id_:
            return item
    raise NotFound(f"{what} {id_!r} does not exist", code=code)
