"""A minimal LiveKit agent worker (PyPI `livekit-agents`, no speech models) for the dispatch
tests: it registers with an `agent_name` (explicit dispatch only), joins each room it is
dispatched to, and reports every job as one JSON line appended to a report file:

    {"event": "registered", "worker_id": "...", "agent_name": "..."}
    {"event": "job", "job_id", "dispatch_id", "agent_name", "room", "metadata", "identity"}
    {"event": "job_ended", "job_id", "dispatch_id", "reason"}

Run it from its own venv (`scripts/install-agent-venv.sh`):

    LIVEKIT_URL=ws://... LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=... \
        .tools/agent-venv/bin/python tests/agents/echo_worker.py --agent-name NAME --report FILE

or with `--server FILE`, a JSON file `{"url", "api_key", "api_secret"}` instead of the
environment (the tests use it, so no secret is passed on a command line).

It exits on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import signal
import threading
from pathlib import Path
from typing import Any

from livekit.agents import AgentServer, JobContext, JobExecutorType

_write_lock = threading.Lock()


def report(path: Path, **record: Any) -> None:
    """Append one JSON line to `path` (jobs run on threads, so writes are serialised)."""
    line = json.dumps(record, sort_keys=True) + "\n"
    with _write_lock, path.open("a", encoding="utf-8") as out:
        out.write(line)
        out.flush()


def build_server(
    agent_name: str, report_path: Path, connection: dict[str, str] | None = None
) -> AgentServer:
    """An `AgentServer` that accepts every job for `agent_name` and reports it; `connection`
    (`url`, `api_key`, `api_secret`) overrides LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET."""
    connection = connection or {}
    server = AgentServer(
        ws_url=connection.get("url"),
        api_key=connection.get("api_key"),
        api_secret=connection.get("api_secret"),
        # Jobs run on threads of this process: no process pool to warm up on a busy machine.
        job_executor_type=JobExecutorType.THREAD,
        num_idle_processes=1,
        # Never report itself as full, whatever else loads the machine.
        load_fnc=lambda: 0.0,
        load_threshold=math.inf,
        host="127.0.0.1",
        port=0,
    )

    @server.rtc_session(agent_name=agent_name)
    async def entrypoint(ctx: JobContext) -> None:
        job = ctx.job

        async def ended(reason: str) -> None:
            report(
                report_path,
                event="job_ended",
                job_id=job.id,
                dispatch_id=job.dispatch_id,
                reason=reason,
            )

        ctx.add_shutdown_callback(ended)
        await ctx.connect()
        report(
            report_path,
            event="job",
            job_id=job.id,
            dispatch_id=job.dispatch_id,
            agent_name=job.agent_name,
            room=job.room.name,
            metadata=job.metadata,
            identity=ctx.room.local_participant.identity,
        )

    def registered(worker_id: str, _server_info: Any) -> None:
        report(report_path, event="registered", worker_id=worker_id, agent_name=agent_name)

    server.on("worker_registered", registered)
    return server


async def serve(agent_name: str, report_path: Path, connection: dict[str, str] | None) -> None:
    """Run the worker until SIGTERM/SIGINT, then close it."""
    server = build_server(agent_name, report_path, connection)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(server.aclose()))
    await server.run(devmode=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent-name", required=True)
    parser.add_argument("--report", required=True, type=Path, help="JSON-lines file to append to")
    parser.add_argument("--server", type=Path, help='JSON {"url", "api_key", "api_secret"}')
    args = parser.parse_args()
    connection = json.loads(args.server.read_text(encoding="utf-8")) if args.server else None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(args.agent_name, args.report, connection))


if __name__ == "__main__":
    main()
