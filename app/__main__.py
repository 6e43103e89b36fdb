"""`python -m app`: serve the control plane with uvicorn.

In development with no LIVEKIT_URL, a local `livekit-server --dev` is started first, the
service is pointed at it and it sends its webhooks to the service, so one command gives a
working stack.
"""

from __future__ import annotations

import os
import secrets
import sys

import uvicorn

from app.devserver import LocalLiveKit, running
from app.settings import DEV_API_KEY, Settings


def main() -> None:
    """Run the service (and, when needed, a local LiveKit dev server) until interrupted."""
    settings = Settings()
    if settings.livekit_url:
        _serve(settings)
        return
    if not settings.is_development:
        sys.exit("LIVEKIT_URL must be set when APP_ENV=production")
    # The embedded server is ours alone: a fresh 32-byte secret per run, not LiveKit's
    # public 6-byte dev secret, unless the operator set a pair.
    key = settings.livekit_api_key or DEV_API_KEY
    secret = settings.livekit_api_secret or secrets.token_urlsafe(32)
    webhook_url = f"http://{settings.host}:{settings.port}/v1/webhooks/livekit"
    local = LocalLiveKit(api_key=key, api_secret=secret, webhook_urls=[webhook_url])
    with running(local) as livekit:
        os.environ.update(LIVEKIT_URL=livekit.url, LIVEKIT_API_KEY=key, LIVEKIT_API_SECRET=secret)
        print(f"LiveKit dev server  {livekit.url}  (log {livekit.process.log_path})")
        print(f"                    LIVEKIT_API_KEY={key} LIVEKIT_API_SECRET={secret}")
        _serve(Settings())


def _serve(settings: Settings) -> None:
    base = f"http://{settings.host}:{settings.port}"
    print(f"Control plane       {base}   docs {base}/docs", flush=True)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
