"""Podman's streamed answers: concatenated JSON objects (build, pull), the multiplexed exec
stream, and progress lines while a build context is uploaded. Used by podman_api.py.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

LineSink = Callable[[str], None]


def json_lines(resp: requests.Response) -> Iterator[dict[str, Any]]:
    return json_objects(resp.iter_content(chunk_size=None, decode_unicode=False))


def json_objects(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """Podman streams concatenated JSON objects, not always one per line."""
    decoder = json.JSONDecoder()
    buf = ""
    for chunk in chunks:
        buf += chunk.decode("utf-8", errors="replace")
        while True:
            buf = buf.lstrip()
            if not buf:
                break
            try:
                obj, end = decoder.raw_decode(buf)
            except json.JSONDecodeError:
                break
            buf = buf[end:]
            if isinstance(obj, dict):
                yield obj


class SentProgress:
    """ "sent N MiB of build context" lines: at most about one a second, and one at the end."""

    def __init__(self, on_line: LineSink, every_s: float = 1.0) -> None:
        self.on_line = on_line
        self.every_s = every_s
        self.total = 0
        self._last = time.monotonic()

    def sent(self, total: int) -> None:
        self.total = total
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self.on_line(f"sent {_mib(total)} of build context")

    def counting(self, pieces: Iterable[bytes]) -> Iterator[bytes]:
        total = 0
        for piece in pieces:
            yield piece
            total += len(piece)
            self.sent(total)

    def done(self) -> None:
        self.on_line(f"sent {_mib(self.total)} of build context, building")


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def demux(raw: bytes) -> str:
    """Docker's multiplexed stream: 8-byte headers (stream, 0, 0, 0, big-endian length)."""
    out, i = bytearray(), 0
    while i + 8 <= len(raw) and raw[i] in (0, 1, 2) and raw[i + 1 : i + 4] == b"\0\0\0":
        (size,) = struct.unpack(">I", raw[i + 4 : i + 8])
        out += raw[i + 8 : i + 8 + size]
        i += 8 + size
    if i == 0:
        return raw.decode("utf-8", errors="replace")
    return out.decode("utf-8", errors="replace")
