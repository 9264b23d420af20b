"""SIGINT/SIGTERM for the commands that change things: the first asks the running pass to
finish what it started and stop; a second Ctrl-C exits at once (130).

One mechanism for apply and delete (which also print a notice and let a second SIGTERM exit)
and for watch and sync (whose SIGTERM from systemd only ever asks them to stop).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

EXIT_INTERRUPTED = 130


class StopOnSignals:
    """While entered, SIGINT and SIGTERM set `event`; a repeat of one of AGAIN exits now.

    The handler only sets the Event (and prints NOTICE): it must not take locks the
    interrupted code may hold.
    """

    def __init__(self, notice: str = "", again: tuple[int, ...] = (signal.SIGINT,)) -> None:
        self.event = threading.Event()
        self.notice = notice
        self.again = again

    def __enter__(self) -> StopOnSignals:
        self._old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in self._old:
            signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.event.is_set() and signum in self.again:
            os._exit(EXIT_INTERRUPTED)  # the user does not want to wait
        self.event.set()
        if self.notice:
            print(self.notice, file=sys.stderr)

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
