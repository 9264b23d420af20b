"""structlog set-up, done once by the CLI: console rendering on a TTY, JSON lines otherwise.

Logs go to stderr; stdout is kept for the command's own output (plans, reports, JSON).
Imported lazily so `podform --version` never pays for structlog.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

from reconciler.redact import is_secret_key, mask


def _redact_secret_keys(
    _: Any, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Last line of defence: a log field whose key looks secret never shows its value."""
    for key in list(event):
        if key != "event" and is_secret_key(key):
            event[key] = mask(event[key])
    return event


_quiet: _QuietLogger | None = None


class _QuietLogger:
    """Warnings and errors only, rendered like structlog would, without importing it.

    One-shot commands at the default verbosity log almost nothing, and structlog's import
    (with its dev renderers) is a large share of a no-op apply's start-up.
    """

    def __init__(self, fmt: str, min_level: int) -> None:
        self.fmt = fmt
        self.min_level = min_level

    def _emit(self, level: int, name: str, event: str, fields: dict[str, Any]) -> None:
        if level < self.min_level:
            return
        fields = dict(_redact_secret_keys(None, name, dict(fields)))
        if self.fmt == "json":
            import json
            from datetime import UTC, datetime

            record = {
                "event": event,
                "level": name,
                **fields,
                "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            }
            line = json.dumps(record, sort_keys=True, default=str)
        else:
            line = " ".join([f"[{name:<7}] {event}", *(f"{k}={v}" for k, v in fields.items())])
        print(line, file=sys.stderr)

    def debug(self, event: str, **kw: Any) -> None:
        self._emit(logging.DEBUG, "debug", event, kw)

    def info(self, event: str, **kw: Any) -> None:
        self._emit(logging.INFO, "info", event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._emit(logging.WARNING, "warning", event, kw)

    def error(self, event: str, **kw: Any) -> None:
        self._emit(logging.ERROR, "error", event, kw)


def configure(fmt: str | None = None, verbosity: int = 0) -> None:
    """fmt: "console" | "json" | None (console on a TTY, else JSON).

    verbosity: -1 (-q) errors only, 0 warnings, 1 (-v) progress events, 2+ (-vv) debug.
    Commands print their own report on stdout, so their logs stay quiet unless asked;
    watch, a service, starts at 1.
    """
    global _quiet
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    if fmt is None:
        fmt = "console" if sys.stderr.isatty() else "json"
    # urllib3/requests debug logging would print request bodies (env values included).
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    if level >= logging.WARNING:
        _quiet = _QuietLogger(fmt, level)
        return
    _quiet = None
    import structlog

    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=True)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty() and _color_ok())
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_secret_keys,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def _color_ok() -> bool:
    import os

    return "NO_COLOR" not in os.environ


def get(name: str = "podform") -> Any:
    if _quiet is not None:
        return _quiet
    import structlog

    return structlog.get_logger(name)
