"""The JSON access lines are written in batches (`app.core.logs.BatchedLines`): together, within
`BATCH_SECONDS`, before any other log line, and at once outside an event loop."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import app.core.logs
from app.core.logs import BatchedLines, access_logger


def logged(stream: io.BytesIO) -> list[str]:
    """The `event` of each line written so far."""
    return [json.loads(line)["event"] for line in stream.getvalue().splitlines()]


async def test_lines_of_one_moment_are_written_together_within_the_batch_time(json_log_output):
    log = access_logger()
    for n in range(3):
        log.info(f"GET /x {n}")
    assert logged(json_log_output) == []  # held
    await asyncio.sleep(app.core.logs.BATCH_SECONDS * 3)
    assert logged(json_log_output) == ["GET /x 0", "GET /x 1", "GET /x 2"]
    assert json_log_output.writes == 1


async def test_another_log_line_writes_the_held_ones_out_first(json_log_output):
    access_logger().info("GET /x 200")
    assert logged(json_log_output) == []  # held
    logging.getLogger("app").warning("LiveKit is slow")
    assert logged(json_log_output) == ["GET /x 200", "LiveKit is slow"]


async def test_a_full_batch_is_written_out_at_once(json_log_output, monkeypatch):
    monkeypatch.setattr(app.core.logs, "BATCH_LINES", 4)
    log = access_logger()
    for n in range(5):
        log.info(f"GET /x {n}")
    assert logged(json_log_output) == [f"GET /x {n}" for n in range(4)]


def test_outside_an_event_loop_a_line_is_written_at_once(json_log_output):
    access_logger().info("GET /x 200")
    assert logged(json_log_output) == ["GET /x 200"]


async def test_a_loop_closed_before_its_write_out_does_not_stop_the_next_one():
    stream = io.BytesIO()
    batched = BatchedLines(stream)

    async def hold(line: bytes) -> None:
        batched.write(line)
        batched.flush()

    # a loop of its own, in a thread, closed as soon as the line is held: its timed
    # write-out never runs
    await asyncio.to_thread(asyncio.run, hold(b"first\n"))
    assert stream.getvalue() == b""
    await hold(b"second\n")
    await asyncio.sleep(app.core.logs.BATCH_SECONDS * 3)
    assert stream.getvalue() == b"first\nsecond\n"
