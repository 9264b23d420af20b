"""Secret values: read from a file or podform's environment at apply time, and their keyed HMAC.

Beside the executor. A value lives only in memory, between reading it here and handing it to
Podman's secret API; what is kept (the inventory) and shown (plans) is an HMAC-SHA256 under a
random per-stack key stored in the 0600 inventory, so "changed" can be decided without the
value, and a leaked plan or label cannot be brute-forced offline without that key.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from reconciler.errors import PodformError
from reconciler.manifests.model import Desired
from reconciler.manifests.sources import read_regular_file
from reconciler.redact import register_secret

MAX_BYTES = 512_000 - 1  # Podman's limit for secret data


class SecretUnavailable(PodformError):
    """A declared Secret's value cannot be read (missing env var, unreadable file)."""


def new_key() -> str:
    return secrets.token_hex(32)


def read_value(file: str | None, env: str | None) -> bytes:
    """The secret's bytes (registered for masking); failures name the source, never a value."""
    value = _read_value(file, env)
    register_secret(value.decode("utf-8", errors="replace"))  # masked wherever it is echoed
    return value


def _read_value(file: str | None, env: str | None) -> bytes:
    if env is not None:
        value = os.environ.get(env)
        if value is None or value == "":
            raise SecretUnavailable(f"environment variable {env} is not set (a Secret reads it)")
        return value.encode()
    assert file is not None
    path = Path(file)
    try:
        data = read_regular_file(path, MAX_BYTES + 1)
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # a FIFO, device or directory: refused before reading
            raise SecretUnavailable(f"secret file {path} is not a regular file") from None
        raise SecretUnavailable(f"secret file {path}: {exc.strerror}") from None
    if not data or len(data) > MAX_BYTES:
        raise SecretUnavailable(f"secret file {path} must hold 1 to {MAX_BYTES} bytes")
    return data


def digest(key: str, value: bytes) -> str:
    return hmac.new(bytes.fromhex(key), value, hashlib.sha256).hexdigest()


def secret_digests(desired: Desired, key: str) -> dict[str, str]:
    """Secret name -> keyed HMAC of its current value; SecretUnavailable lists every failure."""
    out: dict[str, str] = {}
    problems: list[str] = []
    for s in sorted(desired.secrets.values(), key=lambda s: s.name):
        try:
            value = read_value(str(s.file) if s.file else None, s.env)
        except SecretUnavailable as exc:
            problems.append(f'Secret "{s.name}": {exc}')
            continue
        out[s.name] = digest(key, value)
    if problems:
        raise SecretUnavailable("; ".join(problems))
    return out
