"""`envFile:` files: KEY=VALUE lines, read as regular files only.

Pure apart from reading the file. Every value read here is treated as secret by the rest of
podform (masked in plans, logs and the inventory), so messages name lines, never values.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

from reconciler.manifests.sources import read_regular_file
from reconciler.redact import register_secrets

MAX_BYTES = 1024 * 1024
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of one env file; ValueError names the path and line of a problem.

    `#` starts a comment line, blank lines are skipped, `export ` before a key is allowed and
    one pair of matching quotes around a value is removed (as compose does).
    """
    try:
        raw = read_regular_file(path, MAX_BYTES + 1)
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # a FIFO, device or directory: refused before reading
            raise ValueError(f"env file {path} is not a regular file") from None
        raise ValueError(f"env file {path}: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise ValueError(f"env file {path} is larger than 1 MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"env file {path} is not UTF-8") from None
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            raise ValueError(f"env file {path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key] = value
    register_secrets(out.values())  # every env file value is masked wherever it is echoed
    return out
