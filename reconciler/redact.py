"""Masking of secret-looking values before they reach any message, plan, log or state file.

Imports nothing from podform, so every layer (schema errors, plan rendering, logs, the
inventory) can share one definition of "looks secret". A key looks secret when its name,
case-insensitively, contains TOKEN, SECRET, PASSWORD, PASSWD, KEY, CREDENTIAL or APIKEY;
everything under such a key (and the whole `secrets` list, whose name matches) is masked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

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
