"""Logging of the whole process through structlog: JSON lines in production, readable text
in development (`LOG_FORMAT` overrides), at `LOG_LEVEL`.

`configure_logging(settings)` routes the standard library's loggers (the app's
`logging.getLogger(__name__)`, uvicorn's, SQLAlchemy's ...) through structlog's
`ProcessorFormatter`, so every line has the same shape: `timestamp`, `level`, `logger`,
`event` and the line's own fields (`extra={...}`). Tracebacks are rendered as plain text,
never with local variables (they could hold secrets). uvicorn's own access log is off:
`app.middleware.RequestContextMiddleware` writes one access line per request instead.

The access line, written once per request, takes structlog's own path (`access_logger()`:
a level-filtering bound logger writing straight to stderr), not the standard library's
(two `LogRecord`s, a caller lookup and the `ProcessorFormatter` per line, about 50 µs on
the token route, a fifth of its time); it has the same shape as every other line. As JSON
it is serialized by orjson (`app.jsonbytes.compact_json`) and written as bytes (structlog's
`BytesLogger`): about half the time of the standard library's `json` and a text stream
(bench/README.md). Until `configure_logging` runs (an app driven in process, as in tests),
it is structlog's default: readable text on stdout.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from app.jsonbytes import compact_json
from app.settings import Settings

#: The logger of the per-request access lines.
ACCESS_LOGGER = "app.access"


def configure_logging(settings: Settings) -> None:
    """Send every standard-library log record to stderr as one structlog-rendered line, at
    `settings.log_level` (`debug`, `info`, `warning` ...)."""
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
    if json_lines:
        final: list[Any] = [structlog.processors.format_exc_info]
        renderer = structlog.processors.JSONRenderer()
    else:
        final = []
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    # structlog's own loggers (the access line): the same fields, no standard-library
    # record in between; JSON as bytes from `compact_json`. They are not bound to context
    # variables: the access line carries its request id itself.
    access_renderer: Any = renderer
    logger_factory: Any = structlog.WriteLoggerFactory(sys.stderr)
    if json_lines:
        access_renderer = structlog.processors.JSONRenderer(serializer=compact_json)
        logger_factory = structlog.BytesLoggerFactory(sys.stderr.buffer)
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


def _drop_color_message(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """uvicorn passes a terminal-coloured copy of some messages as `color_message`."""
    event.pop("color_message", None)
    return event
