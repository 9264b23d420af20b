"""YAML 1.2 core scalar typing, as the strict loader applies it.

Beside loader.py (which walks the event stream): the rules that decide whether a plain
scalar is null, a bool, an int, a float or a string, and what an explicit core tag accepts.
YAML 1.1 traps (`no`, `on`, `0755`, `22:22`, dates) never become booleans, octals or dates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Final

CORE = "tag:yaml.org,2002:"
_NOT_THIS_TYPE: Final = object()  # an explicitly tagged scalar that does not fit its tag

# YAML 1.2 core schema, https://yaml.org/spec/1.2.2/#1032-tag-resolution
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_DECIMAL = re.compile(r"[-+]?[0-9]+")
_OCTAL = re.compile(r"0o[0-7]+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF_NAN = re.compile(r"[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")
# YAML 1.1 reads 0755 as octal 493, YAML 1.2 as decimal 755: whichever we picked, someone's file
# mode or version string would silently change.
_LEADING_ZERO = re.compile(r"[-+]?0[0-9]+")
_NUMBER_START = frozenset("0123456789+-.")


class ScalarError(ValueError):
    """A scalar that cannot be given a type; the message is for the user."""


def _number(text: str) -> int | float | None:
    """The YAML 1.2 core int or float `text` denotes, else None (it is a string)."""
    if _LEADING_ZERO.fullmatch(text):
        digits = text.lstrip("+-")
        sign = text[: len(text) - len(digits)]
        plain = digits.lstrip("0") or "0"
        hint = f"0o{plain}" if not sign and set(digits) <= set("01234567") else sign + plain
        raise ScalarError(f'ambiguous number {text}: quote it ("{text}") or write {hint}')
    try:
        if _DECIMAL.fullmatch(text):
            return int(text)
        if _OCTAL.fullmatch(text):
            return int(text[2:], 8)
        if _HEX.fullmatch(text):
            return int(text[2:], 16)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        raise ScalarError(f"number {text[:20]}... has too many digits") from None
    if _INF_NAN.fullmatch(text):
        raise ScalarError(f"{text} is not allowed: infinity and NaN are not JSON numbers")
    if _FLOAT.fullmatch(text):
        value = float(text)
        if not math.isfinite(value):
            raise ScalarError(f"number {text} is out of range")
        return value
    return None


def resolve_plain(text: str) -> Any:
    """An untagged plain scalar: null, bool, int or float by the YAML 1.2 core rules, else str."""
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if text[0] not in _NUMBER_START:  # most values are words: skip the number patterns
        return text
    number = _number(text)
    return text if number is None else number


def _tagged(name: str, convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def resolve(text: str) -> Any:
        value = convert(text)
        if value is _NOT_THIS_TYPE:
            raise ScalarError(f"'{text}' is not a valid !!{name}")
        return value

    return resolve


def _as_int(text: str) -> Any:
    number = _number(text)
    return number if isinstance(number, int) else _NOT_THIS_TYPE


def _as_float(text: str) -> Any:
    number = _number(text)
    return _NOT_THIS_TYPE if number is None else float(number)


SCALAR_TAGS: dict[str, Callable[[str], Any]] = {
    CORE + "str": str,
    CORE + "null": _tagged("null", lambda t: None if t in _NULLS else _NOT_THIS_TYPE),
    CORE + "bool": _tagged("bool", lambda t: _BOOLS.get(t, _NOT_THIS_TYPE)),
    CORE + "int": _tagged("int", _as_int),
    CORE + "float": _tagged("float", _as_float),
}


def short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(CORE) if tag.startswith(CORE) else tag
