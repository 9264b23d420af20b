"""Compose value syntaxes turned into podform's: sizes, durations, ports, names, image references.

Pure functions used by compose_map.py; each raises ValueError with a message for the user when a
value has no podform form (the mapper turns that into a warning naming service and key).
"""

from __future__ import annotations

import re
from typing import Any

MIB = 1024 * 1024
GIB = 1024 * MIB
_SIZE_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(i?b?)", re.IGNORECASE)
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_POWER = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}
_NAME_DROP = re.compile(r"[^a-z0-9-]+")


def podform_name(raw: str) -> str:
    """A compose name (letters, digits, `._-`) as a podform name: lowercase, `-` for the rest."""
    name = _NAME_DROP.sub("-", raw.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)[:63].rstrip("-")
    if not name:
        raise ValueError(f"{raw!r} has no letters or digits to make a podform name of")
    return name


def size_bytes(value: Any) -> int:
    """A compose size (bytes as an int, or `512m`, `8g`, `1.5gb`, `64MiB`) in bytes."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        return value
    m = _SIZE_RE.fullmatch(str(value).strip())
    if not m:
        raise ValueError(f"{value!r} is not a size such as 512m or 8g")
    return int(float(m.group(1)) * 1024 ** _POWER[m.group(2).lower()])


def podform_size(value: Any) -> tuple[str | int, bool]:
    """A compose size as podform writes memory (`8GiB`, `512MiB`); True when it was rounded up."""
    n = size_bytes(value)
    if n <= 0:
        raise ValueError(f"{value!r} is not a positive size")
    if n % GIB == 0:
        return f"{n // GIB}GiB", False
    mib = -(-n // MIB)
    return f"{mib}MiB", n % MIB != 0


def duration(value: Any) -> str:
    """A compose duration (`1m30s`, `1.5s`, `500ms`, or seconds as a number) as podform's."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        ms = float(value) * 1000
    else:
        text = str(value).strip()
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(a + b for a, b in parts) != text:
            raise ValueError(f"{value!r} is not a duration such as 30s or 1m30s")
        ms = sum(float(n) * _UNIT_MS[unit] for n, unit in parts)
    total = round(ms)
    if total % 1000:
        return f"{total}ms"
    seconds = total // 1000
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def image_ref(raw: str) -> str:
    """A compose `image:`; a bare name gets `:latest` so podform reads it as a reference."""
    return raw if any(c in raw for c in "/:@") else f"{raw}:latest"


def _port_range(text: str) -> list[int]:
    first, sep, last = text.partition("-")
    if not first.isdigit() or (sep and not last.isdigit()):
        raise ValueError(f"{text!r} is not a port or port range")
    lo, hi = int(first), int(last) if sep else int(first)
    if not 0 < lo <= hi <= 65535:
        raise ValueError(f"{text!r} is not a port or port range")
    return list(range(lo, hi + 1))


def _split_short_port(text: str) -> tuple[str, str, str, str]:
    """(host_ip, published, target, protocol) of `[ip:][host:]container[/proto]`."""
    body, _, protocol = text.partition("/")
    ip = ""
    if body.startswith("["):
        close = body.find("]")
        ip, body = body[1:close], body[close + 2 :]
    parts = body.split(":")
    if len(parts) == 1:
        return ip, "", parts[0], protocol or "tcp"
    if len(parts) == 2:
        return ip, parts[0], parts[1], protocol or "tcp"
    if len(parts) == 3 and not ip:
        return parts[0], parts[1], parts[2], protocol or "tcp"
    raise ValueError(f"{text!r} is not a port mapping [ip:][host:]container[/protocol]")


def ports(value: Any) -> list[str]:
    """One compose `ports` entry (short or long syntax) as podform port strings; ranges expand."""
    if isinstance(value, dict):
        if "target" not in value:
            raise ValueError(f"{value!r}: a long-syntax port needs a target")
        ip = str(value.get("host_ip") or "")
        published = str(value.get("published") or "")
        target = str(value["target"])
        protocol = str(value.get("protocol") or "tcp")
    else:
        ip, published, target, protocol = _split_short_port(str(value))
    if protocol not in ("tcp", "udp"):
        raise ValueError(f"protocol {protocol!r} is not tcp or udp")
    targets = _port_range(target)
    hosts: list[int | None] = [None] * len(targets)
    if published:
        hosts = list(_port_range(published))
        if len(hosts) != len(targets):
            raise ValueError(f"{value!r}: host and container ranges differ in length")
    prefix = f"[{ip}]:" if ":" in ip else f"{ip}:" if ip else ""
    suffix = "" if protocol == "tcp" else f"/{protocol}"
    out = []
    for host, cont in zip(hosts, targets, strict=True):
        if host is None:
            out.append(f"{prefix}:{cont}{suffix}" if prefix else f"{cont}{suffix}")
        else:
            out.append(f"{prefix}{host}:{cont}{suffix}")
    return out
