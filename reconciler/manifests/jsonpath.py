"""Where in a document: the path type and its one printed form, shared by every check.

`$.spec.devices[0]`; keys that are not identifiers are quoted: `$.metadata.labels['a/b']`.
The loader records positions by these paths; schema, policy and model report with them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

JsonPath = tuple[str | int, ...]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def format_json_path(path: Iterable[str | int]) -> str:
    """The printed form of `path`: `$`, then `.key`, `[index]` or `['odd key']` per step."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            out += f".{part}"
        else:
            out += f"[{part!r}]"
    return out
