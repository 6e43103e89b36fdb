"""What `python -m app` writes: structured logs (JSON lines in production, text in
development) with one access line per request at LOG_LEVEL, no secret anywhere, and the
embedded dev server's secret only when it was generated. The app served by uvicorn's own
command line (`uvicorn app.main:create_app --factory`) logs the same way."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from app.core.devserver import PROJECT_ROOT
from tests.components import ServiceProcess
from tests.conftest import API_KEY, API_SECRET, KEYS, auth, service_keys

UNUSED_LIVEKIT = "http://127.0.0.1:9"


def run_and_read_log(env: dict[str, str], *, uvicorn_factory: bool = False) -> str:
    """Start the service with `env` (`ServiceProcess`, by uvicorn's command line with
    `uvicorn_factory`), make two requests, stop it; its whole output."""
    service = ServiceProcess(env, uvicorn_factory=uvicorn_factory).start()
    try:
        httpx.get(f"{service.url}/healthz", headers={"X-Request-ID": "log-1"})
        response = httpx.get(
            f"{service.url}/v1/rooms", headers={**auth("admin"), "X-Request-ID": "log-2"}
        )
        assert response.status_code == 503  # LiveKit is not there
    finally:
        service.stop()
    return Path(service.process.log_path).read_text()


def base_env(tmp_path: Path) -> dict[str, str]:
    return {
        "LIVEKIT_URL": UNUSED_LIVEKIT,
        "LIVEKIT_API_KEY": API_KEY,
        "LIVEKIT_API_SECRET": API_SECRET,
        "SERVICE_KEYS": json.dumps(service_keys()),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'events.db'}",
        "LOG_LEVEL": "info",
    }


def assert_no_secret(output: str) -> None:
    assert API_SECRET not in output
    assert not any(key in output for key, _ in KEYS.values())


def test_production_logs_are_json_lines_with_one_access_line_per_request(tmp_path):
    env = base_env(tmp_path) | {"APP_ENV": "production", "RATE_LIMIT_STORAGE_URL": "memory://"}
    output = run_and_read_log(env)
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]  # all JSON
    ours = {"log-1", "log-2"}  # (the start-up probe of /healthz is logged too)
    access = [line for line in lines if line.get("request_id") in ours]
    access = [line for line in access if line.get("logger") == "app.access"]
    assert len(access) == 2, output
    rooms = next(line for line in access if line["request_id"] == "log-2")
    assert rooms["level"] == "info"
    assert (rooms["method"], rooms["route"], rooms["status"]) == ("GET", "/v1/rooms", 503)
    assert rooms["caller"] == "admin" and rooms["duration_ms"] >= 0 and rooms["timestamp"]
    health = next(line for line in access if line["request_id"] == "log-1")
    assert (health["route"], health["status"], health["caller"]) == ("/healthz", 200, None)
    # the app's own INFO lines reach the output (not only the access lines), uvicorn's too,
    # and uvicorn's own access log is off
    assert any(line.get("logger") == "app" and line["level"] == "info" for line in lines)
    assert any(line.get("logger", "").startswith("uvicorn") for line in lines)
    assert not any(line.get("logger") == "uvicorn.access" for line in lines)
    assert_no_secret(output)


def test_uvicorn_factory_logs_json_lines_with_the_access_line_as_python_m_app(tmp_path):
    env = base_env(tmp_path) | {"APP_ENV": "production", "RATE_LIMIT_STORAGE_URL": "memory://"}
    output = run_and_read_log(env, uvicorn_factory=True)
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]  # all JSON
    access = [line for line in lines if line.get("logger") == "app.access"]
    rooms = next(line for line in access if line.get("request_id") == "log-2")
    assert (rooms["method"], rooms["route"], rooms["status"]) == ("GET", "/v1/rooms", 503)
    assert rooms["level"] == "info" and rooms["caller"] == "admin" and rooms["timestamp"]
    # uvicorn's own lines take the same shape, and its access log is off
    assert any(line.get("logger", "").startswith("uvicorn") for line in lines)
    assert not any(line.get("logger") == "uvicorn.access" for line in lines)
    assert_no_secret(output)


def test_uvicorn_factory_logs_at_log_level(tmp_path):
    output = run_and_read_log(base_env(tmp_path) | {"LOG_LEVEL": "warning"}, uvicorn_factory=True)
    assert "app.access" not in output and "[info" not in output  # uvicorn's lines neither
    assert "log-2" in output  # the warning about LiveKit, with its request id


def test_development_logs_are_readable_text(tmp_path):
    output = run_and_read_log(base_env(tmp_path) | {"APP_ENV": "development"})
    line = next(line for line in output.splitlines() if "log-2" in line and "app.access" in line)
    assert "GET /v1/rooms 503" in line and "caller=admin" in line
    assert not line.lstrip().startswith("{")
    assert_no_secret(output)


def test_log_level_warning_drops_the_access_lines(tmp_path):
    output = run_and_read_log(base_env(tmp_path) | {"LOG_LEVEL": "warning"})
    assert "app.access" not in output and "log-1" not in output
    assert "log-2" in output  # the warning about LiveKit, with its request id


def test_the_dev_server_secret_is_printed_only_when_generated():
    configured = secrets.token_urlsafe(32)
    env = {"LIVEKIT_URL": "", "LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": configured}
    service = ServiceProcess(env).start()
    service.stop()
    output = service.log_tail() + Path(service.process.log_path).read_text()
    assert configured not in output
    assert "LIVEKIT_API_SECRET=(as configured)" in output

    service = ServiceProcess({"LIVEKIT_URL": "", "LIVEKIT_API_SECRET": ""}).start()
    service.stop()
    output = Path(service.process.log_path).read_text()
    printed = output.split("LIVEKIT_API_SECRET=", 1)[1].split()[0]
    assert len(printed) >= 32  # the generated one, so that the operator can use it


def test_sigterm_stops_the_embedded_dev_server_too():
    service = ServiceProcess({"LIVEKIT_URL": ""}).start()
    output = Path(service.process.log_path).read_text()
    livekit_port = int(output.split("LiveKit dev server  http://127.0.0.1:", 1)[1].split()[0])
    service.stop()  # SIGTERM
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", livekit_port)) != 0, "the dev server still runs"


def test_a_configuration_error_exits_naming_the_setting_not_the_secret(tmp_path):
    leaked = secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "LIVEKIT_URL": UNUSED_LIVEKIT,
        "SERVICE_KEYS": json.dumps([{"name": "ops", "key": leaked, "scopes": ["root"]}]),
        "DATABASE_URL": f"postgresql+asyncpg://user:{leaked}@db/events",
        "LIVEKIT_WEBHOOK_KEYS": leaked,
    }
    result = subprocess.run(
        [sys.executable, "-m", "app"], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert (
        "SERVICE_KEYS" in result.stderr.upper() and "LIVEKIT_WEBHOOK_KEYS" in result.stderr.upper()
    )
    assert leaked not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
