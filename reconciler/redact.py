"""Masking of secret-looking values before they reach any message, plan, log or state file.

Imports nothing from podform, so every layer (schema errors, plan rendering, logs, the
inventory) can share one definition of "looks secret". A key looks secret when its name,
case-insensitively, contains TOKEN, SECRET, PASSWORD, PASSWD, KEY, CREDENTIAL or APIKEY;
everything under such a key (and the whole `secrets` list, whose name matches) is masked.

Structured masking (`redact`) only helps where podform still knows the key. Text it does not
control (Podman's error messages, retried exceptions in logs, tracebacks in crash logs) can echo
a value anywhere, so there is also a process-wide registry of known secret values:
`register_secret()` records a value the moment it is read (the loader does it for every scalar
under a secret-looking key; envFile and Secret readers call it too), and `scrub()` replaces every
registered value in a text. The CLI passes everything it writes (stdout, stderr, logs, the crash
log) through `scrub()`: one masking pass at the edge of the process.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping, Sequence

MASK = "*****"

# APIKEY is covered by KEY; it stays listed so the rule reads as documented.
SECRET_KEY_RE = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL|APIKEY", re.IGNORECASE)


def is_secret_key(name: str) -> bool:
    """True when a mapping key's name suggests its value is a secret."""
    return SECRET_KEY_RE.search(name) is not None


def mask(value: object) -> str:
    """The fixed stand-in for a secret value; its length says nothing about the value's."""
    del value  # accepted so call sites read `mask(v)`, never shown
    return MASK


def is_secret_path(path: Sequence[str | int]) -> bool:
    """True when any key along `path` looks secret, so the value there must not be shown."""
    return any(isinstance(part, str) and is_secret_key(part) for part in path)


_URL_USERINFO_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")


def strip_url_credentials(text: str) -> str:
    """TEXT with the `user:password@` of every `scheme://user:password@host` URL removed."""
    return _URL_USERINFO_RE.sub(r"\g<scheme>", text)


def redact(value: object, secret: bool = False) -> object:
    """A copy of JSON-like `value` with every scalar under a secret-looking key masked.

    `secret=True` masks the whole value (for a value that itself sits under such a key).
    """
    if isinstance(value, dict):
        return {
            k: redact(v, secret or (isinstance(k, str) and is_secret_key(k)))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v, secret) for v in value]
    return mask(value) if secret else value


# --- the registry of known secret values ---------------------------------------------------------

# Shorter values (and these words) would mask ordinary text everywhere ("1", "true"); they are
# still masked wherever podform knows the key, only not hunted down in free text.
MIN_SECRET_LENGTH = 4
_NOT_SECRET_WORDS = frozenset({"true", "false", "null", "none", "yes", "no", "on", "off"})
MAX_REGISTERED = 10_000  # a long-running watch sees changing values; keep the scan bounded

_ESCAPED = re.compile(r"[\x00-\x1f\x7f-\x9f\"'\\]")

_lock = threading.RLock()  # re-entrant: a signal handler may print while scrub() holds it
_values: dict[str, None] = {}  # insertion-ordered set
_pattern: re.Pattern[str] | None = None


def register_secret(value: object) -> None:
    """Remember `value` (a secret's text) so that `scrub()` masks it wherever it appears."""
    global _pattern
    text = value if isinstance(value, str) else str(value)
    text = text.strip()
    if len(text) < MIN_SECRET_LENGTH or text.lower() in _NOT_SECRET_WORDS:
        return
    # As written, and as JSON and repr() (or Go's %q) escape it, also both in a row (an error
    # quoted by Podman inside a JSON log line); and the plain runs between characters that need
    # escaping, which survive whatever escaping another program applies.
    quoted = repr(text)[1:-1]
    forms = {text, quoted, json.dumps(text)[1:-1], json.dumps(quoted)[1:-1]}
    forms.update(r for r in _ESCAPED.split(text) if len(r) >= MIN_SECRET_LENGTH)
    with _lock:
        if text in _values:
            return
        _values.update(dict.fromkeys(forms))
        while len(_values) > MAX_REGISTERED:
            del _values[next(iter(_values))]
        _pattern = None


def register_secret_env(env: Mapping[str, object]) -> None:
    """Register the values of the secret-looking keys of an environment mapping."""
    for key, value in env.items():
        if is_secret_key(key) and value is not None:
            register_secret(value)


def register_secrets(values: Iterable[object]) -> None:
    """Register every value (envFile values, Secret contents: all of them are secret)."""
    for value in values:
        register_secret(value)


def scrub(text: str) -> str:
    """`text` with every registered secret value replaced by MASK."""
    global _pattern
    if not _values or not text:
        return text
    pattern = _pattern
    if pattern is None:
        with _lock:
            # Longest first, so a value that contains another is masked whole.
            ordered = sorted(_values, key=len, reverse=True)
            pattern = _pattern = re.compile("|".join(re.escape(v) for v in ordered))
    return pattern.sub(MASK, text)


def forget_secrets() -> None:
    """Empty the registry (tests; a fresh process starts empty anyway)."""
    global _pattern
    with _lock:
        _values.clear()
        _pattern = None
