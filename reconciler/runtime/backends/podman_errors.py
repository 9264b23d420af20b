"""What Podman's API errors mean to podform: retry (TemporaryError), not found, or final.

Shared by every call of backends/podman_api.py, whichever transport carried it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from reconciler.errors import PermanentError, TemporaryError

if TYPE_CHECKING:
    import requests


# Podman answers 500 for requests that can never work, too: a bind source or device that is
# not there ("statfs /srv/models: no such file or directory"), a host port another process holds,
# a command that is not in the image. Retrying those only delays the error by seconds.
PERMANENT_500 = (
    "no such file or directory",
    "address already in use",
    "executable file not found",
)


def raise_for_status(status: int, message: str) -> NoReturn:
    """5xx and 409-while-stopping may pass on retry, unless the 5xx says it cannot
    (PERMANENT_500); 404 is its own kind; the rest is final."""
    lowered = message.lower()
    transient_5xx = status >= 500 and not any(p in lowered for p in PERMANENT_500)
    if transient_5xx or (status == 409 and "stopping" in lowered):
        raise TemporaryError(f"Podman: {message}")
    if status == 404:
        raise NotFoundError(f"Podman: {message}")
    raise PermanentError(f"Podman: {message}")


class NotFoundError(PermanentError):
    """The object does not exist (404)."""


class BuildFailed(PermanentError):
    """The Containerfile failed to build; retrying will not help."""


def error_message(resp: requests.Response) -> str:
    try:
        data = resp.json()
        msg = data.get("message") or data.get("cause") or resp.text
    except ValueError:
        msg = resp.text
    return f"{str(msg).strip()} (HTTP {resp.status_code})"


def root_cause(exc: BaseException) -> str:
    """The innermost cause's text ("No such file or directory"), not urllib3's wrapping.

    Exception chains can be cyclic (__context__ pointing back), so the walk remembers what
    it has seen; an unbounded walk here once spun forever on an unreachable socket.
    """
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            break
        exc = nxt
    text = str(exc)
    return text.split("] ")[-1] if "] " in text else text
