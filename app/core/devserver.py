"""Local processes for development, tests and benchmarks, each on free loopback ports,
stopped on exit: a LiveKit server in dev mode (`LocalLiveKit`) and a throwaway PostgreSQL
cluster (`LocalPostgres`, for the tests and `python -m bench`).

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

PROJECT_ROOT = Path(__file__).resolve().parents[2]
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
        process = self._process

        def ready_unless_exited() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_tail()}")
            return ready()

        if not wait_until(ready_unless_exited, timeout):
            self.stop()
            raise RuntimeError(f"{self.name} not ready after {timeout:g} s: {self.log_tail()}")

    @property
    def pid(self) -> int | None:
        """The started process's id (None before `start`)."""
        return self._process.pid if self._process else None

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

    def kill(self) -> None:
        """SIGKILL the process at once (no shutdown of its own: what a crash does) and wait
        for it; its log stays open for `stop`."""
        if self._process and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the process wrote."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def wait_until(ready: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Call `ready()` every `interval` s until it is true (then True) or `timeout` s have
    passed (then False); what `ready()` raises propagates."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return True
        time.sleep(interval)
    return False


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """A readiness probe: something accepts TCP connections on `host:port`."""
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


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


def _postgres_bindir() -> Path:
    """The directory of PostgreSQL's server programs (`initdb`, `pg_ctl`, `createdb`):
    `$PG_BINDIR`, else Debian's PostgreSQL 15, else `pg_config --bindir`;
    FileNotFoundError if none holds `initdb`."""
    candidates = [os.environ.get("PG_BINDIR"), "/usr/lib/postgresql/15/bin"]
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run(  # noqa: S603 - PostgreSQL's own program, fixed arguments
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        candidates.append(found.stdout.strip())
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    raise FileNotFoundError("PostgreSQL (initdb, pg_ctl) not found: install Debian's postgresql")


class LocalPostgres:
    """A throwaway PostgreSQL cluster: `initdb` into a temp dir (as user `postgres` when run
    as root), `pg_ctl start` on a free loopback port, trust authentication for `postgres`.
    `url(database)` is an SQLAlchemy asyncpg URL. A failing PostgreSQL program raises
    RuntimeError with its output and the tail of the server's log."""

    def __init__(self) -> None:
        self.bindir = _postgres_bindir()
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="pg-"))
        self.data = self.workdir / "data"
        self.log_path = self.workdir / "postgres.log"
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user:
            shutil.chown(self.workdir, user=self._user, group=self._user)

    def _run(self, *args: str) -> None:
        result = subprocess.run(  # noqa: S603 - PostgreSQL's own programs, fixed arguments
            [str(self.bindir / args[0]), *args[1:]],
            user=self._user,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            log = self.log_path.read_text() if self.log_path.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}{log[-3000:]}")

    def start(self) -> LocalPostgres:
        """Create the cluster and start its server."""
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        self.resume()
        return self

    def stop(self) -> None:
        """Stop the server and delete the cluster."""
        self.pause()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def pause(self) -> None:
        """Stop the server (`pg_ctl stop -m fast`: open connections are cut), keeping its
        data for `resume`."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start the server again on the same port and data after `pause`."""
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w", "start"
        )

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL (asyncpg) of `database` on this server, as user `postgres`."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database `name` (with `createdb`); returns its URL."""
        server = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        result = subprocess.run(  # noqa: S603 - PostgreSQL's own program, fixed arguments
            [str(self.bindir / "createdb"), *server, name],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"createdb failed: {result.stderr}")
        return self.url(name)
