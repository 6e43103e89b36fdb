"""Logging of the whole process through structlog: JSON lines in production, readable text
in development (`LOG_FORMAT` overrides), at `LOG_LEVEL`.

`configure_logging(settings)` routes the standard library's loggers (the app's
`logging.getLogger(__name__)`, uvicorn's, SQLAlchemy's ...) through structlog's
`ProcessorFormatter`, so every line has the same shape: `timestamp`, `level`, `logger`,
`event` and the line's own fields (`extra={...}`). Tracebacks are rendered as plain text,
never with local variables (they could hold secrets). A logged value never starts a line
nor emits a terminal escape sequence: JSON escapes control characters, and the text format
writes them as JSON does (`escape_control_characters`). uvicorn's own access log is off:
`app.http.middleware.RequestContextMiddleware` writes one access line per request instead.

The access line, written once per request, takes structlog's own path (`access_logger()`:
a level-filtering bound logger writing straight to stderr), not the standard library's
(two `LogRecord`s, a caller lookup and the `ProcessorFormatter` per line, about 50 µs on
the token route, a fifth of its time); it has the same shape as every other line. As JSON
it is serialized by orjson (`app.core.jsonbytes.compact_json`) and written as bytes (structlog's
`BytesLogger`): about half the time of the standard library's `json` and a text stream
(bench/README.md). JSON access lines are written in batches (`BatchedLines`): one system
call for the lines of up to `BATCH_SECONDS`, not one per request.

`app.main.create_app` configures logging (`configure_logging_once`), so that the app logs
the same whichever server runs it: `python -m app`, `uvicorn app.main:create_app
--factory`, gunicorn with uvicorn workers. A process whose root logger has handlers already
keeps its set-up, as `logging.basicConfig` does: there (an app driven in process by pytest,
whose log capture holds the root) the access line is structlog's default, readable text on
stdout.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO, cast

import structlog
from structlog.typing import EventDict

from app.core.jsonbytes import compact_json

if TYPE_CHECKING:
    from app.config.settings import Settings

#: The logger of the per-request access lines.
ACCESS_LOGGER = "app.access"
#: Seconds a JSON access line may be held before it is written out (`BatchedLines`).
BATCH_SECONDS = 0.05
#: Access lines held at most; one more writes them all out at once.
BATCH_LINES = 512


def configure_logging_once(settings: Settings) -> bool:
    """`configure_logging(settings)`, unless the root logger has handlers already, as
    `logging.basicConfig` decides: a process is so configured once, by its first app
    (`app.main.create_app`), or before it by `python -m app`; and a set-up made by whoever
    runs the app (a server's `--log-config` giving the root handlers, pytest's log capture)
    is kept. uvicorn's and gunicorn's default set-ups give only their own loggers handlers.
    Returns whether logging was configured now."""
    if logging.getLogger().handlers:
        return False
    configure_logging(settings)
    return True


def configure_logging(settings: Settings) -> None:
    """Send every standard-library log record to stderr as one structlog-rendered line, at
    `settings.log_level` (`debug`, `info`, `warning` ...), uvicorn's too (its loggers' own
    handlers and levels are dropped: they inherit the root's)."""
    json_lines = (settings.log_format or ("text" if settings.is_development else "json")) == "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    final: list[Any] = [structlog.processors.format_exc_info]
    if json_lines:
        renderer = structlog.processors.JSONRenderer()
    else:  # the traceback formatted as text first, so that it is escaped too
        final.append(escape_control_characters)
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final, renderer],
    )
    batched = BatchedLines(sys.stderr.buffer) if json_lines else None
    handler = LinesFirstHandler(sys.stderr, batched)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    # uvicorn's access log is off, with no handler on its way up: uvicorn, which asks
    # `hasHandlers()`, then does not even format its line (as with its `access_log=False`).
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers[:] = []
    uvicorn_access.propagate = False
    uvicorn_access.disabled = True
    # structlog's own loggers (the access line): the same fields, no standard-library
    # record in between; JSON as bytes from `compact_json`. They are not bound to context
    # variables: the access line carries its request id itself.
    access_renderer: Any = renderer
    logger_factory: Any = structlog.WriteLoggerFactory(sys.stderr)
    if batched is not None:
        access_renderer = structlog.processors.JSONRenderer(serializer=compact_json)
        # `BytesLogger` calls only `write` and `flush`, which `BatchedLines` has.
        logger_factory = structlog.BytesLoggerFactory(cast(BinaryIO, batched))
    structlog.configure(
        processors=[
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *final,
            access_renderer,
        ],
        logger_factory=logger_factory,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelName(settings.log_level.upper())
        ),
        cache_logger_on_first_use=True,
    )


