"""The one stack every tier tests against, and the settings of a test service.

`Stack` starts, in order and on free loopback ports, a Redis, a LiveKit dev server posting
its webhooks to the stack's services (with the options a tier needs: the address it offers
for media, its own LiveKit class for the ingress URLs), and the service over real HTTP;
a tier attaches its other processes (LiveKit's SIP server, ...) with `Stack.start`. Each
part starts on first use, after the parts it stands on; `close()` stops every one it
started, in reverse order. The service in process, without HTTP, is `asgi_client`; one
over real HTTP outside a stack, `serving`.

Service keys available to every test (see `KEYS`): `admin` (all scopes), `reader`
(`rooms:read`), `issuer` (`tokens:issue`), `events` (`webhooks:read`), `nobody` (none),
`minter` (`tokens:admin`), `room-writer` (`rooms:write`), `sip-writer` (`sip:write`),
`ingress-writer` (`ingress:write`), `recordings-reader` (`recordings:read`), `hooks`
(`webhooks:write`). Use `auth("reader")` for the header.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
from asgi_lifespan import LifespanManager

from app.config.settings import Settings
from app.core.devserver import LocalLiveKit, free_port
from app.main import create_app
from tests.components import LiveService, LocalRedis

API_KEY = "APItestkey"
API_SECRET = secrets.token_urlsafe(32)
LOOPBACK = "127.0.0.1"

KEYS: dict[str, tuple[str, list[str]]] = {
    "admin": (secrets.token_urlsafe(32), ["admin"]),
    "reader": (secrets.token_urlsafe(32), ["rooms:read"]),
    "issuer": (secrets.token_urlsafe(32), ["tokens:issue"]),
    "events": (secrets.token_urlsafe(32), ["webhooks:read"]),
    "nobody": (secrets.token_urlsafe(32), []),
    "minter": (secrets.token_urlsafe(32), ["tokens:admin"]),
    "room-writer": (secrets.token_urlsafe(32), ["rooms:write"]),
    "sip-writer": (secrets.token_urlsafe(32), ["sip:write"]),
    "ingress-writer": (secrets.token_urlsafe(32), ["ingress:write"]),
    "recordings-reader": (secrets.token_urlsafe(32), ["recordings:read"]),
    "hooks": (secrets.token_urlsafe(32), ["webhooks:write"]),
}


def auth(name: str) -> dict[str, str]:
    """The Authorization header for the test service key `name`."""
    return {"Authorization": f"Bearer {KEYS[name][0]}"}


def service_keys() -> list[dict[str, Any]]:
    """`KEYS` as the `SERVICE_KEYS` setting reads them."""
    return [{"name": n, "key": k, "scopes": s} for n, (k, s) in KEYS.items()]


def make_settings(livekit_url: str, tmp_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test app against `livekit_url`; `overrides` are Settings fields."""
    values: dict[str, Any] = {
        "app_env": "development",
        "livekit_url": livekit_url,
        "livekit_api_key": API_KEY,
        "livekit_api_secret": API_SECRET,
        "service_keys": service_keys(),
        "database_url": f"sqlite+aiosqlite:///{tmp_dir / 'events.db'}",
        # relay endpoints in the tests are subscribers on loopback (`Subscriber`)
        "webhook_endpoint_allow": ["127.0.0.1"],
        # off unless a test turns it on: its LiveKit calls and derived events are its own
        "reconcile_interval_seconds": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@contextmanager
def serving(
    livekit_url: str, tmp_dir: Path, *, port: int | None = None, **overrides: Any
) -> Iterator[LiveService]:
    """`with serving(livekit_url, tmp_dir, **overrides) as service:` the service over real
    HTTP (`LiveService`, on `port` or a free one) for `make_settings(livekit_url, tmp_dir,
    **overrides)`, stopped when the block ends."""
    service = LiveService(port).start(make_settings(livekit_url, tmp_dir, **overrides))
    try:
        yield service
    finally:
        service.stop()


@asynccontextmanager
async def asgi_client(
    livekit_url: str, tmp_dir: Path, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """`async with asgi_client(livekit_url, tmp_dir, **overrides) as http:` a client of the
    app for `make_settings(livekit_url, tmp_dir, **overrides)` in this process (no HTTP),
    lifespan included; `http.app` is the app (for `dependency_overrides`)."""
    app = create_app(make_settings(livekit_url, tmp_dir, **overrides))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            http.app = app  # type: ignore[attr-defined]
            yield http


class Component(Protocol):
    """A process (or server thread) started by `start()` and stopped by `stop()`."""

    def start(self) -> object: ...

    def stop(self) -> None: ...


C = TypeVar("C", bound=Component)


class Stack:
    """Redis, a LiveKit dev server and the service, started in order on free loopback ports
    as the tier asks for them, and stopped in reverse order by `close()` (or the end of a
    `with` block): each process by its PID, the service's uvicorn thread told to exit.

    `services` names the services in front of LiveKit: each gets its port now, so that
    LiveKit, started before them, posts its webhooks to every one (unless `webhooks` is
    false). `node_ip` is the address LiveKit offers for media (a network namespace's, for
    LiveKit's own workers); `livekit_type` builds the server from LiveKit's keyword
    arguments (`LocalLiveKit`'s), e.g. a subclass announcing ingress URLs. `settings` are
    Settings fields of every service of the stack; each one's database lies under
    `workdir/<name>`.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        services: Sequence[str] = ("service",),
        webhooks: bool = True,
        node_ip: str = LOOPBACK,
        livekit_type: Callable[..., LocalLiveKit] = LocalLiveKit,
        **settings: Any,
    ) -> None:
        self.workdir = workdir
        self.node_ip = node_ip
        self.settings = settings
        self.ports = {name: free_port() for name in services}
        self.webhook_urls = [
            f"http://{LOOPBACK}:{port}/v1/webhooks/livekit" for port in self.ports.values()
        ]
        self._webhooks = webhooks
        self._livekit_type = livekit_type
        self._services: dict[str, LiveService] = {}
        self._exit = ExitStack()

    def start(self, component: C) -> C:
        """Start `component` and have the stack stop it, before everything started
        earlier; returns it."""
        component.start()
        self._exit.callback(component.stop)
        return component

    @functools.cached_property
    def redis(self) -> LocalRedis:
        """The stack's own Redis (LiveKit's SIP, ingress and egress APIs need one)."""
        return self.start(LocalRedis())

    @functools.cached_property
    def livekit(self) -> LocalLiveKit:
        """`livekit-server --dev` with the stack's Redis, signing with `API_KEY` and
        `API_SECRET`, posting webhooks to the stack's services."""
        server = self._livekit_type(
            api_key=API_KEY,
            api_secret=API_SECRET,
            redis=self.redis.address,
            webhook_urls=self.webhook_urls if self._webhooks else None,
            node_ip=self.node_ip,
        )
        return self.start(server)

    def service(self, name: str | None = None, **overrides: Any) -> LiveService:
        """The service `name` (the first of `services` by default) over real HTTP on its
        port, against `livekit`, with the stack's settings and `overrides`; started on the
        first call, returned as it is by later ones."""
        name = name or next(iter(self.ports))
        if name not in self._services:
            tmp_dir = self.workdir / name
            tmp_dir.mkdir(exist_ok=True)
            settings = {**self.settings, **overrides}
            service = serving(self.livekit.url, tmp_dir, port=self.ports[name], **settings)
            self._services[name] = self._exit.enter_context(service)
        return self._services[name]

    def close(self) -> None:
        """Stop every component started, the last started first."""
        self._exit.close()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
