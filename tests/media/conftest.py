"""The media tier: LiveKit's egress and ingress workers, inside the test run's network
namespace (`make test` runs pytest through scripts/in-netns.sh).

Session fixtures start, on free ports: Redis, a LiveKit server advertising the namespace's
address, PulseAudio, the egress and ingress workers, and the service over real HTTP
(receiving LiveKit's webhooks). `egress_worker` restarts the egress worker before a test
when it exited (it does after some pipeline errors). The tests share the 2 cores with
everything else: run them one at a time, never in parallel.
"""

from __future__ import annotations

import array
import http.server
import math
import shutil
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.devserver import free_port
from tests.components import LiveService, LocalRedis, LocalSeaweedFS
from tests.conftest import API_KEY, API_SECRET, auth, recordings_settings, serving
from tests.media.components import (
    NETNS_ADDR,
    EgressWorker,
    IngressWorker,
    MediaLiveKit,
    PulseAudio,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/media/" in str(item.fspath):
            item.add_marker(pytest.mark.timeout(600))


@pytest.fixture(scope="session")
def media_netns() -> str:
    """The namespace's non-loopback address; the media tier cannot run without it."""
    if not NETNS_ADDR:
        raise RuntimeError(
            "the media tier runs inside scripts/in-netns.sh (TEST_NETNS_ADDR unset): `make test`"
        )
    for tool in ("ffmpeg", "ffprobe", "chromium", "pulseaudio"):
        if shutil.which(tool) is None:
            raise FileNotFoundError(f"{tool} not found: run `make install`")
    return NETNS_ADDR


@pytest.fixture(scope="session")
def media_redis(media_netns: str) -> Iterator[LocalRedis]:
    """A Redis of the media tier's own, so that no other LiveKit server shares its workers."""
    server = LocalRedis().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def media_service_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def recordings_service_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def media_livekit(
    media_redis: LocalRedis, media_service_port: int, recordings_service_port: int
) -> Iterator[MediaLiveKit]:
    """LiveKit with Redis, media on the namespace address, webhooks to the media service and
    to the recordings service (`recordings_service`, started by the tests that need it)."""
    server = MediaLiveKit(
        api_key=API_KEY,
        api_secret=API_SECRET,
        redis=media_redis.address,
        webhook_urls=[
            f"http://127.0.0.1:{port}/v1/webhooks/livekit"
            for port in (media_service_port, recordings_service_port)
        ],
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def media_service(
    media_livekit: MediaLiveKit, media_service_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveService]:
    """The service over real HTTP against the media tier's LiveKit (10 s LiveKit deadline)."""
    with serving(
        media_livekit.url,
        tmp_path_factory.mktemp("media"),
        port=media_service_port,
        livekit_timeout_seconds=10,
    ) as service:
        yield service


@pytest.fixture(scope="session")
def recordings_service(
    media_livekit: MediaLiveKit,
    recordings_service_port: int,
    seaweedfs: LocalSeaweedFS,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveService]:
    """A second service against the media tier's LiveKit, with its recordings bucket
    (`recordings`) on SeaweedFS: every egress output without an upload target goes there.
    SeaweedFS listens on loopback, which the egress worker in the namespace reaches."""
    settings = recordings_settings(seaweedfs, "recordings")
    with serving(
        media_livekit.url,
        tmp_path_factory.mktemp("recordings"),
        port=recordings_service_port,
        livekit_timeout_seconds=10,
        **settings,
    ) as service:
        yield service


@pytest.fixture
async def media_client(media_service: LiveService) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the media service (no credentials: add `auth(...)`)."""
    async with httpx.AsyncClient(base_url=media_service.url, timeout=60) as http:
        yield http


@pytest.fixture(scope="session")
def pulse(media_netns: str) -> Iterator[PulseAudio]:
    server = PulseAudio(Path(tempfile.mkdtemp(prefix="pulse-"))).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _egress_session(
    media_livekit: MediaLiveKit, media_redis: LocalRedis, pulse: PulseAudio
) -> Iterator[EgressWorker]:
    worker = EgressWorker(
        livekit=media_livekit, redis=media_redis.address, workdir=pulse.runtime_dir
    )
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def egress_worker(_egress_session: EgressWorker) -> EgressWorker:
    """The egress worker, restarted first if it exited after an earlier pipeline error."""
    _egress_session.ensure_running()
    return _egress_session


@pytest.fixture(scope="session")
def ingress_worker(media_livekit: MediaLiveKit, media_redis: LocalRedis) -> Iterator[IngressWorker]:
    worker = IngressWorker(livekit=media_livekit, redis=media_redis.address)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def output_dir(egress_worker: EgressWorker) -> Path:
    """A fresh directory the egress worker writes files into."""
    return Path(tempfile.mkdtemp(prefix="out-", dir=egress_worker.workdir))


PAGE = b"""<!doctype html><html><head><title>egress page</title><style>
html, body { margin: 0; height: 100%; background: #c81e1e; }
h1 { color: #ffffff; font: bold 120px sans-serif; margin: 0; padding: 80px; }
</style></head><body><h1>web egress</h1></body></html>"""


@pytest.fixture(scope="session")
def web_page(media_netns: str) -> Iterator[str]:
    """The URL of a page this test run serves: a red page with white text."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/page.html"
    server.shutdown()
    thread.join(timeout=10)


# --- helpers ----------------------------------------------------------------------------


def egress_getter(http: httpx.AsyncClient, egress_id: str) -> Any:
    async def fetch() -> dict[str, Any]:
        response = await http.get(f"/v1/egress/{egress_id}", headers=auth("reader"))
        assert response.status_code == 200, response.text
        return response.json()

    return fetch


def ffprobe(path: Path) -> dict[str, Any]:
    """ffprobe's JSON for `path` (format and streams)."""
    import json

    result = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
         str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return dict(json.loads(result.stdout))


def tone_power(path: Path, frequencies: list[int]) -> dict[int, float]:
    """Goertzel power of each frequency over one second of `path`'s audio (decoded to 48 kHz
    mono by ffmpeg), taken from its middle."""
    pcm = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", "48000", "-"],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    samples = array.array("h", pcm[: len(pcm) // 2 * 2])
    middle = len(samples) // 2
    window = samples[max(0, middle - 24000) : middle + 24000]
    powers = {}
    for frequency in frequencies:
        coefficient = 2 * math.cos(2 * math.pi * frequency / 48000)
        s1 = s2 = 0.0
        for sample in window:
            s1, s2 = sample + coefficient * s1 - s2, s1
        powers[frequency] = s1 * s1 + s2 * s2 - coefficient * s1 * s2
    return powers
