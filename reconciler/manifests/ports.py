"""Published ports: the one parser for `C`, `H:C`, `IP:H:C`, `IP::C`, `[IPv6]:H:C` and `/proto`.

Pure. The model uses it to reject what Podman would reject (with the field's location) and to
find fixed host ports that replicas would fight over; the Podman adapter uses the same parse
to build the port mappings it sends, so what validates is exactly what is sent.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_PORT = r"[0-9]{1,5}"
_FORM = re.compile(
    rf"(?:(?P<ip>\[[0-9A-Fa-f:.]+\]|[0-9]{{1,3}}(?:\.[0-9]{{1,3}}){{3}}):)?"
    rf"(?:(?P<host>{_PORT})?:)?(?P<container>{_PORT})(?:/(?P<proto>tcp|udp))?"
)


@dataclass(frozen=True)
class PortMapping:
    container_port: int
    host_port: int | None  # None: Podman picks a free port
    host_ip: str  # "" = every address; IPv6 without brackets
    protocol: str  # tcp | udp


def parse_port(text: str) -> PortMapping:
    """One port entry as written in a manifest; ValueError says what is wrong and how to fix it."""
    m = _FORM.fullmatch(text)
    if m is None:
        raise ValueError(
            f"{text!r} is not a port mapping: use C, H:C, IP:H:C, IP::C or [IPv6]:H:C, "
            "optionally with /tcp or /udp"
        )
    ip, host = m.group("ip"), m.group("host")
    # `127.0.0.1:8080` parses as IP + container port with no host-port part at all: a host
    # IP needs the host-port field, even empty (IP::C), or the meaning is ambiguous.
    if ip is not None and f"{ip}:{host or ''}:" not in text:
        raise ValueError(
            f"{text!r} is ambiguous: write {ip}:{m.group('container')}:{m.group('container')} "
            f"to publish on that host port, or {ip}::{m.group('container')} for any free port"
        )
    container = int(m.group("container"))
    if not 1 <= container <= 65535:
        raise ValueError(f"{text!r}: container port {container} is not within 1-65535")
    host_port = int(host) if host is not None else None
    if host_port is not None and not 1 <= host_port <= 65535:
        raise ValueError(f"{text!r}: host port {host_port} is not within 1-65535")
    host_ip = ""
    if ip is not None:
        bare = ip.strip("[]")
        try:
            address = ipaddress.ip_address(bare)
        except ValueError:
            raise ValueError(f"{text!r}: {bare} is not an IP address") from None
        if ip.startswith("[") != (address.version == 6):
            raise ValueError(f"{text!r}: write IPv6 addresses in brackets, IPv4 without")
        host_ip = str(address)
    return PortMapping(container, host_port, host_ip, m.group("proto") or "tcp")


def host_port_clashes(
    published: list[tuple[str, str, int, str]],
) -> list[tuple[str, int, str]]:
    """(owner, index, problem) for each entry that publishes a host port an earlier entry
    on the same connection already holds (same port and protocol; addresses overlap when
    equal or when either is "every address"). PUBLISHED: (connection, owner, index, text),
    in manifest order; unparsable entries are skipped (reported elsewhere).

    Podman would refuse the second at start ("address already in use"), after the first
    container of the stack was already replaced.
    """
    held: dict[tuple[str, str, int], list[tuple[str, str, str]]] = {}
    problems: list[tuple[str, int, str]] = []
    for connection, owner, index, text in published:
        try:
            port = parse_port(text)
        except ValueError:
            continue
        if port.host_port is None:
            continue
        key = (connection, port.protocol, port.host_port)
        other = next(
            (h for h in held.get(key, []) if "" in (h[1], port.host_ip) or h[1] == port.host_ip),
            None,
        )
        if other is not None:
            problems.append(
                (owner, index, f"host port {port.host_port}/{port.protocol} is already "
                 f"published by Workload {other[0]} ({other[2]!r})")
            )  # fmt: skip
            continue
        held.setdefault(key, []).append((owner, port.host_ip, text))
    return problems
