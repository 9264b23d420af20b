"""Parsing of the manifest's small value languages: memory and disk quantities, durations.

Used by model.py and watch mode; pure, imports nothing from podform. The schema has already
checked the shapes; these functions turn them into numbers in podform's units.
"""

from __future__ import annotations

import re

_QUANTITY = re.compile(r"([0-9]+)(Mi|MiB|Gi|GiB)")
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h)")
_DURATION_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def mebibytes(value: int | str) -> int:
    """`12GiB` / `2048Mi` / 2048 -> MiB. Integers are already MiB."""
    if isinstance(value, int):
        return value
    m = _QUANTITY.fullmatch(value)
    if not m:
        raise ValueError(f"not a quantity: {value!r}")
    n, unit = int(m.group(1)), m.group(2)
    return n * 1024 if unit.startswith("G") else n


def gibibytes(value: int | str) -> int:
    """`100GiB` / 100 -> GiB (disk sizes are whole GiB)."""
    if isinstance(value, int):
        return value
    m = _QUANTITY.fullmatch(value)
    if not m or not m.group(2).startswith("G"):
        raise ValueError(f"not a whole-GiB size: {value!r}")
    return int(m.group(1))


def seconds(value: str | int | float) -> float:
    """`30s`, `500ms`, `2m`, `1m30s` -> seconds. Bare numbers are seconds."""
    if isinstance(value, int | float):
        return float(value)
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(value):
        if m.start() != pos:
            break
        total += int(m.group(1)) * _DURATION_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(value) or not value:
        raise ValueError(f"not a duration: {value!r}")
    return total


def format_seconds(value: float) -> str:
    """Inverse of seconds() for messages: 0.5 -> '500ms', 90 -> '90s'."""
    if value < 1:
        return f"{round(value * 1000)}ms"
    return f"{value:g}s"
