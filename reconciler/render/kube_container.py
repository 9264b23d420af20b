"""Kubernetes container details for render/kube.py: options, security context, volume and device
mounts, probes. One Workload field at a time, each with its note when Kubernetes cannot say it.
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.manifests.model import Desired, Mount, Workload
from reconciler.render.common import (
    Rendering,
    is_cdi,
    probe_argv,
    split_device,
    split_user,
    ulimit_text,
    whole_seconds,
    workload_resource,
)

# Paths under /dev that are directories of device nodes, not a device themselves.
_DEVICE_DIRECTORIES = frozenset({"/dev/dri", "/dev/snd", "/dev/input", "/dev/bus/usb"})


def container_options(
    w: Workload,
    c: dict[str, Any],
    volumes: dict[str, dict[str, Any]],
    mounts: list[dict[str, Any]],
    out: Rendering,
) -> None:
    """options set on the container: workdir, /dev/shm and tmpfs as memory, and the notes."""
    who, o = workload_resource(w), w.options
    if o.workdir is not None:
        c["workingDir"] = o.workdir
    if o.shm_size_mib is not None:
        volumes["dshm"] = {
            "name": "dshm",
            "emptyDir": {"medium": "Memory", "sizeLimit": f"{o.shm_size_mib}Mi"},
        }
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    for i, entry in enumerate(o.tmpfs):
        path, _, opts = entry.partition(":")
        empty: dict[str, Any] = {"medium": "Memory"}
        rest = []
        for opt in filter(None, opts.split(",")):
            key, _, value = opt.partition("=")
            if key == "size" and (size := quantity(value)) is not None:
                empty["sizeLimit"] = size
            else:
                rest.append(opt)
        if rest:
            out.note(
                who, "spec.tmpfs", f"{entry}: options {','.join(rest)} have no Kubernetes form"
            )
        volumes[f"tmpfs-{i}"] = {"name": f"tmpfs-{i}", "emptyDir": empty}
        mounts.append({"name": f"tmpfs-{i}", "mountPath": path})
    for fld, value, why in (
        ("ulimits", ", ".join(ulimit_text(u) for u in o.ulimits), "the node's runtime sets them"),
        ("pidsLimit", "" if o.pids_limit is None else str(o.pids_limit), "the kubelet sets it"),
        ("stopSignal", o.stop_signal or "", "Kubernetes 1.31 sends the image's STOPSIGNAL"),
        ("logging", o.logging.driver if o.logging else "", "the node's runtime decides logging"),
    ):
        if value:
            out.note(who, f"spec.{fld}", f"not rendered ({value}): {why}")


_SIZE_UNITS = {"": "", "k": "Ki", "m": "Mi", "g": "Gi", "t": "Ti"}


def quantity(size: str) -> str | None:
    """A tmpfs size (`64m`, `1g`, bytes) as a Kubernetes quantity; None for percentages."""
    m = re.fullmatch(r"([0-9]+)([kmgtKMGT]?)", size)
    return None if m is None else m.group(1) + _SIZE_UNITS[m.group(2).lower()]


def security(w: Workload, out: Rendering) -> dict[str, Any]:
    """options.user and securityOpt as a container securityContext (what Kubernetes has)."""
    who, o = workload_resource(w), w.options
    security: dict[str, Any] = {}
    if o.user is not None:
        user, group = split_user(o.user)
        named = []
        for key, value in (("runAsUser", user), ("runAsGroup", group)):
            if value is None:
                continue
            if value.isdigit():
                security[key] = int(value)
            else:
                named.append(value)
        if named:
            out.note(
                who,
                "spec.user",
                f"{', '.join(named)} not rendered: Kubernetes takes numeric user and group ids",
            )
    for opt in o.security_opt:
        why = "Kubernetes has no such security setting"
        if opt == "no-new-privileges" and not w.privileged:
            security["allowPrivilegeEscalation"] = False
            continue
        if opt == "seccomp=unconfined":
            security["seccompProfile"] = {"type": "Unconfined"}
            continue
        if opt == "apparmor=unconfined":
            security["appArmorProfile"] = {"type": "Unconfined"}
            continue
        if opt == "no-new-privileges":
            why = "a cluster refuses allowPrivilegeEscalation: false with privileged"
        elif opt == "label=disable":
            why = "Kubernetes cannot switch SELinux labelling off (seLinuxOptions sets a type)"
        out.note(who, "spec.securityOpt", f"{opt} is not rendered: {why}")
    if o.read_only:
        security["readOnlyRootFilesystem"] = True
    return security


def mount(
    stack: str,
    w: Workload,
    index: int,
    m: Mount,
    volumes: dict[str, dict[str, Any]],
    out: Rendering,
) -> dict[str, Any]:
    if m.bind:
        name = f"host-{index}"
        volumes[name] = {"name": name, "hostPath": {"path": m.source}}
    else:
        name = m.source
        volumes[name] = {"name": name, "persistentVolumeClaim": {"claimName": f"{stack}-{name}"}}
    mount: dict[str, Any] = {"name": name, "mountPath": m.target}
    if "ro" in m.options:
        mount["readOnly"] = True
    dropped = [o for o in m.options if o not in ("ro", "rw")]
    if dropped:
        out.note(
            workload_resource(w),
            "spec.volumes",
            f"{m.source}:{m.target}: options {','.join(dropped)} have no Kubernetes form",
        )
    return mount


def device(
    w: Workload,
    device: str,
    source: str,
    volumes: dict[str, dict[str, Any]],
    mounts: list[dict[str, Any]],
    out: Rendering,
) -> None:
    who = workload_resource(w)
    if is_cdi(device):
        out.note(
            who,
            "spec.devices",
            f"{device} ({source}) is not rendered: a CDI name has no Kubernetes form; set "
            "kubernetes.resources on a DeviceMapping (e.g. nvidia.com/gpu: 1)",
        )
        return
    host, container, perms = split_device(device)
    name = "dev" + re.sub(r"[^a-z0-9]+", "-", host.lower().removeprefix("/dev"))[:59].rstrip("-")
    if host in _DEVICE_DIRECTORIES:
        volumes[name] = {"name": name, "hostPath": {"path": host, "type": "Directory"}}
        out.note(
            who,
            "spec.devices",
            f"{host} ({source}) is a directory of devices: rendered as a hostPath mount, which "
            "gives no device access without privileged; set kubernetes.resources on a "
            "DeviceMapping (e.g. squat.ai/dri or gpu.intel.com/i915)",
        )
    else:
        volumes[name] = {"name": name, "hostPath": {"path": host, "type": "CharDevice"}}
    if perms not in (None, "rwm", "rw"):
        out.note(who, "spec.devices", f"{device}: permissions {perms} have no Kubernetes form")
    mounts.append({"name": name, "mountPath": container})


def probes(desired: Desired, w: Workload, out: Rendering) -> dict[str, Any]:
    who = workload_resource(w)
    probes: dict[str, Any] = {}
    hc = w.healthcheck
    gpu = [(n, desired.mappings[n].probe) for n in w.mappings if desired.mappings[n].probe]
    if hc is not None:
        liveness: dict[str, Any] = {
            "exec": {"command": list(hc.command)},
            "periodSeconds": whole_seconds(hc.interval_s),
            "timeoutSeconds": whole_seconds(hc.timeout_s),
            "failureThreshold": max(1, hc.retries),
        }
        if hc.start_period_s > 0 and gpu:
            liveness["initialDelaySeconds"] = whole_seconds(hc.start_period_s)
        elif hc.start_period_s > 0:
            period = whole_seconds(hc.interval_s)
            probes["startupProbe"] = {
                "exec": {"command": list(hc.command)},
                "periodSeconds": period,
                "timeoutSeconds": whole_seconds(hc.timeout_s),
                "failureThreshold": -(-whole_seconds(hc.start_period_s) // period)
                + max(1, hc.retries),
            }
        probes["livenessProbe"] = liveness
    for i, (name, probe) in enumerate(gpu):
        assert probe is not None
        if i > 0:
            out.note(
                f"DeviceMapping {name}",
                "spec.probe",
                f"not rendered for {who}: a container has one startup probe "
                f"(that of DeviceMapping {gpu[0][0]})",
            )
            continue
        argv, shell = probe_argv(probe)
        if shell:
            out.note(
                f"DeviceMapping {name}",
                "spec.probe.expect",
                "checked through `sh -c ... | grep -F` in the startup probe: the image needs sh "
                "and grep",
            )
        probes["startupProbe"] = {
            "exec": {"command": argv},
            "periodSeconds": 10,
            "timeoutSeconds": whole_seconds(probe.timeout_s),
            "failureThreshold": 3,
        }
    return dict(sorted(probes.items()))


def capability(cap: str) -> str:
    return cap.upper().removeprefix("CAP_")
