"""Desired state -> one compose.yaml (Compose Specification) for podman-compose and docker compose.

The project is named after the stack, so compose names containers `<stack>-<workload>-<n>` as
podform does (podman-compose: `<stack>_<workload>_<n>`). Named volumes keep podform's volume
names (`name:`), so the data podform created is the data compose mounts. Each Workload field maps
in `_service()`, in the model's order; WORKLOAD_FIELDS lists them for tests/test_render.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.manifests.model import Desired, Workload
from reconciler.render.common import (
    Rendering,
    dump_yaml,
    duration,
    labels,
    parse_port,
    relative_to,
    workload_resource,
)

WORKLOAD_FIELDS = frozenset(
    {
        "name", "machine", "image", "image_ref", "command", "args", "env", "secrets", "ports",
        "volumes", "devices", "mappings", "memory_mib", "cpus", "restart", "healthcheck",
        "depends_on", "replicas", "init", "stop_timeout_s", "network", "privileged", "cap_add",
        "state", "labels",
    }
)  # fmt: skip

_PULL = {"IfNotPresent": "missing", "Always": "always", "Never": "never"}
_PODMAN_ONLY_NETWORKS = ("pasta", "slirp4netns", "ns:", "private")


def render_compose(desired: Desired, base: Path | None = None) -> Rendering:
    """base: the folder compose.yaml will live in (paths inside it are written as ./x)."""
    out = Rendering()
    stack = desired.stack.name
    for machine in sorted(desired.machines):
        out.note(
            f"Machine {machine}",
            "spec",
            "not rendered: compose runs on the engine it is pointed at (e.g. a machine's "
            "connection through DOCKER_HOST or podman-compose's --podman-args)",
        )
    used_images = {w.image for w in desired.workloads.values() if w.image}
    for name in sorted(set(desired.images) - used_images):
        out.note(f"Image {name}", "spec", "not rendered: compose builds images for services only")
    for name, mapping in sorted(desired.mappings.items()):
        if mapping.probe is not None:
            out.note(
                f"DeviceMapping {name}",
                "spec.probe",
                "not rendered: compose has no startup check; `podform status` runs the probe",
            )
    services = {
        n: _service(desired, desired.workloads[n], base, out) for n in sorted(desired.workloads)
    }
    doc: dict[str, Any] = {"name": stack, "services": services}
    volumes = sorted(
        {m.source for w in desired.workloads.values() for m in w.volumes if not m.bind}
    )
    if volumes:
        doc["volumes"] = {v: {"name": v, "labels": labels(stack, "Volume", v)} for v in volumes}
    networks = sorted({n for w in desired.workloads.values() if (n := _named_network(w.network))})
    if networks:
        doc["networks"] = {n: {"name": n, "external": True} for n in networks}
    secrets = sorted({s.name for w in desired.workloads.values() for s in w.secrets})
    if secrets:
        # podform's secrets are existing Podman secrets today; a Secret kind with `file:` becomes
        # `file:` here (never a value).
        doc["secrets"] = {s: {"name": s, "external": True} for s in secrets}
    out.files["compose.yaml"] = dump_yaml(doc)
    return out


def _named_network(network: str) -> str | None:
    """A network joined by name (not a mode such as host or container:x)."""
    if network in ("bridge", "default", "host", "none") or ":" in network:
        return None
    if network.startswith(_PODMAN_ONLY_NETWORKS):
        return None
    return network


def _service(desired: Desired, w: Workload, base: Path | None, out: Rendering) -> dict[str, Any]:
    """One service: Workload fields in the model's order."""
    stack, who = desired.stack.name, workload_resource(w)
    s: dict[str, Any] = {}
    # machine
    if w.machine is not None:
        out.note(who, "spec.machine", f"not rendered ({w.machine!r}): compose runs where it is run")
    # image, image_ref: a declared Image builds or pulls as podform would
    s["image"] = w.image_ref
    image = desired.images.get(w.image) if w.image else None
    if image is not None and image.build is not None:
        b = image.build
        build: dict[str, Any] = {"context": relative_to(b.context, base)}
        build["dockerfile"] = str(b.containerfile.relative_to(b.context))
        if b.args:
            build["args"] = dict(b.args)
        if b.target:
            build["target"] = b.target
        build["labels"] = labels(stack, "Image", image.name, image.labels)
        s["build"] = build
    else:
        s["pull_policy"] = _PULL[image.pull_policy if image is not None else "IfNotPresent"]
    if w.command is not None:
        s["entrypoint"] = list(w.command)
    if w.args is not None:
        s["command"] = list(w.args)
    if w.env:
        s["environment"] = dict(w.env)
    # secrets: existing Podman secrets, by name
    if w.secrets:
        refs: list[Any] = []
        for ref in w.secrets:
            if ref.env:
                # Compose secrets are files; podman-compose's `type: env` is not in the
                # Compose Specification, and docker compose refuses the whole file for it.
                refs.append(ref.name)
                out.note(
                    who,
                    "spec.secrets",
                    f"{ref.name} as env {ref.env} is rendered as the file /run/secrets/{ref.name}: "
                    "compose secrets are files",
                )
            elif ref.target:
                refs.append({"source": ref.name, "target": ref.target})
            else:
                refs.append(ref.name)
        s["secrets"] = refs
    if w.ports:
        s["ports"] = [_port(text) for text in w.ports]
    if w.volumes:
        s["volumes"] = [
            ":".join(
                [
                    relative_to(Path(m.source), base) if m.bind else m.source,
                    m.target,
                    *([",".join(m.options)] if m.options else []),
                ]
            )
            for m in w.volumes
        ]
    # devices (mappings already expanded into them; their env is in w.env); mappings: see probe
    if w.devices:
        s["devices"] = list(w.devices)
    deploy: dict[str, Any] = {}
    # replicas, state: a stopped workload runs no replica
    deploy["replicas"] = w.replicas if w.state == "running" else 0
    limits: dict[str, Any] = {}
    if w.memory_mib is not None:
        limits["memory"] = f"{w.memory_mib}m"
    if w.cpus is not None:
        limits["cpus"] = f"{w.cpus:g}"
    if limits:
        deploy["resources"] = {"limits": limits}
    s["deploy"] = deploy
    s["restart"] = w.restart
    if w.healthcheck is not None:
        hc = w.healthcheck
        s["healthcheck"] = {
            "test": ["CMD", *hc.command],
            "interval": duration(hc.interval_s),
            "timeout": duration(hc.timeout_s),
            "retries": hc.retries,
        }
        if hc.start_period_s > 0:
            s["healthcheck"]["start_period"] = duration(hc.start_period_s)
    if w.depends_on:
        s["depends_on"] = {d.name: {"condition": f"service_{d.condition}"} for d in w.depends_on}
    if w.init:
        s["init"] = True
    s["stop_grace_period"] = duration(w.stop_timeout_s)
    # network
    if w.network in ("host", "none"):
        s["network_mode"] = w.network
    elif w.network.startswith("container:"):
        s["network_mode"] = "service:" + w.network.removeprefix("container:")
    elif w.network.startswith(_PODMAN_ONLY_NETWORKS):
        s["network_mode"] = w.network
        out.note(
            who, "spec.network", f"{w.network!r} is a Podman network mode: podman-compose only"
        )
    elif (named := _named_network(w.network)) is not None:
        s["networks"] = [named]
    if w.privileged:
        s["privileged"] = True
    if w.cap_add:
        s["cap_add"] = list(w.cap_add)
    s["labels"] = labels(stack, "Workload", w.name, w.labels)
    return s


def _port(text: str) -> dict[str, Any]:
    """Long syntax: no guessing how a short string with an IPv6 address splits."""
    p = parse_port(text)
    port: dict[str, Any] = {"target": p.container_port}
    if p.host_port is not None:
        port["published"] = str(p.host_port)
    if p.host_ip:
        port["host_ip"] = p.host_ip
    port["protocol"] = p.protocol
    return port
