"""Desired state -> one compose.yaml (Compose Specification) for podman-compose and docker compose.

The project is named after the stack, so compose names containers `<stack>-<workload>-<n>` as
podform does (podman-compose: `<stack>_<workload>_<n>`). Named volumes keep podform's volume
names (`name:`), so the data podform created is the data compose mounts. Each Workload field maps
in `_service()`, in the model's order; WORKLOAD_FIELDS lists them for tests/test_render.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.manifests.model import Desired, Network, Workload
from reconciler.manifests.ports import parse_port
from reconciler.render.common import (
    Rendering,
    dump_yaml,
    duration,
    labels,
    relative_to,
    required_devices,
    visible_env,
    workload_resource,
)

WORKLOAD_FIELDS = frozenset(
    {
        "name", "machine", "image", "image_ref", "command", "args", "env", "secrets", "ports",
        "volumes", "devices", "mappings", "memory_mib", "cpus", "restart", "healthcheck",
        "depends_on", "replicas", "init", "stop_timeout_s", "network", "privileged", "cap_add",
        "state", "labels", "options", "env_file_keys", "optional_devices", "networks",
        "network_target", "env_files",
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
    networks: dict[str, Any] = {}
    if any(w.network == "default" for w in desired.workloads.values()):
        # The stack network is the project's default network, under podform's name for it.
        networks["default"] = _network(stack, Network(stack, stack, labels=desired.stack.labels))
    for name, net in sorted(desired.networks.items()):
        networks[name] = _network(stack, net, out)
    if networks:
        doc["networks"] = networks
    secrets: dict[str, Any] = {}
    for w in desired.workloads.values():
        for ref in w.secrets:
            if not ref.declared:
                secrets[ref.podman_name] = {"name": ref.podman_name, "external": True}
    for name, secret in desired.secrets.items():
        # Declared Secrets are read where compose runs: a file or a variable, never a value.
        entry: dict[str, Any] = {"name": secret.podman_name}
        if secret.file is not None:
            entry["file"] = relative_to(secret.file, base)
        else:
            entry["environment"] = secret.env
            out.note(
                f"Secret {name}",
                "spec.env",
                f"rendered as environment: {secret.env}, which docker compose reads; "
                "podman-compose 1.6 refuses environment secrets for containers",
            )
        secrets[secret.podman_name] = entry
    if secrets:
        doc["secrets"] = dict(sorted(secrets.items()))
    out.files["compose.yaml"] = dump_yaml(doc)
    return out


def _network(stack: str, net: Network, out: Rendering | None = None) -> dict[str, Any]:
    """A top-level network under podform's network name, so podform and compose share it."""
    entry: dict[str, Any] = {"name": net.podman_name}
    if net.driver != "bridge":
        entry["driver"] = net.driver
    if net.internal:
        entry["internal"] = True
    if net.subnet is not None:
        entry["ipam"] = {"config": [{"subnet": net.subnet}]}
    if not net.dns:
        # Not in the Compose Specification: podman-compose's extension (others ignore x- keys).
        entry["x-podman.disable_dns"] = True
        if out is not None:
            out.note(
                f"Network {net.name}",
                "spec.dns",
                "rendered as x-podman.disable_dns, which only podman-compose reads",
            )
    entry["labels"] = labels(stack, "Network", net.name, net.labels)
    return entry


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
    # env_files, env_file_keys: the files by path (compose reads them), never their values
    if w.env_files:
        s["env_file"] = [relative_to(path, base) for path in w.env_files]
    if env := visible_env(w):
        s["environment"] = env
    # secrets: by the Podman secret's name (declared Secrets: `<stack>-<name>`)
    if w.secrets:
        refs: list[Any] = []
        for ref in w.secrets:
            secret = ref.podman_name
            if ref.env:
                # Compose secrets are files; podman-compose's `type: env` is not in the
                # Compose Specification, and docker compose refuses the whole file for it.
                refs.append(secret)
                out.note(
                    who,
                    "spec.secrets",
                    f"{ref.name} as env {ref.env} is rendered as the file /run/secrets/{secret}: "
                    "compose secrets are files",
                )
            elif ref.target:
                refs.append({"source": secret, "target": ref.target})
            else:
                refs.append(secret)
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
    if devices := required_devices(w):
        s["devices"] = devices
    # optional_devices: compose has no device-if-present
    if w.optional_devices:
        out.note(
            who,
            "spec.devices",
            f"{', '.join(w.optional_devices)} optional: not rendered (a compose device must "
            "exist); add it to devices where the host has it",
        )
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
    # network, networks, network_target: default is the project's default network (the stack
    # network); declared Networks with their aliases
    if w.network in ("host", "none", "bridge"):
        s["network_mode"] = w.network
    elif w.network.startswith("container:"):
        s["network_mode"] = "service:" + w.network.removeprefix("container:")
    elif w.network.startswith(_PODMAN_ONLY_NETWORKS):
        s["network_mode"] = w.network
        out.note(
            who, "spec.network", f"{w.network!r} is a Podman network mode: podman-compose only"
        )
    elif w.network == "networks":
        # The workload's name is an alias compose gives every service: the rest are written.
        s["networks"] = {
            a.declared: {"aliases": [x for x in a.aliases if x != w.name]}
            if len(a.aliases) > 1
            else None
            for a in w.networks
        }
    if w.privileged:
        s["privileged"] = True
    if w.cap_add:
        s["cap_add"] = list(w.cap_add)
    s.update(_options(desired, w))
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


def _options(desired: Desired, w: Workload) -> dict[str, Any]:
    """options: the ContainerOptions under their compose names, in their order."""
    o = w.options
    s: dict[str, Any] = {}
    if o.user is not None:
        s["user"] = o.user
    if o.group_add:
        s["group_add"] = list(o.group_add)
    if o.userns is not None:
        s["userns_mode"] = o.userns
    if o.security_opt:
        s["security_opt"] = list(o.security_opt)
    if o.cap_drop:
        s["cap_drop"] = list(o.cap_drop)
    if o.shm_size_mib is not None:
        s["shm_size"] = f"{o.shm_size_mib}m"
    if o.ipc is not None:
        # container:<stack>-W-1 (podform's container) is the service W in compose.
        first = {f"container:{desired.stack.name}-{n}-1": n for n in desired.workloads}
        s["ipc"] = f"service:{first[o.ipc]}" if o.ipc in first else o.ipc
    if o.ulimits:
        s["ulimits"] = {
            u.name: u.soft if u.soft == u.hard else {"soft": u.soft, "hard": u.hard}
            for u in o.ulimits
        }
    if o.pids_limit is not None:
        s["pids_limit"] = o.pids_limit
    if o.read_only:
        s["read_only"] = True
    if o.tmpfs:
        s["tmpfs"] = list(o.tmpfs)
    if o.workdir is not None:
        s["working_dir"] = o.workdir
    if o.hostname is not None:
        s["hostname"] = o.hostname
    if o.extra_hosts:
        s["extra_hosts"] = list(o.extra_hosts)
    if o.dns:
        s["dns"] = list(o.dns)
    if o.stop_signal is not None:
        s["stop_signal"] = o.stop_signal
    if o.logging is not None:
        s["logging"] = {"driver": o.logging.driver}
        if o.logging.options:
            s["logging"]["options"] = dict(o.logging.options)
    return s
