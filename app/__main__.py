"""`python -m app`: serve the control plane with uvicorn; `python -m app
rebuild-projections`: rebuild the session projections from the stored events and exit.

In development with no LIVEKIT_URL, a local `livekit-server --dev` is started first, the
service is pointed at it and it sends its webhooks to the service, so one command gives a
working stack. Its API secret is printed only when it was generated here (never one the
operator configured).

Logging goes through `app.core.logs` (structlog; uvicorn's own access log is off), and uvicorn
runs with the header limits of `app.http.middleware` (see `uvicorn_options`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import sys
from typing import Any

import uvicorn

from app.config.settings import DEV_API_KEY, ConfigurationError, Settings, load_settings
from app.core.devserver import LocalLiveKit, running
from app.core.logs import configure_logging
from app.http.middleware import MAX_HEADER_BLOCK_BYTES
from app.store import projections
from app.store.engine import Store

log = logging.getLogger("app")

#: h11 buffers a request head up to this many bytes (it answers 400 beyond); above the
#: middleware's block limit, so that within it both parsers give the same 431.
H11_MAX_HEAD_BYTES = MAX_HEADER_BLOCK_BYTES + 4096


def main() -> None:
    """Run the service (and, when needed, a local LiveKit dev server) until interrupted.
    A configuration error ends the process with a message naming the setting, never a
    value, and no traceback (exit 1). With the argument `rebuild-projections`, runs
    `rebuild_projections` instead."""
    if sys.argv[1:] == ["rebuild-projections"]:
        asyncio.run(rebuild_projections(settings_or_exit()))
        return
    if sys.argv[1:]:
        sys.exit(f"unknown command {sys.argv[1]!r} (known: rebuild-projections)")
    settings = settings_or_exit()
    configure_logging(settings)
    if settings.livekit_url:
        _serve(settings)
        return
    if not settings.is_development:
        sys.exit("LIVEKIT_URL must be set when APP_ENV=production")
    # The embedded server is ours alone: a fresh 32-byte secret per run, not LiveKit's
    # public 6-byte dev secret, unless the operator set a pair.
    key = settings.livekit_api_key or DEV_API_KEY
    configured = settings.livekit_api_secret
    secret = configured.get_secret_value() if configured else secrets.token_urlsafe(32)
    webhook_url = f"http://{settings.host}:{settings.port}/v1/webhooks/livekit"
    local = LocalLiveKit(api_key=key, api_secret=secret, webhook_urls=[webhook_url])
    _exit_on_sigterm()
    with running(local) as livekit:
        os.environ.update(LIVEKIT_URL=livekit.url, LIVEKIT_API_KEY=key, LIVEKIT_API_SECRET=secret)
        print(f"LiveKit dev server  {livekit.url}  (log {livekit.process.log_path})")
        shown = "(as configured)" if configured else secret
        print(f"                    LIVEKIT_API_KEY={key} LIVEKIT_API_SECRET={shown}")
        _serve(settings_or_exit())


async def rebuild_projections(settings: Settings) -> int:
    """Migrate the store at DATABASE_URL, then empty the session projections and fold every
    stored event into them again, in one transaction (`app.store.projections.rebuild`);
    prints and returns how many events were read. Safe while replicas run: an event stored
    meanwhile waits for the rebuild's transaction, or is folded in again by it."""
    store = Store(settings.database_url.get_secret_value())
    try:
        await store.migrate()
        count = await projections.rebuild(store)
    finally:
        await store.aclose()
    print(f"session projections rebuilt from {count} stored events")
    return count


def settings_or_exit() -> Settings:
    """The settings (`app.config.settings.load_settings`); on a `ConfigurationError`, its message
    on stderr and exit status 1 (`SystemExit`), without a traceback."""
    try:
        return load_settings()
    except ConfigurationError as error:
        sys.exit(f"configuration error: {error}")


def _exit_on_sigterm() -> None:
    """Make SIGTERM end the process through `SystemExit` (status 143), so the embedded dev
    server is stopped on the way out. uvicorn shuts down gracefully on SIGTERM, restores
    the handler it found and raises the signal again: without this handler the default
    action would end the process at once and leave the dev server running."""

    def exit_now(signum: int, _frame: object) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, exit_now)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's settings for this service: `X-Forwarded-*` believed only from
    FORWARDED_ALLOW_IPS (none by default), h11's head buffer bounded, logging left to
    `app.core.logs` with uvicorn's access log off, no `Server` header."""
    trusted = settings.forwarded_allow_ips.strip()
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "log_config": None,
        "access_log": False,
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted or None,
        "http": settings.http_parser,
        "h11_max_incomplete_event_size": H11_MAX_HEAD_BYTES,
        "server_header": False,
    }


def _serve(settings: Settings) -> None:
    base = f"http://{settings.host}:{settings.port}"
    log.info("control plane on %s (docs %s/docs)", base, base, extra={"url": base})
    uvicorn.run("app.main:create_app", factory=True, **uvicorn_options(settings))


if __name__ == "__main__":
    main()
