"""One delivery attempt of the relay (Standard Webhooks, https://www.standardwebhooks.com/)
and what follows from its outcome.

`attempt` POSTs an event's JSON with `webhook-id` (the delivery's id, the same on every
retry), `webhook-timestamp` and `webhook-signature`, signed with the `standardwebhooks`
library by the endpoint's secret and, for 24 h after a rotation, the previous one too (two
`v1,` signatures: `signing_secrets`, `signature_header`). The host is resolved and its
addresses checked at every attempt (`app.events.endpoint_urls`), then the checked address
is the one connected to; redirects are not followed.

Outcomes (`next_state`): a `2xx` within the attempt's timeout is success; `410 Gone`
disables the endpoint (its pending deliveries wait until it is enabled again); any other
outcome is retried after `RETRY_SCHEDULE_SECONDS` (5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
10 h), and no sooner than a `429`/`503`'s `Retry-After` says (`retry_after_seconds`); past
the schedule the delivery is `failed`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from app.core.errors import InvalidInput
from app.events.endpoint_urls import AddressRefused, EndpointUrlRules
from app.events.outbox import utc_now
from app.store import relay as repository

log = logging.getLogger(__name__)

#: Delays (seconds) before the 2nd, 3rd ... 8th attempts; after the 8th fails: `failed`.
RETRY_SCHEDULE_SECONDS: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
#: The statuses whose `Retry-After` is honoured.
RETRY_AFTER_STATUSES = frozenset({429, 503})
#: `last_error` is cut to this many characters.
MAX_ERROR_LENGTH = 300


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: the response's `status_code` (None when there was no
    response), `error` (what went wrong, for `last_error`), `retry_after` (seconds a
    `429`/`503` asked for), `seconds` it took."""

    status_code: int | None
    error: str | None
    retry_after: float | None
    seconds: float

    @property
    def succeeded(self) -> bool:
        """A 2xx."""
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        """410 Gone: the endpoint asks to be disabled."""
        return self.status_code == 410


def signature_header(
    delivery_id: str,
    timestamp: dt.datetime,
    payload: str,
    secrets: Sequence[str],
) -> str:
    """The `webhook-signature` value: one `v1,<base64>` per secret (`whsec_...`), space
    separated, made by `standardwebhooks`' `Webhook.sign`."""
    return " ".join(Webhook(secret).sign(delivery_id, timestamp, payload) for secret in secrets)


def signing_secrets(row: Any, now: dt.datetime) -> list[str]:
    """The secrets that sign a delivery of an endpoint `row`: its secret, and its previous
    one until `previous_secret_expires_at`."""
    found = [row.secret]
    expires = row.previous_secret_expires_at
    if row.previous_secret and expires is not None and expires > now:
        found.append(row.previous_secret)
    return found


def retry_after_seconds(value: str | None, now: dt.datetime) -> float | None:
    """`Retry-After` (RFC 9110 §10.2.3: delay seconds or an HTTP date) as seconds from
    `now`; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


def next_state(
    outcome: Outcome, attempts: int, now: dt.datetime, schedule: Sequence[float]
) -> dict[str, Any]:
    """The delivery's columns after its `attempts`-th attempt ended with `outcome` (see the
    module doc for the rules)."""
    values: dict[str, Any] = {
        "attempts": attempts,
        "last_attempt_at": now,
        "last_status_code": outcome.status_code,
        "last_error": outcome.error,
        "latency_ms": round(outcome.seconds * 1000, 3),
    }
    if outcome.succeeded:
        return values | {"status": repository.SUCCEEDED, "next_attempt_at": None}
    if outcome.gone or attempts > len(schedule):
        return values | {"status": repository.FAILED, "next_attempt_at": None}
    delay = schedule[attempts - 1]
    if outcome.retry_after is not None and outcome.status_code in RETRY_AFTER_STATUSES:
        delay = max(delay, outcome.retry_after)
    return values | {"next_attempt_at": now + dt.timedelta(seconds=delay)}


async def attempt(
    http: httpx.AsyncClient,
    rules: EndpointUrlRules,
    *,
    url: str,
    delivery_id: str,
    payload: str,
    secrets: Sequence[str],
    now: dt.datetime,
    timeout_seconds: float,
) -> Outcome:
    """POST `payload` (the event's JSON) to `url` once, signed (`signature_header`), to the
    address checked at this attempt (`EndpointUrlRules.resolve`), within
    `timeout_seconds` in all; never raises for what the endpoint or the network does."""
    started = time.perf_counter()
    error: str | None = None
    response: httpx.Response | None = None
    try:
        async with asyncio.timeout(timeout_seconds):
            endpoint = rules.parse(url)
            resolved = await rules.resolve(endpoint, timeout_seconds)
            headers = {
                "Host": endpoint.host_header,
                "Content-Type": "application/json",
                "User-Agent": "livekit-control-plane-relay",
                "webhook-id": delivery_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signature_header(delivery_id, now, payload, secrets),
            }
            extensions: dict[str, Any] = {}
            if endpoint.scheme == "https":
                # TLS to the checked address names the URL's host (SNI, and the name the
                # certificate is verified against). The client pools connections by address:
                # one verified for this name is closed after the response, never reused for
                # another name at the same address.
                extensions["sni_hostname"] = endpoint.host
                headers["Connection"] = "close"
            response = await http.post(
                resolved.url,
                content=payload.encode(),
                headers=headers,
                timeout=timeout_seconds,
                follow_redirects=False,
                extensions=extensions,
            )
    except TimeoutError:
        error = f"no response within {timeout_seconds:g} s"
    except (AddressRefused, InvalidInput) as exc:
        error = str(exc)
    except httpx.HTTPError as exc:
        error = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
    except Exception as exc:  # anything else fails this attempt only; it is retried
        log.exception("relay: attempt of delivery %s failed unexpectedly", delivery_id)
        error = f"unexpected error ({exc.__class__.__name__})"
    seconds = time.perf_counter() - started
    if response is None:
        return Outcome(None, (error or "no response")[:MAX_ERROR_LENGTH], None, seconds)
    code = response.status_code
    failure = None if 200 <= code < 300 else f"HTTP {code}"
    retry_after = retry_after_seconds(response.headers.get("retry-after"), utc_now())
    return Outcome(code, failure, retry_after, seconds)
