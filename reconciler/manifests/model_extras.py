"""Model pieces for networks, secrets, ports, env files and labels (beside model.py, builder.py).

Pure apart from reading env files and stat-ing secret files. Each function returns values and
Findings, (JSON path, message) pairs that builder._Builder reports with their locations.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.errors import Location
from reconciler.manifests.envfile import read_env_file
from reconciler.manifests.loader import Document
from reconciler.manifests.policy import normalize_host_path
from reconciler.manifests.ports import parse_port

Finding = tuple[tuple[str | int, ...], str]


@dataclass(frozen=True)
class NetworkAttachment:
    """One network a workload's containers join, with their DNS aliases."""

    network: str  # the Podman network name: `<stack>` or `<stack>-<name>`
    aliases: tuple[str, ...]
    declared: str = ""  # the Network document's name; "" for the stack network


@dataclass(frozen=True)
class Network:
    name: str
    podman_name: str  # <stack>-<name>, or <stack> for the stack network
    internal: bool = False
    dns: bool = True
    subnet: str | None = None
    driver: str = "bridge"
    labels: dict[str, str] = field(default_factory=dict)
    location: Location | None = None

    def config(self) -> dict[str, object]:
        """What the network is created with (its hash decides "changed")."""
        return {
            "internal": self.internal,
            "dns": self.dns,
            "subnet": self.subnet,
            "driver": self.driver,
            "labels": dict(sorted(self.labels.items())),
        }


@dataclass(frozen=True)
class Secret:
    name: str
    podman_name: str  # <stack>-<name>
    file: Path | None  # absolute; the value is read at apply time, never kept in the model
    env: str | None  # or this variable of podform's own environment
    labels: dict[str, str] = field(default_factory=dict)
    location: Location | None = None


# Network modes that give the container its own network stack (ports can be published).
_OWN_STACK = ("default", "bridge", "networks", "pasta", "slirp4netns")


def build_network(
    doc: Document, stack: str, stack_labels: dict[str, str]
) -> tuple[Network, list[Finding]]:
    spec: dict[str, Any] = doc.data.get("spec") or {}
    findings: list[Finding] = []
    subnet = spec.get("subnet")
    if subnet is not None:
        try:
            subnet = str(ipaddress.ip_network(subnet))
        except ValueError as exc:
            findings.append((("spec", "subnet"), f"{subnet!r} is not a subnet: {exc}"))
    labels = stack_labels | dict((doc.data.get("metadata") or {}).get("labels") or {})
    net = Network(
        name=doc.name,
        podman_name=f"{stack}-{doc.name}",
        internal=bool(spec.get("internal", False)),
        dns=bool(spec.get("dns", True)),
        subnet=subnet,
        driver=spec.get("driver", "bridge"),
        labels=labels,
        location=doc.locate([]),
    )
    return net, findings


def build_secret(
    doc: Document, stack: str, stack_labels: dict[str, str]
) -> tuple[Secret, list[Finding]]:
    spec: dict[str, Any] = doc.data.get("spec") or {}
    findings: list[Finding] = []
    path: Path | None = None
    if "file" in spec:
        path = normalize_host_path(spec["file"], doc.base_dir)
        try:
            mode = os.stat(path).st_mode
        except OSError as exc:
            findings.append((("spec", "file"), f"secret file {spec['file']}: {exc.strerror}"))
        else:
            if not stat.S_ISREG(mode):
                findings.append(
                    (("spec", "file"), f"secret file {spec['file']} is not a regular file")
                )
    labels = stack_labels | dict((doc.data.get("metadata") or {}).get("labels") or {})
    secret = Secret(doc.name, f"{stack}-{doc.name}", path, spec.get("env"), labels, doc.locate([]))
    return secret, findings


def label_findings(doc: Document) -> list[Finding]:
    """Labels that could not reach any object: refused rather than silently dropped."""
    labels = (doc.data.get("metadata") or {}).get("labels")
    if not labels:
        return []
    spec = doc.data.get("spec") or {}
    # A Machine's labels are refused by its schema already (schemas/machine.json).
    why = {
        "DeviceMapping": "a DeviceMapping creates no object to label (label the Workloads using it)",
    }.get(doc.kind)
    if doc.kind == "Image" and "build" not in spec:
        why = "a pulled image cannot be labelled (only built images carry podform's labels)"
    return [(("metadata", "labels"), f"labels here have no effect: {why}")] if why else []


def port_findings(spec: dict[str, Any], replicas: int) -> list[Finding]:
    findings: list[Finding] = []
    network = spec.get("network", "networks" if "networks" in spec else "default")
    own_stack = network in _OWN_STACK
    for i, raw in enumerate(spec.get("ports") or []):
        at = ("spec", "ports", i)
        try:
            port = parse_port(str(raw))
        except ValueError as exc:
            findings.append((at, str(exc)))
            continue
        if not own_stack:
            findings.append((at, f"ports cannot be published with network: {network}"))
        elif port.host_port is not None and replicas > 1:
            findings.append(
                (
                    at,
                    f"host port {port.host_port} is fixed but replicas is {replicas}: the "
                    f"replicas cannot all publish it (publish the container port alone, "
                    f"e.g. {port.container_port}, to let Podman pick free host ports)",
                )
            )
    return findings


def env_files(spec: dict[str, Any], base_dir: Path) -> tuple[dict[str, str], list[Finding]]:
    env: dict[str, str] = {}
    findings: list[Finding] = []
    for i, raw in enumerate(spec.get("envFile") or []):
        try:
            env.update(read_env_file(normalize_host_path(raw, base_dir)))
        except ValueError as exc:
            findings.append((("spec", "envFile", i), str(exc)))
    return env, findings


def network_of(
    spec: dict[str, Any],
    workload: str,
    stack: str,
    networks: dict[str, Network],
    container_name: dict[str, str],
) -> tuple[str, tuple[NetworkAttachment, ...], str, list[Finding]]:
    """(mode, attachments, container joined by `container:W`, findings) of one Workload."""
    findings: list[Finding] = []
    if "networks" in spec:
        if "network" in spec:
            findings.append((("spec", "network"), "set network or networks, not both"))
        attachments = []
        for i, entry in enumerate(spec["networks"]):
            name = entry if isinstance(entry, str) else entry["name"]
            extra = () if isinstance(entry, str) else tuple(entry.get("aliases") or ())
            if name not in networks:
                known = ", ".join(sorted(networks)) or "none declared"
                findings.append((("spec", "networks", i), f"unknown Network {name!r} ({known})"))
                continue
            aliases = tuple(dict.fromkeys((workload, *extra)))
            attachments.append(NetworkAttachment(networks[name].podman_name, aliases, name))
        return "networks", tuple(attachments), "", findings
    mode = spec.get("network", "default")
    if mode == "default":
        return mode, (NetworkAttachment(stack, (workload,)),), "", findings
    if mode.startswith("container:"):
        target = mode.removeprefix("container:")
        if target == workload or target not in container_name:
            findings.append((("spec", "network"), f"unknown Workload {target!r} to join"))
            return mode, (), "", findings
        return mode, (), container_name[target], findings
    return mode, (), "", findings
