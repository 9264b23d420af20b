"""libpod SpecGenerator for a workload's container: container_spec() and its network and options
fields (beside podman_api, which sends it).

libpod's SpecGenerator names, as the podman CLI fills them (pkg/specgenutil): what `podman
create --security-opt/--ulimit/--log-opt ...` would send is what podform sends, so `podman
inspect` shows the same thing for both.
"""

from __future__ import annotations

from typing import Any

from reconciler.manifests.container_opts import LINUX_SIGNALS, ContainerOptions
from reconciler.manifests.model import Workload
from reconciler.manifests.ports import parse_port

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


def container_spec(name: str, w: Workload, image_id: str, labels: dict[str, str]) -> dict[str, Any]:
    """libpod SpecGenerator for one replica of a workload."""
    spec: dict[str, Any] = {
        "name": name,
        "image": image_id,
        "labels": labels,
        "env": w.env,
        "init": w.init,
        "stop_timeout": max(0, round(w.stop_timeout_s)),
        "privileged": w.privileged,
        "cap_add": list(w.cap_add),
        "devices": [{"path": d} for d in w.devices],
        "portmappings": [_port(p) for p in w.ports],
        "mounts": [
            {
                "destination": m.target,
                "source": m.source,
                "type": "bind",
                "options": ["rbind", *m.options],
            }
            for m in w.volumes
            if m.bind
        ],
        "volumes": [
            {"Name": m.source, "Dest": m.target, "Options": list(m.options)}
            for m in w.volumes
            if not m.bind
        ],
    }
    spec["mounts"] += [tmpfs_mount(t) for t in w.options.tmpfs]
    if w.command is not None:
        spec["entrypoint"] = list(w.command)
    if w.args is not None:
        spec["command"] = list(w.args)
    if w.restart != "no":
        spec["restart_policy"] = w.restart
    if w.secrets:
        spec["secrets"] = [
            {"Source": s.podman_name, "Target": s.target or ""} for s in w.secrets if not s.env
        ]
        spec["secret_env"] = {s.env: s.podman_name for s in w.secrets if s.env}
    limits: dict[str, Any] = {}
    if w.memory_mib:
        limits["memory"] = {"limit": w.memory_mib * 1024 * 1024}
    if w.cpus:
        limits["cpu"] = {"quota": int(w.cpus * 100_000), "period": 100_000}
    limits.update(pids_limit(w.options))
    if limits:
        spec["resource_limits"] = limits
    if w.healthcheck:
        hc = w.healthcheck
        spec["healthconfig"] = {
            "Test": ["CMD", *hc.command],
            "Interval": int(hc.interval_s * 1e9),
            "Timeout": int(hc.timeout_s * 1e9),
            "Retries": hc.retries,
            "StartPeriod": int(hc.start_period_s * 1e9),
        }
    spec.update(network_spec(w))
    spec.update(options_spec(w.options))
    return spec


def _port(text: str) -> dict[str, Any]:
    p = parse_port(text)
    out: dict[str, Any] = {"container_port": p.container_port, "protocol": p.protocol}
    if p.host_ip:
        out["host_ip"] = p.host_ip
    if p.host_port is not None:
        out["host_port"] = p.host_port
    return out


def missing_optional_device(message: str, optional: set[str]) -> str | None:
    """The optional device Podman could not find ("stat /dev/kfd: no such file or directory")."""
    for entry in optional:
        host = entry.partition(":")[0]
        if f"stat {host}: no such file or directory" in message:
            return entry
    return None
