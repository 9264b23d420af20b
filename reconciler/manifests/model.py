"""Desired state: the frozen values the planners read, what manifests/ produces.

Everything the planner needs is here in podform's units (MiB, GiB, seconds, absolute paths),
with defaults applied and references resolved, so the planner never looks at raw YAML.
builder.py makes these values from validated documents (build_desired); model_extras.py and
container_opts.py hold the networks', secrets' and container options' parts.
"""

from __future__ import annotations

import graphlib
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import Location
from reconciler.manifests.container_opts import ContainerOptions
from reconciler.manifests.model_extras import (
    Network as Network,  # re-exported: the desired-state types all come from model
)
from reconciler.manifests.model_extras import (
    NetworkAttachment as NetworkAttachment,
)
from reconciler.manifests.model_extras import (
    Secret as Secret,
)

DEFAULT_STACK = "default"
DEFAULT_CONNECTION = ""  # key of the default Podman API (no machine)


@dataclass(frozen=True)
class Stack:
    name: str = DEFAULT_STACK
    prune: bool = False
    allow_privileged: bool = False
    location: Location | None = None
    labels: dict[str, str] = field(default_factory=dict)  # copied onto every object it creates


@dataclass(frozen=True)
class Machine:
    name: str
    provider: str | None
    cpus: int | None
    memory_mib: int | None
    disk_gib: int | None
    rootful: bool | None
    volumes: tuple[str, ...]  # "source:target[:options]", source absolute (`~` expanded)
    state: str  # running | stopped
    location: Location | None = None


@dataclass(frozen=True)
class Probe:
    command: tuple[str, ...]
    expect: str | None
    timeout_s: float


@dataclass(frozen=True)
class DeviceMapping:
    name: str
    devices: tuple[str, ...]
    providers: tuple[str, ...] | None  # None: any provider
    env: dict[str, str]
    probe: Probe | None
    # What `render --to kube` requests instead of the devices (a device plugin's resources).
    kubernetes_resources: dict[str, int | str] = field(default_factory=dict)
    location: Location | None = None
    optional: tuple[str, ...] = ()  # those of `devices` passed only where they exist


@dataclass(frozen=True)
class Build:
    context: Path  # absolute
    containerfile: Path  # absolute, inside context
    args: dict[str, str]
    target: str | None


@dataclass(frozen=True)
class Image:
    name: str
    ref: str
    machine: str | None
    build: Build | None
    pull_policy: str  # IfNotPresent | Always | Never (builds: unused)
    labels: dict[str, str] = field(default_factory=dict)
    location: Location | None = None

    @property
    def connection(self) -> str:
        return self.machine or DEFAULT_CONNECTION


@dataclass(frozen=True)
class Mount:
    source: str  # named volume, or absolute host path for a bind mount
    target: str
    options: tuple[str, ...]
    bind: bool


@dataclass(frozen=True)
class Healthcheck:
    command: tuple[str, ...]
    interval_s: float
    timeout_s: float
    retries: int
    start_period_s: float


@dataclass(frozen=True)
class Dependency:
    name: str
    condition: str  # started | healthy


@dataclass(frozen=True)
class SecretRef:
    name: str
    env: str | None
    target: str | None
    source: str = ""  # the Podman secret: `<stack>-<name>` for a declared Secret, else `name`
    declared: bool = False  # a Secret document of this stack (its value is hashed in)

    @property
    def podman_name(self) -> str:
        return self.source or self.name


@dataclass(frozen=True)
class Workload:
    name: str
    machine: str | None
    image: str | None  # name of a declared Image, or None for a full reference
    image_ref: str
    command: tuple[str, ...] | None
    args: tuple[str, ...] | None
    env: dict[str, str]  # device mappings' env, then the workload's own (which wins)
    secrets: tuple[SecretRef, ...]
    ports: tuple[str, ...]
    volumes: tuple[Mount, ...]
    devices: tuple[str, ...]  # expanded: mapping devices and inline devices, in order
    mappings: tuple[str, ...]  # names of the DeviceMappings used
    memory_mib: int | None
    cpus: float | None
    restart: str
    healthcheck: Healthcheck | None
    depends_on: tuple[Dependency, ...]
    replicas: int
    init: bool
    stop_timeout_s: float
    network: str
    privileged: bool
    cap_add: tuple[str, ...]
    state: str  # running | stopped
    labels: dict[str, str] = field(default_factory=dict)
    location: Location | None = None
    options: ContainerOptions = field(default_factory=ContainerOptions)
    env_file_keys: tuple[str, ...] = ()  # keys of `env` whose value came from an envFile (masked)
    optional_devices: tuple[str, ...] = ()  # of `devices`: passed only where they exist
    # Networks joined (network: default -> the stack network; networks: -> declared ones).
    networks: tuple[NetworkAttachment, ...] = ()
    network_target: str = ""  # network: container:W -> the container joined
    env_files: tuple[Path, ...] = ()  # envFile paths, absolute (render refers to them by path)

    @property
    def connection(self) -> str:
        return self.machine or DEFAULT_CONNECTION

    def container_names(self, stack: str) -> list[str]:
        return [f"{stack}-{self.name}-{n}" for n in range(1, self.replicas + 1)]


@dataclass(frozen=True)
class Desired:
    stack: Stack
    machines: dict[str, Machine]
    images: dict[str, Image]
    mappings: dict[str, DeviceMapping]
    workloads: dict[str, Workload]
    files: tuple[str, ...] = ()  # manifest files the state came from, for messages
    networks: dict[str, Network] = field(default_factory=dict)  # declared, by name
    secrets: dict[str, Secret] = field(default_factory=dict)  # declared, by name

    def workload_order(self) -> list[str]:
        """Workload names with every dependency before its dependents (stable by name)."""
        sorter = graphlib.TopologicalSorter(
            {w.name: [d.name for d in w.depends_on] for w in self.workloads.values()}
        )
        sorter.prepare()
        order: list[str] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready())
            order.extend(ready)
            sorter.done(*ready)
        return order

    def named_volumes(self) -> dict[tuple[str, str], list[str]]:
        """(connection, volume name) -> workloads mounting it."""
        out: dict[tuple[str, str], list[str]] = {}
        for w in self.workloads.values():
            for m in w.volumes:
                if not m.bind:
                    out.setdefault((w.connection, m.source), []).append(w.name)
        return out

    def is_empty(self) -> bool:
        return not (
            self.machines
            or self.images
            or self.workloads
            or self.mappings
            or self.networks
            or self.secrets
        )

    def used_networks(self) -> dict[tuple[str, str], Network]:
        """(connection, Podman network name) -> the network to create there, for every
        network a workload joins: declared Networks and the stack network `<stack>`."""
        out: dict[tuple[str, str], Network] = {}
        declared = {n.podman_name: n for n in self.networks.values()}
        for w in self.workloads.values():
            for a in w.networks:
                net = declared.get(a.network) or Network(
                    self.stack.name, a.network, labels=dict(self.stack.labels)
                )
                out[(w.connection, a.network)] = net
        placed = {n.podman_name for n in out.values()}
        for n in self.networks.values():  # declared but joined by no workload: default API
            if n.podman_name not in placed:
                out[(DEFAULT_CONNECTION, n.podman_name)] = n
        return out
