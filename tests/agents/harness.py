"""Starts and stops the test agent worker (`echo_worker.py`) and reads what it reports.

The worker runs from its own venv (`scripts/install-agent-venv.sh`, `.tools/agent-venv`, or
the interpreter in `$AGENT_PYTHON`), because livekit-agents pins versions that clash with
the service's. A missing venv is an error, never a skip.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from app.core.devserver import PROJECT_ROOT, ManagedProcess
from tests.participants import wait_for

WORKER_SCRIPT = Path(__file__).with_name("echo_worker.py")
AGENT_VENV_PYTHON = PROJECT_ROOT / ".tools" / "agent-venv" / "bin" / "python"


def agent_python() -> str:
    """The interpreter of the worker's venv; FileNotFoundError naming the install step."""
    candidate = Path(os.environ.get("AGENT_PYTHON") or AGENT_VENV_PYTHON)
    if not candidate.is_file():
        raise FileNotFoundError(
            f"{candidate} not found: run scripts/install-agent-venv.sh (or set AGENT_PYTHON)"
        )
    return str(candidate)


class AgentWorker:
    """One `echo_worker.py` process registered with a LiveKit server as `agent_name`.

    `livekit_url` is the server's http(s):// or ws(s):// URL, `api_key`/`api_secret` a key
    pair it accepts. Each job the worker joins is a `{"event": "job", ...}` record.
    """

    def __init__(self, livekit_url: str, api_key: str, api_secret: str, agent_name: str) -> None:
        self.agent_name = agent_name
        self.workdir = Path(tempfile.mkdtemp(prefix="agent-worker-"))
        self.report_path = self.workdir / "report.jsonl"
        url = livekit_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        server_file = self.workdir / "server.json"
        server_file.touch(mode=0o600)
        server_file.write_text(
            json.dumps({"url": url, "api_key": api_key, "api_secret": api_secret})
        )
        args = [agent_python(), str(WORKER_SCRIPT), "--agent-name", agent_name]
        args += ["--report", str(self.report_path), "--server", str(server_file)]
        self.process = ManagedProcess("agent-worker", args, self.workdir)

    def start(self, timeout: float = 90.0) -> AgentWorker:
        """Start the worker and wait until LiveKit has registered it."""
        self.process.start(lambda: bool(self.records("registered")), timeout=timeout)
        return self

    def stop(self) -> None:
        """Stop the worker (SIGTERM, then SIGKILL)."""
        self.process.stop()

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        """What the worker reported so far, oldest first; only `event` records if given."""
        try:
            lines = self.report_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        found = [json.loads(line) for line in lines if line.strip()]
        return [r for r in found if event is None or r["event"] == event]

    def jobs(self, room: str) -> list[dict[str, Any]]:
        """The jobs the worker joined in `room`."""
        return [job for job in self.records("job") if job["room"] == room]

    async def wait_for_job(self, room: str, timeout: float = 30.0) -> dict[str, Any]:
        """The first job the worker joined in `room`, waiting up to `timeout` s for it;
        AssertionError (with the worker's log) when none arrives."""
        try:
            await wait_for(lambda: self.jobs(room), timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(
                f"no job in {room!r}: {self.records()}\n{self.process.log_tail()}"
            ) from exc
        return self.jobs(room)[0]
