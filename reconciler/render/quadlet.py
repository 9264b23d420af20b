"""Desired state -> Podman Quadlet units: systemd runs the stack at boot without podform.

Targets Podman 5.4's generator (Debian 13; the key sets of its podman-systemd.unit(5) are pinned
in tests/test_render_quadlet.py). One `<stack>-<workload>-<n>.container` per replica (numbered
units, see docs/DECISIONS.md), `<stack>-<volume>.volume` keeping podform's volume name, and
`<stack>-<image>.build` for built images. Each Workload field maps in `_container()`, in the
model's order; WORKLOAD_FIELDS lists them for tests/test_render.py.
"""

from __future__ import annotations

import json
import re

from reconciler.labels import LABEL_REPLICA
from reconciler.manifests.model import Desired, Image, Network, Secret, Workload
from reconciler.render.common import (
    Rendering,
    duration,
    labels,
    split_user,
    ulimit_text,
    visible_env,
    whole_seconds,
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

_HEADER = "# Rendered by podform from stack {stack}: edit the manifests and render again.\n"
_SAFE = re.compile(r"[A-Za-z0-9_@+=:,./-]+")
_RESTART = {"no": None, "on-failure": "on-failure", "always": "always", "unless-stopped": "always"}
_PULL = {"IfNotPresent": "missing", "Always": "always", "Never": "never"}
# systemd's default start timeout; a unit waiting for health gets more when its check needs it.
_SYSTEMD_START_TIMEOUT = 90


def render_quadlet(desired: Desired) -> Rendering:
    out = Rendering()
    stack = desired.stack.name
    for machine in sorted(desired.machines):
        out.note(
            f"Machine {machine}",
            "spec",
            "not rendered: Quadlet units run on the host they are installed on (inside a "
            "machine: copy them there)",
        )
    for name, mapping in sorted(desired.mappings.items()):
        if mapping.probe is not None:
            out.note(
                f"DeviceMapping {name}",
                "spec.probe",
                "not rendered: a Quadlet unit has no one-shot startup check; "
                "`podform status` runs the probe",
            )
    files: dict[str, str] = {}
    for name, image in desired.images.items():
        if image.build is not None:
            files[f"{stack}-{name}.build"] = _build(stack, image)
    volumes = {m.source for w in desired.workloads.values() for m in w.volumes if not m.bind}
    for volume in volumes:
        files[f"{stack}-{volume}.volume"] = _volume(stack, volume)
    for net in _networks(desired):
        files[f"{net.podman_name}.network"] = _network(stack, net)
    for name, secret in sorted(desired.secrets.items()):
        out.note(
            f"Secret {name}",
            "spec",
            f"not rendered: Quadlet has no secret unit; create the Podman secret on the host "
            f"(podman secret create {_create_from(secret)})",
        )
    awaited = {
        d.name for w in desired.workloads.values() for d in w.depends_on if d.condition == "healthy"
    }
    for w in desired.workloads.values():
        if w.replicas == 0:
            out.note(workload_resource(w), "spec.replicas", "0: no unit written")
        for n in range(1, w.replicas + 1):
            files[f"{stack}-{w.name}-{n}.container"] = _container(
                desired, w, n, w.name in awaited, out
            )
    out.files = dict(sorted(files.items()))
    return out


def _escape(value: str) -> str:
    """systemd expands % specifiers and $ variables in the generated ExecStart: double them."""
    return value.replace("%", "%%").replace("$", "$$")


def _words(*values: str) -> str:
    """Values as one systemd word list: safe words bare, the rest double-quoted with C escapes."""
    out = []
    for value in values:
        text = _escape(value)
        if not _SAFE.fullmatch(text):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        out.append(text)
    return " ".join(out)


def _section(name: str, keys: list[tuple[str, str]]) -> str:
    if not keys:
        return ""
    return f"[{name}]\n" + "".join(f"{k}={v}\n" for k, v in keys) + "\n"


def _unit(stack: str, sections: list[tuple[str, list[tuple[str, str]]]]) -> str:
    body = "".join(_section(name, keys) for name, keys in sections)
    return _HEADER.format(stack=stack) + "\n" + body.rstrip("\n") + "\n"


def _label_keys(values: dict[str, str]) -> list[tuple[str, str]]:
    return [("Label", _words(f"{k}={v}")) for k, v in values.items()]


def _volume(stack: str, volume: str) -> str:
    keys = [("VolumeName", volume), *_label_keys(labels(stack, "Volume", volume))]
    return _unit(stack, [("Volume", keys)])


def _create_from(secret: Secret) -> str:
    if secret.file is not None:
        return f"{secret.podman_name} {secret.file}"
    return f"--env {secret.podman_name} {secret.env}"


def _networks(desired: Desired) -> list[Network]:
    """Every declared Network, and the stack network where a workload joins it."""
    nets = {n.podman_name: n for n in desired.networks.values()}
    for net in desired.used_networks().values():
        nets.setdefault(net.podman_name, net)
    return [nets[k] for k in sorted(nets)]


def _network(stack: str, net: Network) -> str:
    keys = [("NetworkName", net.podman_name)]
    if net.driver != "bridge":
        keys.append(("Driver", net.driver))
    if net.internal:
        keys.append(("Internal", "true"))
    if not net.dns:
        keys.append(("DisableDNS", "true"))
    if net.subnet is not None:
        keys.append(("Subnet", net.subnet))
    keys.extend(_label_keys(labels(stack, "Network", net.name, net.labels)))
    return _unit(stack, [("Network", keys)])


def _build(stack: str, image: Image) -> str:
    assert image.build is not None
    b = image.build
    keys = [
        ("ImageTag", image.ref),
        ("File", _words(str(b.containerfile))),
        ("SetWorkingDirectory", _words(str(b.context))),
    ]
    if b.target:
        keys.append(("Target", b.target))
    keys.extend(_label_keys(labels(stack, "Image", image.name, image.labels)))
    # [Build] has no key for build arguments in Podman 5.4: PodmanArgs passes them through.
    keys.extend(("PodmanArgs", _words(f"--build-arg={k}={v}")) for k, v in b.args.items())
    return _unit(stack, [("Build", keys)])


def _container(desired: Desired, w: Workload, replica: int, awaited: bool, out: Rendering) -> str:
    """One replica's unit: Workload fields in the model's order."""
    stack, who = desired.stack.name, workload_resource(w)
    unit: list[tuple[str, str]] = [
        ("Description", _escape(f"podform {stack}: {w.name} (replica {replica} of {w.replicas})"))
    ]
    c: list[tuple[str, str]] = [("ContainerName", f"{stack}-{w.name}-{replica}")]
    service: list[tuple[str, str]] = []
    # machine
    if w.machine is not None and replica == 1:
        out.note(
            who,
            "spec.machine",
            f"not rendered ({w.machine!r}): install the units on the host that runs them",
        )
    # image, image_ref: a built Image through its .build unit, else the reference with its policy
    image = desired.images.get(w.image) if w.image else None
    if image is not None and image.build is not None:
        c.append(("Image", f"{stack}-{image.name}.build"))
    else:
        c.append(("Image", w.image_ref))
        c.append(("Pull", _PULL[image.pull_policy if image is not None else "IfNotPresent"]))
    if w.command is not None:
        entry = (
            w.command[0]
            if len(w.command) == 1
            else json.dumps(list(w.command), separators=(",", ":"))
        )
        c.append(("Entrypoint", _escape(entry)))
    if w.args is not None:
        c.append(("Exec", _words(*w.args)))
    # env_files, env_file_keys: the files by path, never their values
    c.extend(("EnvironmentFile", _words(str(path))) for path in w.env_files)
    c.extend(("Environment", _words(f"{k}={v}")) for k, v in visible_env(w).items())
    for s in w.secrets:
        if s.env:
            c.append(("Secret", f"{s.podman_name},type=env,target={s.env}"))
        elif s.target:
            c.append(("Secret", f"{s.podman_name},type=mount,target={_escape(s.target)}"))
        else:
            c.append(("Secret", s.podman_name))
    c.extend(("PublishPort", port) for port in w.ports)
    for m in w.volumes:
        source = _escape(m.source) if m.bind else f"{stack}-{m.source}.volume"
        c.append(
            ("Volume", ":".join([source, m.target, *([",".join(m.options)] if m.options else [])]))
        )
    # devices (mappings are expanded into them; their env is in env above); optional_devices:
    # Quadlet's `-` prefix adds a device only where it exists
    optional = set(w.optional_devices)
    c.extend(("AddDevice", f"-{d}" if d in optional else d) for d in w.devices)
    # [Container] has no key for memory or CPU limits in Podman 5.4: PodmanArgs passes them.
    if w.memory_mib is not None:
        c.append(("PodmanArgs", f"--memory={w.memory_mib}m"))
    if w.cpus is not None:
        c.append(("PodmanArgs", f"--cpus={w.cpus:g}"))
    # restart: systemd restarts the unit (Podman's own policy is not used under systemd)
    if (restart := _RESTART[w.restart]) is not None:
        service.append(("Restart", restart))
    if w.healthcheck is not None:
        hc = w.healthcheck
        c.append(("HealthCmd", _escape(json.dumps(list(hc.command), separators=(",", ":")))))
        c.append(("HealthInterval", duration(hc.interval_s)))
        c.append(("HealthTimeout", duration(hc.timeout_s)))
        c.append(("HealthRetries", str(hc.retries)))
        if hc.start_period_s > 0:
            c.append(("HealthStartPeriod", duration(hc.start_period_s)))
        if awaited:
            # A dependent waits for `healthy`: the unit reports started only once healthy.
            c.append(("Notify", "healthy"))
            wait = hc.start_period_s + (hc.retries + 1) * (hc.interval_s + hc.timeout_s)
            service.append(
                ("TimeoutStartSec", str(max(_SYSTEMD_START_TIMEOUT, whole_seconds(wait))))
            )
    # depends_on: every replica of each dependency, started before this one
    for dep in w.depends_on:
        other = desired.workloads[dep.name]
        if dep.condition == "healthy" and other.healthcheck is None:
            out.note(
                who,
                "spec.dependsOn",
                f"{dep.name} has no healthcheck: waits for it to start, not to be healthy",
            )
        for n in range(1, other.replicas + 1):
            unit.append(("Requires", f"{stack}-{dep.name}-{n}.service"))
            unit.append(("After", f"{stack}-{dep.name}-{n}.service"))
    # replicas: one unit per replica (see render_quadlet)
    if w.init:
        c.append(("RunInit", "true"))
    c.append(("StopTimeout", str(round(w.stop_timeout_s))))
    # network, networks, network_target: the stack network and declared Networks are .network
    # units (Quadlet then orders the container after them); aliases are the container's
    if w.networks:
        c.extend(("Network", f"{a.network}.network") for a in w.networks)
        aliases = list(dict.fromkeys(x for a in w.networks for x in a.aliases))
        c.extend(("NetworkAlias", alias) for alias in aliases)
        if len({a.aliases for a in w.networks}) > 1 and replica == 1:
            out.note(
                who,
                "spec.networks",
                "Quadlet's NetworkAlias applies to every network joined: each alias "
                f"({', '.join(aliases)}) is given on all of them",
            )
    elif w.network_target or w.network.startswith("container:"):
        # The first replica's network namespace, which must exist first.
        joined = w.network_target or f"{stack}-{w.network.removeprefix('container:')}-1"
        if ("Requires", f"{joined}.service") not in unit:
            unit.extend([("Requires", f"{joined}.service"), ("After", f"{joined}.service")])
        c.append(("Network", f"container:{joined}"))
    else:
        c.append(("Network", w.network))
    if w.privileged:
        # Quadlet has no key for --privileged: PodmanArgs passes it through.
        c.append(("PodmanArgs", "--privileged"))
    if w.cap_add:
        c.append(("AddCapability", " ".join(w.cap_add)))
    c.extend(_options(w))
    c.extend(
        _label_keys(labels(stack, "Workload", w.name, w.labels) | {LABEL_REPLICA: str(replica)})
    )
    sections = [("Unit", unit), ("Container", c), ("Service", service)]
    # state: a stopped workload is installed but not started at boot
    if w.state == "running":
        sections.append(("Install", [("WantedBy", "default.target")]))
    return _unit(stack, sections)


def _options(w: Workload) -> list[tuple[str, str]]:
    """options: the ContainerOptions, in their order; PodmanArgs where Quadlet has no key."""
    o = w.options
    c: list[tuple[str, str]] = []
    if o.user is not None:
        user, group = split_user(o.user)
        c.append(("User", user))
        if group is not None:
            c.append(("Group", group))
    c.extend(("GroupAdd", g) for g in o.group_add)
    if o.userns is not None:
        c.append(("UserNS", o.userns))
    for opt in o.security_opt:
        if opt == "label=disable":
            c.append(("SecurityLabelDisable", "true"))
        elif opt == "no-new-privileges":
            c.append(("NoNewPrivileges", "true"))
        elif opt.startswith("seccomp="):
            c.append(("SeccompProfile", _escape(opt.removeprefix("seccomp="))))
        else:
            c.append(("PodmanArgs", _words(f"--security-opt={opt}")))
    if o.cap_drop:
        c.append(("DropCapability", " ".join(o.cap_drop)))
    if o.shm_size_mib is not None:
        c.append(("ShmSize", f"{o.shm_size_mib}m"))
    if o.ipc is not None:
        # [Container] has no key for the IPC namespace in Podman 5.4.
        c.append(("PodmanArgs", f"--ipc={o.ipc}"))
    c.extend(("Ulimit", ulimit_text(u)) for u in o.ulimits)
    if o.pids_limit is not None:
        c.append(("PidsLimit", str(o.pids_limit)))
    if o.read_only:
        c.append(("ReadOnly", "true"))
    c.extend(("Tmpfs", t) for t in o.tmpfs)
    if o.workdir is not None:
        c.append(("WorkingDir", _words(o.workdir)))
    if o.hostname is not None:
        c.append(("HostName", o.hostname))
    c.extend(("AddHost", h) for h in o.extra_hosts)
    c.extend(("DNS", d) for d in o.dns)
    if o.stop_signal is not None:
        c.append(("StopSignal", o.stop_signal))
    if o.logging is not None:
        c.append(("LogDriver", o.logging.driver))
        c.extend(("LogOpt", _words(f"{k}={v}")) for k, v in o.logging.options.items())
    return c
