"""Log output: every stdlib logger (vectorql's, uvicorn's, the libraries') through one handler on
the root logger, as JSON lines or, on a terminal, a readable console format.

Every line written inside a request carries its ``trace_id`` and ``span_id`` (from the current
OpenTelemetry span), so a line leads to its trace and a trace to its lines. Lines are JSON objects
with ``timestamp``, ``level``, ``logger``, ``event`` (the message), the fields a caller passed as
``extra`` (the request line: ``operation``, ``outcome``, ``caller``, ``tenant``, ``duration_ms``,
...), and ``exception`` (the traceback) for errors.

Called by the CLI and the uvicorn app factory, never at import time: logging is process-wide.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal, TextIO

import orjson
import structlog
from opentelemetry import trace

HANDLER_NAME = "vectorql"

Format = Literal["auto", "json", "console"]


def configure_logging(
    *, level: str = "INFO", fmt: Format = "auto", stream: TextIO | None = None
) -> logging.Handler:
    """Install the handler on the root logger, replacing one a previous call installed."""
    handler = log_handler(fmt=fmt, stream=stream)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def log_handler(*, fmt: Format = "auto", stream: TextIO | None = None) -> logging.Handler:
    """A handler writing to ``stream`` (stderr) in ``fmt``; ``auto``: console on a terminal."""
    stream = stream if stream is not None else sys.stderr
    console = fmt == "console" or (fmt == "auto" and _is_terminal(stream))
    handler = logging.StreamHandler(stream)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(formatter(console=console, colors=console and _is_terminal(stream)))
    return handler


def formatter(*, console: bool, colors: bool = False) -> logging.Formatter:
    pre_chain: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        add_trace_context,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if console:
        renderer = structlog.dev.ConsoleRenderer(colors=colors)
        processors = [structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_json)
        processors = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _drop_color_message,
            structlog.processors.format_exc_info,
            renderer,
        ]
    return structlog.stdlib.ProcessorFormatter(foreign_pre_chain=pre_chain, processors=processors)


def add_trace_context(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """``trace_id`` and ``span_id`` of the span current where the line was logged."""
    if "trace_id" not in event:
        event.update(span_ids(trace.get_current_span()))
    return event


def span_ids(span: trace.Span) -> dict[str, str]:
    """``{"trace_id": ..., "span_id": ...}`` in W3C hex, or nothing for an invalid span."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


def _drop_color_message(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    event.pop("color_message", None)  # uvicorn's ANSI-coloured copy of the message
    return event


def _json(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
