"""SpecGenerator fields for a Workload's network and ContainerOptions (beside podman_api).

libpod's SpecGenerator names, as the podman CLI fills them (pkg/specgenutil): what `podman
create --security-opt/--ulimit/--log-opt ...` would send is what podform sends, so `podman
inspect` shows the same thing for both.
"""

from __future__ import annotations

from typing import Any

from reconciler.manifests.container_opts import LINUX_SIGNALS, ContainerOptions
from reconciler.manifests.model import Workload

_UNLIMITED = 2**64 - 1  # POSIXRlimit values are uint64; -1 means "no limit"
_DECIMAL = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def network_spec(w: Workload) -> dict[str, Any]:
    """netns (+ Networks with aliases) for the workload's network mode."""
    if w.networks:
        return {
            "netns": {"nsmode": "bridge"},
            "Networks": {a.network: {"aliases": list(a.aliases)} for a in w.networks},
        }
    mode = w.network
    if mode.startswith("ns:"):
        return {"netns": {"nsmode": "path", "value": mode.removeprefix("ns:")}}
    if mode.startswith("container:"):
        return {"netns": {"nsmode": "container", "value": w.network_target}}
    return {"netns": {"nsmode": mode}}  # bridge | none | host | pasta | slirp4netns | private


def options_spec(o: ContainerOptions) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if o.user is not None:
        spec["user"] = o.user
    annotations: dict[str, str] = {}
    if "keep-groups" in o.group_add:
        # What `podman create --group-add keep-groups` sends: an annotation crun reads.
        annotations["run.oci.keep_original_groups"] = "1"
    elif o.group_add:
        spec["groups"] = list(o.group_add)
    if o.userns is not None:
        spec["userns"] = {"nsmode": o.userns}
    spec.update(_security(o.security_opt, annotations))
    if annotations:
        spec["annotations"] = annotations
    if o.cap_drop:
        spec["cap_drop"] = list(o.cap_drop)
    if o.shm_size_mib is not None:
        spec["shm_size"] = o.shm_size_mib * 1024 * 1024
    if o.ipc is not None:
        if o.ipc.startswith("container:"):
            spec["ipcns"] = {"nsmode": "container", "value": o.ipc.removeprefix("container:")}
        else:
            spec["ipcns"] = {"nsmode": o.ipc}
    if o.ulimits:
        spec["r_limits"] = [
            {"type": u.name, "soft": _rlimit(u.soft), "hard": _rlimit(u.hard)} for u in o.ulimits
        ]
    if o.read_only:
        spec["read_only_filesystem"] = True
    if o.workdir is not None:
        spec["work_dir"] = o.workdir
    if o.hostname is not None:
        spec["hostname"] = o.hostname
    if o.extra_hosts:
        spec["hostadd"] = list(o.extra_hosts)
    if o.dns:
        spec["dns_server"] = list(o.dns)
    if o.stop_signal is not None:
        spec["stop_signal"] = LINUX_SIGNALS[o.stop_signal]
    if o.logging is not None:
        spec["log_configuration"] = _logging(o.logging.driver, o.logging.options)
    return spec


def pids_limit(o: ContainerOptions) -> dict[str, Any]:
    """The resource_limits part for pidsLimit (merged with memory/cpu by the caller)."""
    return {} if o.pids_limit is None else {"pids": {"limit": o.pids_limit}}


def _rlimit(value: int) -> int:
    return _UNLIMITED if value < 0 else value


def _security(options: tuple[str, ...], annotations: dict[str, str]) -> dict[str, Any]:
    """The fields and the inspect annotations (io.podman.annotations.*) the CLI sets for
    --security-opt, so `podman inspect` shows HostConfig.SecurityOpt as for the CLI."""
    spec: dict[str, Any] = {}
    for opt in options:
        key, _, value = opt.partition("=")
        if key == "label":
            spec.setdefault("selinux_opts", []).append(value)
            annotations["io.podman.annotations.label"] = ",label=".join(spec["selinux_opts"])
        elif key == "no-new-privileges":
            spec["no_new_privileges"] = True
        elif key == "seccomp":
            spec["seccomp_profile_path"] = value
            annotations["io.podman.annotations.seccomp"] = value
        elif key == "apparmor":
            spec["apparmor_profile"] = value
            annotations["io.podman.annotations.apparmor"] = value
        elif key == "mask":
            spec.setdefault("mask", []).extend(value.split(":"))
        elif key == "unmask":
            spec.setdefault("unmask", []).extend(value.split(":"))
    return spec


def tmpfs_mount(text: str) -> dict[str, Any]:
    path, _, options = text.partition(":")
    return {
        "destination": path,
        "type": "tmpfs",
        "source": "tmpfs",
        "options": [o for o in options.split(",") if o],
    }


def _logging(driver: str, options: dict[str, str]) -> dict[str, Any]:
    """As `--log-driver/--log-opt`: path and max-size have their own fields, the rest are options."""
    out: dict[str, Any] = {"driver": driver}
    rest = {}
    for key, value in options.items():
        if key == "path":
            out["path"] = value
        elif key == "max-size":
            out["size"] = human_size(value)
        else:
            rest[key] = value
    if rest:
        out["options"] = rest
    return out


def human_size(text: str) -> int:
    """docker/go-units FromHumanSize: decimal units, `10m` = 10 000 000 bytes."""
    t = text.strip().lower().removesuffix("b")
    unit = t[-1] if t and t[-1] in _DECIMAL else ""
    number = t[: len(t) - len(unit)] if unit else t
    return int(float(number) * _DECIMAL[unit])
