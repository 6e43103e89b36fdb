"""`python -m app`: serve the control plane with uvicorn.

In development with no LIVEKIT_URL, a local `livekit-server --dev` is started first and
the service is pointed at it, so one command gives a working stack.
"""

from __future__ import annotations

import os
import sys

import uvicorn

from app.devserver import LocalLiveKit, running
from app.settings import DEV_API_KEY, DEV_API_SECRET, Settings


def main() -> None:
    """Run the service (and, when needed, a local LiveKit dev server) until interrupted."""
    settings = Settings()
    if settings.livekit_url:
        _serve(settings)
        return
    if not settings.is_development:
        sys.exit("LIVEKIT_URL must be set when APP_ENV=production")
    key = settings.livekit_api_key or DEV_API_KEY
    secret = settings.livekit_api_secret or DEV_API_SECRET
    with running(LocalLiveKit(api_key=key, api_secret=secret)) as livekit:
        os.environ["LIVEKIT_URL"] = livekit.url
        print(f"LiveKit dev server  {livekit.url}  (key {key!r}, log {livekit.process.log_path})")
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
