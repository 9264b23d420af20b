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

from reconciler.engine.hashing import LABEL_REPLICA
from reconciler.manifests.model import Desired, Image, Workload
from reconciler.render.common import Rendering, duration, labels, whole_seconds, workload_resource

WORKLOAD_FIELDS = frozenset(
    {
        "name", "machine", "image", "image_ref", "command", "args", "env", "secrets", "ports",
        "volumes", "devices", "mappings", "memory_mib", "cpus", "restart", "healthcheck",
        "depends_on", "replicas", "init", "stop_timeout_s", "network", "privileged", "cap_add",
        "state", "labels",
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
    c.extend(("Environment", _words(f"{k}={v}")) for k, v in w.env.items())
    for s in w.secrets:
        if s.env:
            c.append(("Secret", f"{s.name},type=env,target={s.env}"))
        elif s.target:
            c.append(("Secret", f"{s.name},type=mount,target={_escape(s.target)}"))
        else:
            c.append(("Secret", s.name))
    c.extend(("PublishPort", port) for port in w.ports)
    for m in w.volumes:
        source = _escape(m.source) if m.bind else f"{stack}-{m.source}.volume"
        c.append(
            ("Volume", ":".join([source, m.target, *([",".join(m.options)] if m.options else [])]))
        )
    # devices (mappings are expanded into them; their env is in env above)
    c.extend(("AddDevice", d) for d in w.devices)
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
    if w.network != "default":
        network = w.network
        if network.startswith("container:"):
            # The first replica's network namespace, which must exist first.
            joined = f"{stack}-{network.removeprefix('container:')}-1"
            network = f"container:{joined}"
            if ("Requires", f"{joined}.service") not in unit:
                unit.extend([("Requires", f"{joined}.service"), ("After", f"{joined}.service")])
        c.append(("Network", network))
    if w.privileged:
        # Quadlet has no key for --privileged: PodmanArgs passes it through.
        c.append(("PodmanArgs", "--privileged"))
    if w.cap_add:
        c.append(("AddCapability", " ".join(w.cap_add)))
    c.extend(
        _label_keys(labels(stack, "Workload", w.name, w.labels) | {LABEL_REPLICA: str(replica)})
    )
    sections = [("Unit", unit), ("Container", c), ("Service", service)]
    # state: a stopped workload is installed but not started at boot
    if w.state == "running":
        sections.append(("Install", [("WantedBy", "default.target")]))
    return _unit(stack, sections)
