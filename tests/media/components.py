"""LiveKit's egress and ingress workers and what they need, on free ports, inside the test
run's network namespace (scripts/in-netns.sh): a LiveKit server advertising the namespace's
non-loopback address (the workers' WebRTC ignores loopback), PulseAudio for web egress,
and the workers themselves, configured as measured in shared/notes/livekit-media.md
(CPU admission costs for a 2-core machine).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from app.core.devserver import (
    TOOLS_BIN,
    LocalLiveKit,
    ManagedProcess,
    find_binary,
    free_port,
    http_ok,
)

#: The namespace's veth address (exported by scripts/in-netns.sh).
NETNS_ADDR = os.environ.get("TEST_NETNS_ADDR", "")


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


def worker_env(workdir: Path, **extra: str) -> dict[str, str]:
    """The environment of a worker: `.tools/bin` first on PATH (each worker starts copies of
    itself by name), a private XDG_RUNTIME_DIR shared with PulseAudio."""
    return {
        **os.environ,
        "PATH": f"{TOOLS_BIN}:{os.environ.get('PATH', '')}",
        "XDG_RUNTIME_DIR": str(workdir),
        "HOME": str(workdir),
        **extra,
    }


class PulseAudio:
    """`pulseaudio` in the foreground (stopped by PID), its socket in `runtime_dir`: the
    sound server web and room composite egress capture the browser's audio from."""

    def __init__(self, runtime_dir: Path) -> None:
        self.runtime_dir = runtime_dir
        binary = shutil.which("pulseaudio")
        if binary is None:
            raise FileNotFoundError("pulseaudio not found: run `make install`")
        args = [binary, "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit", "-n",
                "--load=module-native-protocol-unix", "--load=module-null-sink",
                "--use-pid-file=no", "--system=no"]  # fmt: skip
        self.process = ManagedProcess(
            "pulseaudio", args, runtime_dir, env=worker_env(runtime_dir), cwd=runtime_dir
        )

    def start(self) -> PulseAudio:
        socket_path = self.runtime_dir / "pulse" / "native"
        self.process.start(socket_path.exists)
        return self

    def stop(self) -> None:
        self.process.stop()


class MediaLiveKit(LocalLiveKit):
    """`livekit-server --dev` with Redis, advertising `NETNS_ADDR` for media, telling
    clients the ingress URLs (`rtmp_port`, `whip_port` are the ingress worker's)."""

    def __init__(
        self, *, api_key: str, api_secret: str, redis: str, webhook_urls: list[str]
    ) -> None:
        self.rtmp_port = free_port()
        self.whip_port = free_port()
        self.node_ip = NETNS_ADDR
        super().__init__(
            api_key=api_key,
            api_secret=api_secret,
            redis=redis,
            webhook_urls=webhook_urls,
            node_ip=NETNS_ADDR,
            extra_config={
                "ingress": {
                    "rtmp_base_url": f"rtmp://{NETNS_ADDR}:{self.rtmp_port}/live",
                    "whip_base_url": f"http://{NETNS_ADDR}:{self.whip_port}/w",
                }
            },
        )


class _Worker:
    """A LiveKit worker process from `.tools/bin`, configured by a YAML file; `restart()`
    starts it again after it exited (egress exits after some pipeline errors)."""

    name = ""
    config_env = ""

    def __init__(self, config: dict[str, Any], health_port: int, workdir: Path) -> None:
        self.workdir = workdir
        self.health_port = health_port
        self.config_path = workdir / f"{self.name}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        binary = find_binary(self.name, f"LIVEKIT_{self.name.upper()}_BIN")
        env = worker_env(workdir, **{self.config_env: str(self.config_path)})
        self.process = ManagedProcess(self.name, [binary], workdir, env=env, cwd=workdir)
        self.starts = 0

    @staticmethod
    def connection(livekit: LocalLiveKit, redis: str, health_port: int) -> dict[str, Any]:
        """The configuration every worker shares: LiveKit's URL and key pair, Redis, the
        health port, debug logs."""
        return {
            "log_level": "debug",
            "api_key": livekit.api_key,
            "api_secret": livekit.api_secret,
            "ws_url": livekit.url.replace("http://", "ws://"),
            "redis": {"address": redis},
            "health_port": health_port,
        }

    def start(self) -> _Worker:
        self.process.start(lambda: _port_open(self.health_port), timeout=60)
        self.starts += 1
        return self

    def running(self) -> bool:
        return self.process.running()

    #: What the worker logs when it has decided to exit (it may drain for a while first).
    exiting_line = "internal error, shutting down"

    def ensure_running(self) -> None:
        """Restart the worker when it exited or is shutting down after an internal error
        (egress does so after some pipeline errors: `could not create element: faac`)."""
        if not self.running() or self.exiting_line in self.process.log_tail(10_000):
            self.process.stop()
            self.start()

    def stop(self) -> None:
        self.process.stop()


class EgressWorker(_Worker):
    """LiveKit's egress worker (`.tools/bin/egress`), writing local files under `workdir`."""

    name = "egress"
    config_env = "EGRESS_CONFIG_FILE"

    def __init__(self, *, livekit: LocalLiveKit, redis: str, workdir: Path | None = None) -> None:
        workdir = workdir or Path(tempfile.mkdtemp(prefix="egress-"))
        health_port = free_port()
        cost = 0.05
        config = {
            **_Worker.connection(livekit, redis, health_port),
            "template_port": free_port(),
            "insecure": True,
            "cpu_cost": {
                "max_cpu_utilization": 1.0,
                **{
                    f"{kind}_cpu_cost": cost
                    for kind in (
                        "room_composite",
                        "audio_room_composite",
                        "web",
                        "audio_web",
                        "participant",
                        "track_composite",
                        "track",
                    )
                },
            },
        }
        super().__init__(config, health_port, workdir)


class IngressWorker(_Worker):
    """LiveKit's ingress worker (`.tools/bin/ingress`): RTMP and WHIP on the ports the
    `MediaLiveKit` announced, WebRTC on `NETNS_ADDR`."""

    name = "ingress"
    config_env = "INGRESS_CONFIG_FILE"

    def __init__(self, *, livekit: MediaLiveKit, redis: str, workdir: Path | None = None) -> None:
        workdir = workdir or Path(tempfile.mkdtemp(prefix="ingress-"))
        health_port = free_port()
        config = {
            **_Worker.connection(livekit, redis, health_port),
            "rtmp_port": livekit.rtmp_port,
            "whip_port": livekit.whip_port,
            "http_relay_port": free_port(),
            "rtc_config": {
                "udp_port": free_port(),
                "use_external_ip": False,
                "node_ip": NETNS_ADDR,
            },
            # Ingress admits a push when the whole machine's idle CPUs exceed the cost plus
            # min_idle_ratio x cores (ingress v1.5.0 pkg/stats/monitor.go); on a shared
            # 2-core machine idle time is scarce, so both are tiny (0 means the defaults).
            "cpu_cost": {
                "rtmp_cpu_cost": 0.001,
                "whip_cpu_cost": 0.001,
                "whip_bypass_transcoding_cpu_cost": 0.001,
                "url_cpu_cost": 0.001,
                "min_idle_ratio": 0.0001,
            },
        }
        super().__init__(config, health_port, workdir)

    def available(self) -> bool:
        """The worker's own admission answer: `/availability` on its health port is 200 when
        its CPU monitor would accept a push now (it has no reading right after start)."""
        return http_ok(f"http://127.0.0.1:{self.health_port}/availability")()
