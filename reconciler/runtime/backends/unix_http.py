"""A minimal HTTP GET over a unix socket, for the read-only calls of a pass.

Why not podman-py here: importing it (with requests, urllib3, rich) costs about 100 ms,
the largest single share of a no-op apply, which only needs three GETs. Writes and most
streams still go through podman-py, imported when a pass has something to do. Builds send
their context here, streamed (post_stream), so memory does not grow with the context.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

SEND_BUFFER = 4 << 20  # socket send buffer for streamed uploads (build contexts)

# Podman accepts any version prefix; this one matches the API level podform is written for.
LIBPOD_PREFIX = "/v4.0.0/libpod"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def socket_path(url: str) -> str | None:
    """The filesystem path of a `unix://` / `http+unix://` URL, else None."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("unix", "http+unix"):
        return None
    # http+unix URLs may carry the path percent-encoded in the host part.
    return urllib.parse.unquote(parsed.netloc) + parsed.path if parsed.netloc else parsed.path


def get(path: str, resource: str, params: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """GET LIBPOD_PREFIX + resource on the socket at `path`; (status, body). OSError on failure."""
    query = urllib.parse.urlencode(params)
    conn = _UnixConnection(path, timeout)
    try:
        conn.request("GET", f"{LIBPOD_PREFIX}{resource}" + (f"?{query}" if query else ""))
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def post_stream(
    path: str,
    resource: str,
    params: dict[str, str],
    body: Iterable[bytes],
    content_type: str,
    timeout: float,
    on_sent: Callable[[int], None],
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """POST `body` piece by piece with chunked transfer encoding; the response is not read.

    Memory stays at one piece of `body`. on_sent(total) follows every piece. If the server
    answers early and closes (an error before it read the body), its answer is still
    returned. The caller reads the response and closes the connection. OSError on failure.
    """
    query = urllib.parse.urlencode(params)
    conn = _UnixConnection(path, timeout)
    try:
        conn.connect()
        # The default send buffer (~208 KiB) makes every 1 MiB piece wait on the server in
        # several rounds; 4 MiB (the usual wmem_max; the kernel caps what it grants) sent a
        # 1 GiB context in 0.75 s instead of 1.33 s here.
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        conn.putrequest("POST", f"{LIBPOD_PREFIX}{resource}" + (f"?{query}" if query else ""))
        conn.putheader("Content-Type", content_type)
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        sent = 0
        try:
            for piece in body:
                if not piece:
                    continue
                conn.send(b"%x\r\n" % len(piece))
                conn.send(piece)
                conn.send(b"\r\n")
                sent += len(piece)
                on_sent(sent)
            conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered without reading everything: its answer says why
        return conn, conn.getresponse()
    except BaseException:
        conn.close()
        raise


def error_message(status: int, body: bytes) -> str:
    try:
        data: Any = json.loads(body)
        msg = data.get("message") or data.get("cause") or body.decode(errors="replace")
    except (ValueError, AttributeError):
        msg = body.decode(errors="replace")
    return f"{str(msg).strip()} (HTTP {status})"
