"""`python -m bench.instructions [N]`: instructions per `POST /v1/token`, the service beside
the same-stack ceiling, counted by valgrind's callgrind (Debian's `valgrind` package).

Timings on a shared virtual machine move by a third from one minute to the next; the
number of instructions a request executes does not (two runs agree within 0.5%). Each app
is driven in process (as `bench/profile_token.py` drives it, the access line at INFO to
/dev/null) in its own `valgrind --tool=callgrind --instr-atstart=no` process, which
switches counting on (`callgrind_control -i on`) only around N requests after a warm-up.
Work outside the interpreter's thread (the kernel's side of a write, a thread's wait for
the GIL, an idle event loop) is not counted: a served run can differ where a request
waits rather than computes (`python -m bench` measures that).

Prints one line per app: instructions per request, and the service's ratio to the ceiling.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.profile_token import drive, settings

WARM_UP = 300


def count(target: str, requests: int) -> int:
    """Instructions per request of `target` (`service` or `ceiling`), from callgrind's total
    over `requests` requests."""
    valgrind = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--callgrind-out-file=/dev/null",
    ]
    inner = [sys.executable, "-m", "bench.instructions", "--inside", target, str(requests)]
    run = subprocess.run([*valgrind, *inner], capture_output=True, text=True, check=True)
    collected = next(line for line in run.stderr.splitlines() if "Collected :" in line)
    return int(collected.split(":")[-1].strip()) // requests


async def inside(target: str, requests: int) -> None:
    """Under valgrind: warm up, then count `requests` requests of `target`."""
    from app.core.logs import configure_logging
    from app.main import create_app
    from bench import ceiling

    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        served = settings(Path(tmp))
        configure_logging(served)
        app = create_app(served)
        async with app.router.lifespan_context(app):
            asgi: Any = ceiling.app if target == "ceiling" else app
            await drive(asgi, WARM_UP)
            callgrind("on")
            await drive(asgi, requests)
            callgrind("off")


def callgrind(state: str) -> None:
    subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=True)


def main() -> None:
    if sys.argv[1:2] == ["--inside"]:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
            asyncio.run(inside(sys.argv[2], int(sys.argv[3])))
        return
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    service, ceiling = count("service", requests), count("ceiling", requests)
    print(f"POST /v1/token, instructions per request ({requests} requests, in process)")
    print("| app | instructions | vs ceiling |\n| --- | --- | --- |")
    print(f"| this service | {service:,} | {service / ceiling:.2f} |")
    print(f"| FastAPI constant reply (ceiling) | {ceiling:,} | 1.00 |")


if __name__ == "__main__":
    main()
