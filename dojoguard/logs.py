"""Application logs with structlog: JSON lines for a SIEM, readable lines on a terminal.

These logs are separate from the audit trail and, like it, hold no content:
a processor replaces any content-bearing key (text, body, message, image,
template, name, ...) with "[withheld]" before anything is rendered, so a
careless ``log.info("sent", text=...)`` cannot leak a message.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

import structlog

from dojoguard.audit.privacy import strip_content

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
FORMATS = ("auto", "json", "console")
# The level configured last; structlog's own default (before configure_logging) shows everything.
_level = logging.DEBUG


def enabled(level: str) -> bool:
    """Whether lines at ``level`` are shown: lets a hot path skip building a line that would be dropped."""
    return LEVELS[level] >= _level


def withhold_content(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: content-bearing keys never reach a renderer."""
    return strip_content(event_dict)


def configure_logging(level: str = "info", fmt: str = "auto", *, stream: IO[str] | None = None) -> None:
    """Set up structlog for the whole process: ``fmt`` is auto (console on a terminal), json or console."""
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; use one of {', '.join(FORMATS)}")
    global _level
    stream = stream or sys.stdout
    if fmt == "auto":
        fmt = "console" if _is_terminal(stream) else "json"
    renderer = (structlog.processors.JSONRenderer(sort_keys=True) if fmt == "json"
                else structlog.dev.ConsoleRenderer(colors=_is_terminal(stream)))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            withhold_content,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    _level = LEVELS[level]


def reset_logging() -> None:
    """Back to structlog's defaults, as before ``configure_logging`` (for tests and embedding)."""
    global _level
    structlog.reset_defaults()
    _level = logging.DEBUG


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
