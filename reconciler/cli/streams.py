"""The edge of the process: stdout and stderr pass every write through `redact.scrub`.

Podform masks secrets where it knows the key (plans, inventory, log fields), but text it does not
write itself (Podman's error messages, exceptions retried and logged, tracebacks) can echo a
secret value anywhere. Wrapping the two streams once, before anything prints or a logger binds
to them, is the one masking pass every string leaving the process goes through.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TextIO

from reconciler.redact import scrub


class MaskingStream(io.TextIOBase):
    """A text stream that writes `scrub(text)` to the stream it wraps."""

    def __init__(self, inner: TextIO) -> None:
        super().__init__()
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(scrub(text))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.inner, "encoding", "utf-8") or "utf-8"


@contextmanager
def masked_output() -> Iterator[None]:
    """sys.stdout and sys.stderr masked for the duration (restored after, for in-process tests)."""
    saved = sys.stdout, sys.stderr
    sys.stdout = MaskingStream(saved[0])
    sys.stderr = MaskingStream(saved[1])
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with suppress(OSError, ValueError):
                stream.flush()
        sys.stdout, sys.stderr = saved