def access_logger() -> Any:
    """The logger of the per-request access lines (`logger` = `app.access`, INFO), as
    structlog is configured when this is called (after `configure_logging`, in a process
    that calls it: the app builds its layers when it starts)."""
    return structlog.get_logger().bind(logger=ACCESS_LOGGER)


class BatchedLines:
    """The binary stream the JSON access lines are written to (structlog's `BytesLogger`
    calls `write(line)`, then `flush()`), writing them to `stream` in batches: held in
    memory, they are written out together, in one system call, `BATCH_SECONDS` after the
    first of them (timed on the running event loop; outside one, at once), as soon as
    `BATCH_LINES` are held, before any other log line (`LinesFirstHandler`), and at exit.

    Under load a write so carries a few hundred lines instead of one per request
    (bench/README.md). The price, as with nginx's `access_log ... buffer= flush=` or zap's
    `BufferedWriteSyncer`: lines appear up to `BATCH_SECONDS` late, and a process killed
    outright (SIGKILL) loses the lines of its last `BATCH_SECONDS` at most.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lines: list[bytes] = []
        self._lock = threading.Lock()
        #: The event loop a write-out is timed on, until it runs.
        self._timed_on: asyncio.AbstractEventLoop | None = None
        atexit.register(self.write_out)

    def write(self, line: bytes) -> None:
        """Hold `line` (bytes ending in a newline)."""
        with self._lock:
            self._lines.append(line)
            full = len(self._lines) >= BATCH_LINES
        if full:
            self.write_out()

    def flush(self) -> None:
        """Have the lines held written out within `BATCH_SECONDS` (at once outside an
        event loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.write_out()
            return
        if self._timed_on is not loop:  # (a loop closed before its timer ran is not)
            self._timed_on = loop
            loop.call_later(BATCH_SECONDS, self._on_time)

    def _on_time(self) -> None:
        self._timed_on = None
        self.write_out()

    def write_out(self) -> None:
        """Write every line held to the stream now, in the order they were written."""
        with self._lock:
            lines, self._lines = self._lines, []
        if lines:
            self._stream.write(b"".join(lines))
            self._stream.flush()


class LinesFirstHandler(logging.StreamHandler[TextIO]):
    """The standard library's stream handler, which first writes out the access lines
    `batched` holds (if any), so that the output keeps the order lines were logged in."""

    def __init__(self, stream: TextIO, batched: BatchedLines | None) -> None:
        super().__init__(stream)
        self._batched = batched

    def emit(self, record: logging.LogRecord) -> None:
        if self._batched is not None:
            self._batched.write_out()
        super().emit(record)


def _escapes(*kept: str) -> dict[int, str]:
    """`str.translate`'s table: each control character (C0, DEL, C1, and the Unicode line
    and paragraph separators) to its JSON escape (RFC 8259 §7: `\\n`, `\\u001b` ...),
    except those `kept`."""
    controls = [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]
    short = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    return {
        code: short.get(chr(code), f"\\u{code:04x}") for code in controls if chr(code) not in kept
    }


#: For a logged value: every control character escaped.
_VALUE_ESCAPES = _escapes()
#: For a traceback or a stack (`exception`, `stack`): its lines kept, the rest escaped.
_BLOCK_ESCAPES = _escapes("\n")
_BLOCKS = frozenset({"exception", "stack"})


def escape_control_characters(_logger: Any, _method: str, event: EventDict) -> EventDict:
    """structlog processor of the text format: every string of the line (the message, the
    logger name, each field) with its control characters written as JSON writes them, so
    that no value (a request path, a LiveKit message ...) starts a new line, returns the
    carriage or sends the terminal an escape sequence; a traceback keeps its lines. Other
    values are rendered with `repr`, which escapes them already."""
    for key, value in event.items():
        if isinstance(value, str) and not value.isprintable():
            event[key] = value.translate(_BLOCK_ESCAPES if key in _BLOCKS else _VALUE_ESCAPES)
    return event


def _drop_color_message(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """uvicorn passes a terminal-coloured copy of some messages as `color_message`."""
    event.pop("color_message", None)
    return event
