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


def configure(fmt: str | None = None, verbosity: int = 0) -> None:
    """fmt: "console" | "json" | None (console on a TTY, else JSON).

    verbosity: -1 (-q) errors only, 0 warnings, 1 (-v) progress events, 2+ (-vv) debug.
    Commands print their own report on stdout, so their logs stay quiet unless asked;
    watch, a service, starts at 1.
    """
    import structlog

    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    if fmt is None:
        fmt = "console" if sys.stderr.isatty() else "json"
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
    # urllib3/requests debug logging would print request bodies (env values included).
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def _color_ok() -> bool:
    import os

    return "NO_COLOR" not in os.environ


def get(name: str = "podform") -> Any:
    import structlog

    return structlog.get_logger(name)
