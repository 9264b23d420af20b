"""Which Podman API podform talks to: the default URL and the schemes it accepts (no ssh://).

Backend layer, beside podman_api.py, which checks every URL here before connecting.
"""

from __future__ import annotations

from reconciler.errors import PermanentError
from reconciler.runtime.backends import unix_http


def default_url() -> str:
    """CONTAINER_HOST, else the rootful socket when we are root, else the user's socket."""
    import os

    if os.environ.get("CONTAINER_HOST"):
        return os.environ["CONTAINER_HOST"]
    if os.geteuid() == 0:
        return "unix:///run/podman/podman.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}")
    return f"unix://{runtime}/podman/podman.sock"


SSH_REFUSED = (
    "ssh:// URLs are not supported: podform sends container specs, env values included, and"
    " will not do so over an ssh connection whose host key it does not verify. Forward the"
    " remote socket with ssh yourself (it checks ~/.ssh/known_hosts), e.g."
    " `ssh -N -L /tmp/podman-remote.sock:/run/podman/podman.sock user@host &`, then use"
    " --url unix:///tmp/podman-remote.sock"
)
_SCHEMES = ("unix", "http+unix", "tcp", "http")


def check_url(url: str) -> str:
    """`url` when podform can talk to it; PermanentError with a one-line reason otherwise."""
    import urllib.parse

    expected = "expected unix:///path/to/podman.sock, tcp://HOST:PORT or http://HOST:PORT"
    try:
        parsed = urllib.parse.urlparse(url)
        port = parsed.port  # parses (and range-checks) the port; ValueError when invalid
    except ValueError as exc:
        raise PermanentError(f"invalid Podman URL {url!r}: {exc}; {expected}") from None
    scheme = parsed.scheme.lower()
    if scheme in ("ssh", "http+ssh"):
        raise PermanentError(SSH_REFUSED)
    if scheme not in _SCHEMES:
        raise PermanentError(f"invalid Podman URL {url!r}: {expected}")
    if scheme in ("unix", "http+unix"):
        if not unix_http.socket_path(url):
            raise PermanentError(f"invalid Podman URL {url!r}: no socket path; {expected}")
    elif not parsed.hostname or (port is None and scheme == "tcp"):
        raise PermanentError(f"invalid Podman URL {url!r}: no host or port; {expected}")
    return url
