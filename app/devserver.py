"""Local processes for development and tests: a LiveKit server in dev mode (and, for the
tests, the other real components), each on free loopback ports, stopped on exit.

The binaries come from `make tools` (`scripts/install-tools.sh`), which installs LiveKit's
own `server` and `test-server` into `.tools/bin` from the Go module proxy.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TOOLS_BIN = PROJECT_ROOT / ".tools" / "bin"


#: Where `free_port` looks: below the kernel's ephemeral range (32768-60999 on Linux), so
#: that no outgoing connection made meanwhile takes the port before its server binds it.
FREE_PORTS = range(10000, 20000)


def free_port(*, udp: bool = False) -> int:
    """A port on 127.0.0.1 that nothing holds right now for TCP (and for UDP too when `udp`,
    for servers that listen on both, as SIP does), drawn from `FREE_PORTS`."""
    kinds = [socket.SOCK_STREAM, socket.SOCK_DGRAM] if udp else [socket.SOCK_STREAM]
    while True:
        port = secrets.choice(FREE_PORTS)
        sockets = [socket.socket(socket.AF_INET, kind) for kind in kinds]
        try:
            for sock in sockets:
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return port


def find_binary(name: str, env_var: str) -> str:
    """`$env_var`, else `.tools/bin/<name>`, else `<name>` on PATH; FileNotFoundError if none."""
    candidates = [os.environ.get(env_var), str(TOOLS_BIN / name), shutil.which(name)]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise FileNotFoundError(f"{name} not found: run `make tools` (or set {env_var})")


class ManagedProcess:
    """A child process with its output in a log file, started and stopped by its owner."""

    def __init__(
        self,
        name: str,
        args: list[str],
        workdir: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        """`args` run with `env` (default: this process's) in `cwd`; output goes to
        `<workdir>/<name>.log`."""
        self.name = name
        self.args = args
        self.env = env
        self.cwd = cwd
        self.log_path = workdir / f"{name}.log"
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, ready: Callable[[], bool], timeout: float = 30.0) -> None:
        """Start the process and wait until `ready()` is true; RuntimeError otherwise."""
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(  # noqa: S603 - our own binaries, fixed arguments
            self.args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_tail()}")
            if ready():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout:g} s: {self.log_tail()}")

    def running(self) -> bool:
        """True while the started process has not exited."""
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after 10 s) and close its log."""
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._log:
            self._log.close()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the process wrote."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def http_ok(url: str) -> Callable[[], bool]:
    """A readiness probe: GET `url` answers 200."""

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
                return bool(response.status == 200)
        except OSError:
            return False

    return probe


class LocalLiveKit:
    """`livekit-server --dev` on free loopback ports.

    `url` is its http:// URL; `api_key`/`api_secret` the key pair it accepts. `redis`
    (host:port) enables the SIP, ingress and egress APIs; `webhook_urls` receive events
    signed with `api_key`. `node_ip` is the address LiveKit advertises for media (a
    non-loopback one for LiveKit's own workers, which ignore loopback); `extra_config` is
    merged into its YAML config at the top level (e.g. `ingress` base URLs).
    """

    def __init__(
        self,
        *,
        api_key: str,
        api_secret: str,
        redis: str | None = None,
        webhook_urls: list[str] | None = None,
        workdir: Path | None = None,
        node_ip: str = "127.0.0.1",
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="livekit-"))
        config: dict[str, Any] = {
            "port": self.port,
            "bind_addresses": ["127.0.0.1"],
            "rtc": {"tcp_port": free_port(), "udp_port": free_port(), "use_external_ip": False},
            "keys": {api_key: api_secret},
            "logging": {"level": "info"},
        }
        if redis:
            config["redis"] = {"address": redis}
        if webhook_urls:
            config["webhook"] = {"api_key": api_key, "urls": webhook_urls}
        config.update(extra_config or {})
        config_path = self.workdir / "livekit.yaml"
        config_path.write_text(yaml.safe_dump(config))
        binary = find_binary("server", "LIVEKIT_SERVER_BIN")
        args = [binary, "--dev", "--bind", "127.0.0.1", "--node-ip", node_ip]
        self.process = ManagedProcess(
            "livekit-server", [*args, "--config", str(config_path)], self.workdir
        )

    def start(self) -> LocalLiveKit:
        """Start and wait until the server answers HTTP."""
        self.process.start(http_ok(self.url))
        return self

    def stop(self) -> None:
        """Stop the server."""
        self.process.stop()


@contextlib.contextmanager
def running(server: LocalLiveKit) -> Iterator[LocalLiveKit]:
    """Start `server` for the duration of a `with` block."""
    server.start()
    try:
        yield server
    finally:
        server.stop()
