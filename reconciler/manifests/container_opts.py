"""The Workload's process and sandbox settings (user, groups, namespaces, limits, logging...).

Pure: schema-validated spec values -> one frozen ContainerOptions in podform's units. The
model embeds it in each Workload; hashing puts `to_spec()` in the spec hash; the Podman
adapter turns it into SpecGenerator fields. Findings are (JSON path, message) pairs that the
model reports with locations, for what the schema's shapes cannot say (an IP that is not one,
an unknown signal).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from reconciler.manifests import units

Finding = tuple[tuple[str | int, ...], str]

# Linux signal numbers (Podman wants a number; podform may run on macOS, whose differ).
LINUX_SIGNALS = {
    "SIGHUP": 1,
    "SIGINT": 2,
    "SIGQUIT": 3,
    "SIGILL": 4,
    "SIGTRAP": 5,
    "SIGABRT": 6,
    "SIGBUS": 7,
    "SIGFPE": 8,
    "SIGKILL": 9,
    "SIGUSR1": 10,
    "SIGSEGV": 11,
    "SIGUSR2": 12,
    "SIGPIPE": 13,
    "SIGALRM": 14,
    "SIGTERM": 15,
    "SIGSTKFLT": 16,
    "SIGCHLD": 17,
    "SIGCONT": 18,
    "SIGSTOP": 19,
    "SIGTSTP": 20,
    "SIGTTIN": 21,
    "SIGTTOU": 22,
    "SIGURG": 23,
    "SIGXCPU": 24,
    "SIGXFSZ": 25,
    "SIGVTALRM": 26,
    "SIGPROF": 27,
    "SIGWINCH": 28,
    "SIGIO": 29,
    "SIGPWR": 30,
    "SIGSYS": 31,
}
UNLIMITED = -1
_SIZE = re.compile(r"[0-9]+(\.[0-9]+)?[kmgtKMGT]?[bB]?")


@dataclass(frozen=True)
class Ulimit:
    name: str  # nofile, memlock, ... (without RLIMIT_)
    soft: int  # -1 = unlimited
    hard: int


@dataclass(frozen=True)
class Logging:
    driver: str
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerOptions:
    """Everything here defaults to "as Podman does"; only what is set reaches the spec hash."""

    user: str | None = None
    group_add: tuple[str, ...] = ()
    userns: str | None = None
    security_opt: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    shm_size_mib: int | None = None
    ipc: str | None = None  # private | shareable | host | container:<container name>
    ulimits: tuple[Ulimit, ...] = ()
    pids_limit: int | None = None
    read_only: bool = False
    tmpfs: tuple[str, ...] = ()
    workdir: str | None = None
    hostname: str | None = None
    extra_hosts: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    stop_signal: str | None = None  # canonical SIGNAME
    logging: Logging | None = None

    def to_spec(self) -> dict[str, Any]:
        """The fields that are set, JSON-ready (for the spec hash and the inventory)."""
        out: dict[str, Any] = {
            "user": self.user,
            "group_add": list(self.group_add),
            "userns": self.userns,
            "security_opt": list(self.security_opt),
            "cap_drop": list(self.cap_drop),
            "shm_size_mib": self.shm_size_mib,
            "ipc": self.ipc,
            "ulimits": [[u.name, u.soft, u.hard] for u in self.ulimits],
            "pids_limit": self.pids_limit,
            "read_only": self.read_only,
            "tmpfs": list(self.tmpfs),
            "workdir": self.workdir,
            "hostname": self.hostname,
            "extra_hosts": list(self.extra_hosts),
            "dns": list(self.dns),
            "stop_signal": self.stop_signal,
            "logging": None
            if self.logging is None
            else {
                "driver": self.logging.driver,
                "options": dict(sorted(self.logging.options.items())),
            },
        }
        return {k: v for k, v in out.items() if v not in (None, [], False)}


def signal_name(value: str) -> str | None:
    """`INT` / `SIGINT` -> `SIGINT`; None when Linux has no such signal."""
    name = value.upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    return name if name in LINUX_SIGNALS else None


def _limit(value: int | str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    soft, _, hard = value.partition(":")
    return int(soft), int(hard)


def container_options(
    spec: dict[str, Any], container_name: dict[str, str]
) -> tuple[ContainerOptions, list[Finding]]:
    """Options from a Workload spec. `container_name` maps workload names to the container
    (replica 1) that `ipc: container:NAME` joins; an unknown name is a finding."""
    findings: list[Finding] = []
    ulimits: list[Ulimit] = []
    for name, value in sorted((spec.get("ulimits") or {}).items()):
        soft, hard = _limit(value)
        if hard != UNLIMITED and (soft == UNLIMITED or soft > hard):
            findings.append((("spec", "ulimits", name), f"soft limit {soft} exceeds hard {hard}"))
        ulimits.append(Ulimit(name, soft, hard))
    ipc = spec.get("ipc")
    if isinstance(ipc, str) and ipc.startswith("container:"):
        target = ipc.removeprefix("container:")
        if target not in container_name:
            findings.append((("spec", "ipc"), f"unknown Workload {target!r}"))
        else:
            ipc = f"container:{container_name[target]}"
    for i, host in enumerate(spec.get("extraHosts") or []):
        address = host.partition(":")[2]
        if address != "host-gateway" and not _is_ip(address):
            findings.append((("spec", "extraHosts", i), f"{address!r} is not an IP address"))
    for i, server in enumerate(spec.get("dns") or []):
        if not _is_ip(server):
            findings.append((("spec", "dns", i), f"{server!r} is not an IP address"))
    groups = [str(g) for g in spec.get("groupAdd") or ()]
    if "keep-groups" in groups and len(groups) > 1:
        findings.append((("spec", "groupAdd"), "keep-groups cannot be combined with other groups"))
    stop_signal = None
    if "stopSignal" in spec:
        stop_signal = signal_name(spec["stopSignal"])
        if stop_signal is None:
            findings.append(
                (("spec", "stopSignal"), f"{spec['stopSignal']!r} is not a Linux signal")
            )
    logging = spec.get("logging")
    size = ((logging or {}).get("options") or {}).get("max-size")
    if size is not None and not _SIZE.fullmatch(size):
        findings.append(
            (("spec", "logging", "options", "max-size"), f"{size!r} is not a size such as 10m")
        )
    options = ContainerOptions(
        user=str(spec["user"]) if "user" in spec else None,
        group_add=tuple(str(g) for g in spec.get("groupAdd") or ()),
        userns=spec.get("userns"),
        security_opt=tuple(spec.get("securityOpt") or ()),
        cap_drop=tuple(spec.get("capDrop") or ()),
        shm_size_mib=units.mebibytes(spec["shmSize"]) if "shmSize" in spec else None,
        ipc=ipc,
        ulimits=tuple(ulimits),
        pids_limit=spec.get("pidsLimit"),
        read_only=bool(spec.get("readOnly", False)),
        tmpfs=tuple(spec.get("tmpfs") or ()),
        workdir=spec.get("workdir"),
        hostname=spec.get("hostname"),
        extra_hosts=tuple(spec.get("extraHosts") or ()),
        dns=tuple(spec.get("dns") or ()),
        stop_signal=stop_signal,
        logging=Logging(logging["driver"], dict(logging.get("options") or {})) if logging else None,
    )
    return options, findings


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# Security options that switch a confinement off: the Stack's policy.allowPrivileged lifts them.
_UNCONFINED = (
    "seccomp=unconfined",
    "apparmor=unconfined",
    "label=type:spc_t",
    "label=type:unconfined_t",
)


def privilege_findings(spec: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """What of these options needs `policy.allowPrivileged` (label=disable and
    no-new-privileges do not: the first is what GPU access on SELinux hosts needs, the
    second only takes privileges away)."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    for i, opt in enumerate(spec.get("securityOpt") or []):
        if isinstance(opt, str) and (opt in _UNCONFINED or opt.startswith("unmask=")):
            out.append((("spec", "securityOpt", i), f"security option {opt} removes confinement"))
    if spec.get("ipc") == "host":
        out.append((("spec", "ipc"), "the host's IPC namespace (ipc: host) is refused"))
    return out
