"""Actual state as plain data: what Podman has (Observed, taken once per pass), what the
inventory says podform created (Recorded) and which podman client runs (ClientInfo).

Backends and the inventory fill these values; the planners compare them with the desired
state. Nothing here talks to Podman, so planner tests build these values by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from reconciler.labels import LABEL_STACK

# Podman's container states that mean "the process is up".
RUNNING_STATES = frozenset({"running"})


@dataclass(frozen=True)
class ObservedContainer:
    id: str
    name: str
    state: str  # created | running | exited | paused | stopped | ...
    labels: dict[str, str] = field(default_factory=dict)
    restart_count: int = 0
    exit_code: int = 0
    networks: tuple[str, ...] = ()  # names of the networks it is attached to

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES


@dataclass(frozen=True)
class ObservedImage:
    id: str
    refs: tuple[str, ...]  # repo tags, e.g. ("localhost/web:latest",)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObservedVolume:
    name: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObservedNetwork:
    name: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObservedSecret:
    name: str
    id: str


@dataclass(frozen=True)
class ObservedMachine:
    """One `podman machine` as list + inspect report it, in podform's units."""

    name: str
    provider: str  # VMType: libkrun | applehv | qemu | wsl | hyperv
    state: Literal["running", "starting", "stopped"]
    cpus: int
    memory_mib: int
    disk_gib: int
    rootful: bool
    volumes: tuple[str, ...] = ()  # "source:target[:options]" as given at init
    socket_path: str = ""  # ConnectionInfo.PodmanSocket.Path; empty when not known/running


@dataclass
class Observed:
    """Everything podform owns or needs to know about, per connection key ("" = default)."""

    containers: dict[str, list[ObservedContainer]] = field(default_factory=dict)
    images: dict[str, list[ObservedImage]] = field(default_factory=dict)
    volumes: dict[str, list[ObservedVolume]] = field(default_factory=dict)
    machines: dict[str, ObservedMachine] = field(default_factory=dict)
    networks: dict[str, list[ObservedNetwork]] = field(default_factory=dict)
    secrets: dict[str, list[ObservedSecret]] = field(default_factory=dict)
    errors: dict[str, str] = field(
        default_factory=dict
    )  # connection key -> why it was not observed

    def stack_image(self, conn: str, image_id: str | None, stack: str) -> ObservedImage | None:
        """The image with this id on CONN if it carries STACK's labels: with an inventory
        record of the id, the proof that podform built it for this stack (prune, delete)."""
        for i in self.images.get(conn, []):
            if image_id and i.id == image_id and i.labels.get(LABEL_STACK) == stack:
                return i
        return None


class ProbeResult(StrEnum):
    """The last GPU probe podform ran in a container (kept in the inventory)."""

    PASSED = "ok"
    FAILED = "failed"
    NOT_RUN = ""


@dataclass(frozen=True)
class RecordedContainer:
    id: str
    workload: str
    connection: str
    spec: dict[str, object]  # the last applied spec, secret values masked
    probe: ProbeResult = ProbeResult.NOT_RUN
    starts: int = 0  # starts by podform in a row that found it stopped again (crash loops)


@dataclass
class Recorded:
    """What the inventory says podform created. `valid` is False when it was missing or corrupt:
    then nothing may be pruned, because absence of a record never means "not ours"."""

    valid: bool = True
    containers: dict[str, RecordedContainer] = field(default_factory=dict)  # by container name
    images: dict[str, dict[str, str]] = field(default_factory=dict)  # by Image name
    volumes: dict[str, dict[str, str]] = field(default_factory=dict)  # by "<connection>:<name>"
    machines: dict[str, dict[str, object]] = field(default_factory=dict)  # by Machine name
    networks: dict[str, dict[str, str]] = field(default_factory=dict)  # by "<connection>:<name>"
    # by "<connection>:<name>": id, and the keyed HMAC of the value it was created with
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    secret_key: str = ""  # hex key of those HMACs; lives only in the 0600 inventory
    # What `podform sync` applied last (url without credentials, ref, sha, path, time); empty
    # after any other apply, whose state did not come from a revision.
    revision: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClientInfo:
    """The local podman client: its version, host OS/arch and the provider it uses by default."""

    version: tuple[int, int, int]
    os: str  # darwin | linux | windows
    arch: str  # arm64 | amd64
    default_provider: str  # what `init` uses without a provider (5.x applehv, 6.x libkrun)

    @property
    def sees_all_providers(self) -> bool:
        """Podman 6 finds machines of every provider; 5.x only those of the current one."""
        return self.version >= (6, 0, 0)

    @property
    def has_all_providers_flag(self) -> bool:
        """`machine list --all-providers` exists from 5.3.0 and was removed in 6.0."""
        return (5, 3, 0) <= self.version < (6, 0, 0)
