"""A logged value never starts a line nor emits a terminal escape sequence: the text format
(development) writes control characters as the JSON format does, in the message, the fields,
the access line and an exception's message; a traceback keeps its own lines."""

from __future__ import annotations

import json
import logging

from app.core.logs import access_logger

#: A value as a caller may make one (a request path is percent-decoded): a new line, a
#: carriage return, ANSI escape sequences (colour, clear screen), a one-byte CSI, U+2028.
HOSTILE = "/a\nFORGED 2026-01-01 [info] x\r\x1b[31m\x1b[2J\x9b1m\u2028end"


def lines(stream) -> list[str]:
    return stream.getvalue().decode().splitlines()


def assert_escaped(text: str) -> None:
    for raw in ("\r", "\x1b", "\x9b", "\u2028"):
        assert raw not in text, repr(raw)
    assert "\\n" in text and "\\r" in text and "\\u001b[31m" in text and "\\u009b" in text


def test_text_lines_escape_control_characters_in_the_message_and_fields(text_log_output):
    logging.getLogger("app.test").warning(
        "LiveKit said %s", HOSTILE, extra={"path": HOSTILE, "plain": "a\x1bb"}
    )
    access_logger().info(f"GET {HOSTILE} 404", route=HOSTILE)
    written = lines(text_log_output)
    assert len(written) == 2, written  # one line each
    assert "LiveKit said /a\\nFORGED" in written[0] and "plain=a\\u001bb" in written[0]
    assert "GET /a\\nFORGED" in written[1] and "[app.access]" in written[1]
    assert not any(line.startswith("FORGED") for line in written)
    assert_escaped(text_log_output.getvalue().decode())


def test_a_traceback_keeps_its_lines_and_escapes_the_rest(text_log_output):
    try:
        raise ValueError(f"refused {HOSTILE}")
    except ValueError:
        logging.getLogger("app.test").exception("failed on %s", HOSTILE)
    written = lines(text_log_output)
    assert "failed on /a\\nFORGED" in written[0]
    assert written[1] == "Traceback (most recent call last):"
    assert any(line.startswith("ValueError: refused /a") for line in written)
    assert "\x1b" not in text_log_output.getvalue().decode()


def test_json_lines_carry_the_same_value_escaped(json_log_output):
    logging.getLogger("app.test").warning("LiveKit said %s", HOSTILE, extra={"path": HOSTILE})
    [line] = lines(json_log_output)
    assert json.loads(line)["path"] == HOSTILE  # JSON escapes; the value is intact
    assert json.loads(line)["event"] == f"LiveKit said {HOSTILE}"
