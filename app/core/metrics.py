"""Prometheus metrics of the service (text format at `GET /metrics`).

- `control_plane_http_requests_total{method, route, status}`: requests answered, by route
  template (`/v1/rooms/{room}`), so names of rooms never become label values;
- `control_plane_http_request_duration_seconds{method, route}`: time to the response start.
"""

from __future__ import annotations

import functools

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

REQUESTS = Counter(
    "control_plane_http_requests_total",
    "HTTP requests answered, by route template and status",
    ["method", "route", "status"],
)
DURATION = Histogram(
    "control_plane_http_request_duration_seconds",
    "Seconds from request to response start, by route template",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

#: The `Content-Type` of `exposition()`.
CONTENT_TYPE = CONTENT_TYPE_LATEST


#: The methods counted by name; any other (a client may send any token) is `other`, so a
#: caller cannot grow the number of series (RFC 9110 §9 names these).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request; `route` is the template, or `unmatched`."""
    requests, duration = _series(method if method in KNOWN_METHODS else "other", route, status)
    requests.inc()
    duration.observe(seconds)


@functools.lru_cache(maxsize=1024)
def _series(method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    """The labelled counter and histogram of one (method, route, status), looked up once
    (`labels()` takes a lock and builds its key on every call)."""
    return REQUESTS.labels(method, route, str(status)), DURATION.labels(method, route)


def exposition() -> bytes:
    """Every metric of this process in Prometheus' text format (version 0.0.4)."""
    return generate_latest()


UNHANDLED = Counter(
    "control_plane_unhandled_exceptions_total",
    "Exceptions no handler expected (each answered 500 internal_error), by class",
    ["exception"],
)
