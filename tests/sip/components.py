"""The SIP tier's real components: LiveKit's SIP server (`livekit-sip`) and a SIP phone
(SIPp, Debian's `sip-tester`) playing the scenarios in `scenarios/`, each a process started
and stopped by PID on free ports.

They run inside the test run's network namespace (`scripts/in-netns.sh`): livekit-sip joins
rooms over WebRTC, which ignores loopback, so LiveKit's server offers the namespace's veth
address (`TEST_NETNS_ADDR`, 192.0.2.1) while SIP signalling and RTP stay on loopback (see
../shared/notes/livekit-sip.md).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

import yaml

from app.core.devserver import ManagedProcess, find_binary, free_port, http_ok

SCENARIOS = Path(__file__).with_name("scenarios")
LOOPBACK = "127.0.0.1"


def netns_address() -> str:
    """The namespace's non-loopback address; RuntimeError outside `scripts/in-netns.sh`."""
    address = os.environ.get("TEST_NETNS_ADDR")
    if not address:
        raise RuntimeError(
            "the SIP tier runs in a network namespace of its own: "
            "scripts/in-netns.sh .venv/bin/python -m pytest tests/sip"
        )
    return address


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def udp_bound(port: int) -> bool:
    """True when some process holds UDP `port` on 127.0.0.1 (a readiness probe)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return True
        return False


class LocalSipServer:
    """LiveKit's SIP server v1.8.0 (`.tools/bin/livekit-sip`), attached to a LiveKit server
    (`ws_url`, key pair) and its Redis. SIP over UDP on `LOOPBACK:sip_port`; RTP on a block
    of 100 ports; `max_cpu_utilization: 1.0` so a busy machine does not refuse calls."""

    def __init__(self, *, ws_url: str, api_key: str, api_secret: str, redis: str) -> None:
        self.sip_port = free_port(udp=True)  # livekit-sip listens on UDP and TCP
        self.health_port = free_port()
        self.address = f"{LOOPBACK}:{self.sip_port}"
        self.workdir = Path(tempfile.mkdtemp(prefix="livekit-sip-"))
        rtp_low = 20000 + (self.sip_port % 100) * 100  # 20000-29999, below the ephemeral range
        config = {
            "api_key": api_key,
            "api_secret": api_secret,
            "ws_url": ws_url,
            "redis": {"address": redis},
            "sip_port": self.sip_port,
            "listen_ip": LOOPBACK,
            "nat_1_to_1_ip": LOOPBACK,
            "rtp_port": f"{rtp_low}-{rtp_low + 99}",
            "health_port": self.health_port,
            "max_cpu_utilization": 1.0,
            "logging": {"level": "debug"},
        }
        config_path = self.workdir / "sip.yaml"
        config_path.touch(mode=0o600)
        config_path.write_text(yaml.safe_dump(config))
        binary = find_binary("livekit-sip", "LIVEKIT_SIP_BIN")
        self.process = ManagedProcess(
            "livekit-sip", [binary, "--config", str(config_path)], self.workdir
        )

    def start(self) -> LocalSipServer:
        """Start and wait until its health endpoint answers and it listens for SIP."""
        probe = http_ok(f"http://{LOOPBACK}:{self.health_port}/")
        self.process.start(lambda: probe() and udp_bound(self.sip_port), timeout=60)
        return self

    def stop(self) -> None:
        """Stop it (it ignores SIGTERM while calls are up: SIGKILL after the grace period)."""
        self.process.stop()

    def log_tail(self, lines: int = 60) -> str:
        return self.process.log_tail(lines)


class Phone:
    """A SIPp process playing `scenarios/<scenario>.xml` on UDP `LOOPBACK:port`.

    As a phone (no `dial`) it answers the calls sent to `address`; with `dial` (a `host:port`)
    it places one call there. `keys` fill the scenario's `[name]` fields (`-key`), `service`
    is the number dialled (`-s`). Every SIP message it sends or receives is logged to
    `messages_path`, read with `messages()`.
    """

    def __init__(
        self,
        scenario: str,
        *,
        dial: str | None = None,
        service: str | None = None,
        keys: dict[str, str] | None = None,
    ) -> None:
        self.scenario = scenario
        self.port = free_udp_port()
        self.address = f"{LOOPBACK}:{self.port}"
        self.dial = dial
        self.workdir = Path(tempfile.mkdtemp(prefix=f"sipp-{scenario}-"))
        self.messages_path = self.workdir / "messages.log"
        binary = shutil.which("sipp")
        if binary is None:
            raise FileNotFoundError("sipp not found: run scripts/install-workers.sh")
        args = [
            binary,
            "-sf",
            str(SCENARIOS / f"{scenario}.xml"),
            "-i",
            LOOPBACK,
            "-p",
            str(self.port),
            "-bind_local",
            "-mi",
            LOOPBACK,
            "-mp",
            str(free_udp_port()),
            "-rtp_echo",
            "-nostdin",
            "-trace_msg",
            "-message_file",
            str(self.messages_path),
            "-trace_err",
            "-error_file",
            str(self.workdir / "errors.log"),
        ]
        if service:
            args += ["-s", service]
        for name, value in (keys or {}).items():
            args += ["-key", name, value]
        if dial:
            args += ["-m", "1", dial]
        self.process = ManagedProcess("sipp", args, self.workdir)

    def start(self) -> Phone:
        """Start SIPp and wait until it holds its UDP port."""
        self.process.start(lambda: udp_bound(self.port))
        return self

    def stop(self) -> None:
        """Stop SIPp."""
        self.process.stop()

    def messages(self) -> str:
        """Every SIP message SIPp has sent or received so far, as text."""
        try:
            return self.messages_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def received(self, method: str) -> bool:
        """True once SIPp received a `method` request (e.g. `"BYE"`)."""
        pattern = rf"message received \[\d+\] bytes :\s*\n{method} sip:"
        return re.search(pattern, self.messages()) is not None
