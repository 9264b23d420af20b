"""Desired state -> Kubernetes YAML that a cluster and `podman kube play` accept.

A Deployment per workload (a Service beside it when it publishes ports), a
PersistentVolumeClaim per named volume, every object named `<stack>-<name>` and labelled
`io.podform.*`. Each Workload field maps in `_container()`/`_pod()`, in the model's order;
WORKLOAD_FIELDS lists them so a new model field fails tests/test_render.py until it has a line.
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.manifests.model import Desired, Mount, Workload
from reconciler.manifests.ports import parse_port
from reconciler.render.common import (
    Rendering,
    dump_yaml,
    inline_devices,
    is_cdi,
    labels,
    probe_argv,
    split_device,
    split_user,
    ulimit_text,
    visible_env,
    whole_seconds,
    workload_resource,
)

# Every Workload field this target maps or answers with a note (location is not a field of a spec).
WORKLOAD_FIELDS = frozenset(
    {
        "name", "machine", "image", "image_ref", "command", "args", "env", "secrets", "ports",
        "volumes", "devices", "mappings", "memory_mib", "cpus", "restart", "healthcheck",
        "depends_on", "replicas", "init", "stop_timeout_s", "network", "privileged", "cap_add",
        "state", "labels", "options", "env_file_keys", "optional_devices", "networks",
        "network_target", "env_files",
    }
)  # fmt: skip

PVC_SIZE = "1Gi"  # a claim must request a size; podform's named volumes have none (DECISIONS.md)
# Paths under /dev that are directories of device nodes, not a device themselves.
_DEVICE_DIRECTORIES = frozenset({"/dev/dri", "/dev/snd", "/dev/input", "/dev/bus/usb"})
_DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def render_kube(desired: Desired) -> Rendering:
    out = Rendering()
    stack = desired.stack.name
    for machine in sorted(desired.machines):
        out.note(
            f"Machine {machine}",
            "spec",
            "not rendered: a cluster schedules pods on its nodes; give the nodes the GPU instead",
        )
    for name, image in sorted(desired.images.items()):
        if image.build is not None:
            out.note(
                f"Image {name}",
                "spec.build",
                f"not rendered: Kubernetes does not build images; push {image.ref} to a "
                "registry the cluster pulls from (podman kube play uses the local image)",
            )
    for name, net in sorted(desired.networks.items()):
        out.note(
            f"Network {name}",
            "spec",
            f"not rendered ({net.podman_name}): pods share the cluster network; a "
            "NetworkPolicy is the cluster's way to isolate them",
        )
    for name, secret in sorted(desired.secrets.items()):
        out.note(
            f"Secret {name}",
            "spec",
            f"not rendered: the cluster Secret {secret.podman_name} must exist; create it "
            f"with kubectl create secret generic {secret.podman_name} "
            + (
                f"--from-file={secret.podman_name}={secret.file}"
                if secret.file is not None
                else f'--from-literal={secret.podman_name}="${secret.env}"'
            )
            + " (a value is never written)",
        )
    on_stack_network = sorted(n for n, w in desired.workloads.items() if w.network == "default")
    if on_stack_network:
        out.note(
            f"Stack {stack}",
            "network",
            f"the stack network is the cluster network: workload names "
            f"({', '.join(on_stack_network)}) do not resolve there; pods reach a workload "
            f"through its Service {stack}-<workload>, rendered where it publishes ports",
        )
    documents: list[dict[str, Any]] = []
    volumes = sorted(
        {m.source for w in desired.workloads.values() for m in w.volumes if not m.bind}
    )
    for volume in volumes:
        documents.append(_claim(stack, volume))
    for name in sorted(desired.workloads):
        w = desired.workloads[name]
        documents.append(_deployment(desired, w, out))
        service = _service(stack, w, out)
        if service is not None:
            documents.append(service)
    for doc in documents:
        _check_name(doc, out)
    out.files[f"{stack}.yaml"] = _dump(documents)
    return out


def _dump(documents: list[dict[str, Any]]) -> str:
    return dump_yaml(*documents) if documents else "# no workloads declared\n"


def _meta(stack: str, kind: str, name: str, own: dict[str, str] | None = None) -> dict[str, Any]:
    return {"name": f"{stack}-{name}", "labels": labels(stack, kind, name, own)}


def _claim(stack: str, volume: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(stack, "Volume", volume),
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": PVC_SIZE}},
        },
    }


def _deployment(desired: Desired, w: Workload, out: Rendering) -> dict[str, Any]:
    stack = desired.stack.name
    meta = _meta(stack, "Workload", w.name, w.labels)
    selector = {k: v for k, v in meta["labels"].items() if k.startswith("io.podform.")}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            # state: stopped keeps the Deployment and runs no pod.
            "replicas": w.replicas if w.state == "running" else 0,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": dict(meta["labels"])},
                "spec": _pod(desired, w, out),
            },
        },
    }


def _pod(desired: Desired, w: Workload, out: Rendering) -> dict[str, Any]:
    """The pod-level fields; the container's own are in _container()."""
    who = workload_resource(w)
    volumes: dict[str, dict[str, Any]] = {}
    container = _container(desired, w, volumes, out)
    pod: dict[str, Any] = {"containers": [container]}
    # network, network_target: the stack network (default) is the cluster network, where
    # Services give DNS; networks: pods all share the cluster network
    if w.network == "host":
        pod["hostNetwork"] = True
    elif w.network == "networks":
        joined = ", ".join(f"{a.declared} (aliases {', '.join(a.aliases)})" for a in w.networks)
        out.note(
            who,
            "spec.networks",
            f"not rendered ({joined}): pods use the cluster network; other pods reach this "
            "one through its Service",
        )
    elif w.network not in ("bridge", "default"):
        out.note(
            who,
            "spec.network",
            f"{w.network!r} is not rendered: pods use the cluster network",
        )
    _pod_options(w, pod, out)
    # stop_timeout_s
    pod["terminationGracePeriodSeconds"] = whole_seconds(w.stop_timeout_s)
    # restart: a Deployment's pods always restart
    if w.restart not in ("always", "unless-stopped"):
        out.note(
            who,
            "spec.restart",
            f"{w.restart!r} is not rendered: a Deployment always restarts its pods",
        )
    # machine
    if w.machine is not None:
        out.note(
            who,
            "spec.machine",
            f"not rendered ({w.machine!r}): the cluster schedules the pod on any fitting node",
        )
    # depends_on
    if w.depends_on:
        names = ", ".join(d.name for d in w.depends_on)
        out.note(
            who,
            "spec.dependsOn",
            f"not rendered ({names}): Kubernetes starts pods independently; the app must retry",
        )
    # init
    if w.init:
        out.note(who, "spec.init", "not rendered: Kubernetes has no init-process option")
    if volumes:
        pod["volumes"] = list(volumes.values())
    return pod


def _pod_options(w: Workload, pod: dict[str, Any], out: Rendering) -> None:
    """options that Kubernetes sets on the pod: groups, user namespace, IPC, hostname, hosts, DNS."""
    who, o = workload_resource(w), w.options
    groups = [int(g) for g in o.group_add if g.isdigit()]
    if groups:
        pod["securityContext"] = {"supplementalGroups": groups}
    if named := [g for g in o.group_add if not g.isdigit()]:
        out.note(
            who,
            "spec.groupAdd",
            f"{', '.join(named)} not rendered: Kubernetes takes numeric group ids only",
        )
    if o.userns == "host":
        pod["hostUsers"] = True
    elif o.userns is not None:
        out.note(
            who,
            "spec.userns",
            f"{o.userns!r} is not rendered: a pod's user namespace is only hostUsers "
            "(true by default; false gives a private one where the cluster supports it)",
        )
    if o.ipc == "host":
        pod["hostIPC"] = True
    elif o.ipc is not None:
        out.note(
            who, "spec.ipc", f"{o.ipc!r} is not rendered: a pod's IPC is its own or the host's"
        )
    if o.hostname is not None:
        if len(o.hostname) <= 63 and _DNS_LABEL.fullmatch(o.hostname):
            pod["hostname"] = o.hostname
        else:
            out.note(
                who,
                "spec.hostname",
                f"{o.hostname!r} is not rendered: a pod's hostname must be a lower-case DNS label",
            )
    aliases: dict[str, list[str]] = {}
    for entry in o.extra_hosts:
        name, _, address = entry.partition(":")
        if address == "host-gateway":
            out.note(
                who,
                "spec.extraHosts",
                f"{entry!r} is not rendered: a pod has no host-gateway address",
            )
            continue
        aliases.setdefault(address, []).append(name)
    if aliases:
        pod["hostAliases"] = [{"ip": ip, "hostnames": names} for ip, names in aliases.items()]
    if o.dns:
        pod["dnsPolicy"] = "None"
        pod["dnsConfig"] = {"nameservers": list(o.dns)}


def _container(
    desired: Desired, w: Workload, volumes: dict[str, dict[str, Any]], out: Rendering
) -> dict[str, Any]:
    """One container spec: Workload fields in the model's order."""
    stack, who = desired.stack.name, workload_resource(w)
    c: dict[str, Any] = {"name": w.name, "image": w.image_ref}  # name, image_ref
    # image: a declared Image's pull policy; built images and full references: when missing
    image = desired.images.get(w.image) if w.image else None
    c["imagePullPolicy"] = (
        image.pull_policy if image is not None and image.build is None else "IfNotPresent"
    )
    if w.command is not None:
        c["command"] = list(w.command)
    if w.args is not None:
        c["args"] = list(w.args)
    # env (mappings' env already merged in), then secrets as env
    # env_files, env_file_keys: values read from env files are never written
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in visible_env(w).items()]
    if w.env_file_keys:
        out.note(
            who,
            "spec.envFile",
            f"not rendered ({', '.join(w.env_file_keys)} from {', '.join(map(str, w.env_files))}"
            "): values from env files are never written; put them in a ConfigMap or Secret",
        )
    mounts: list[dict[str, Any]] = []
    for s in w.secrets:
        secret = s.podman_name  # the cluster Secret, named like the Podman secret
        if not _DNS_SUBDOMAIN.fullmatch(secret):
            out.note(
                who,
                "spec.secrets",
                f"secret {secret!r} is not a valid Kubernetes name: rename it in the cluster",
            )
        if s.env:
            env.append(
                {"name": s.env, "valueFrom": {"secretKeyRef": {"name": secret, "key": secret}}}
            )
        else:
            volume = f"secret-{secret}".lower().replace("_", "-").replace(".", "-")[:63]
            volumes[volume] = {"name": volume, "secret": {"secretName": secret}}
            target = s.target or f"/run/secrets/{secret}"
            if not target.startswith("/"):
                target = f"/run/secrets/{target}"
            mounts.append(
                {"name": volume, "mountPath": target, "subPath": secret, "readOnly": True}
            )
    if env:
        c["env"] = env
    # ports: containerPort + hostPort/hostIP (the Service is rendered beside the Deployment)
    ports: list[dict[str, Any]] = []
    for text in w.ports:
        p = parse_port(text)
        port: dict[str, Any] = {"containerPort": p.container_port, "protocol": p.protocol.upper()}
        if w.network == "host":
            # The pod listens on the node itself: a cluster refuses a hostPort that differs.
            if p.host_port not in (None, p.container_port):
                out.note(
                    who,
                    "spec.ports",
                    f"{text!r}: with the host network the container listens on "
                    f"{p.container_port} itself; the mapping to {p.host_port} is not rendered",
                )
        elif p.host_port is not None:
            port["hostPort"] = p.host_port
            if p.host_ip:
                port["hostIP"] = p.host_ip
        else:
            out.note(
                who,
                "spec.ports",
                f"{text!r}: a host port chosen at random has no Kubernetes form; "
                "reach it through the Service",
            )
        ports.append(port)
    if ports:
        c["ports"] = ports
    # volumes: named -> PersistentVolumeClaim, bind -> hostPath
    for i, m in enumerate(w.volumes):
        mounts.append(_mount(stack, w, i, m, volumes, out))
    # devices and mappings: a mapping's kubernetes.resources, else a hostPath device
    limits: dict[str, Any] = {}
    for name in w.mappings:
        mapping = desired.mappings[name]
        if mapping.kubernetes_resources:
            limits.update(mapping.kubernetes_resources)
        else:
            for device in mapping.devices:
                if device in w.optional_devices:
                    # optional_devices: a hostPath CharDevice must exist, or the pod fails
                    out.note(
                        who,
                        "spec.devices",
                        f"{device} (DeviceMapping {name}) is optional and not rendered: a "
                        "hostPath device must exist on every node; set kubernetes.resources",
                    )
                    continue
                _device(w, device, f"DeviceMapping {name}", volumes, mounts, out)
    for device in inline_devices(w, desired.mappings):
        _device(w, device, "spec.devices", volumes, mounts, out)
    _container_options(w, c, volumes, mounts, out)
    if mounts:
        c["volumeMounts"] = mounts
    # memory_mib, cpus
    if w.memory_mib is not None:
        limits["memory"] = f"{w.memory_mib}Mi"
    if w.cpus is not None:
        limits["cpu"] = str(int(w.cpus)) if w.cpus.is_integer() else f"{round(w.cpus * 1000)}m"
    if limits:
        c["resources"] = {"limits": dict(sorted(limits.items()))}
    # healthcheck -> livenessProbe (+ startPeriod -> startupProbe); GPU probe -> startupProbe
    c.update(_probes(desired, w, out))
    # privileged, cap_add, options (user, capDrop, securityOpt, readOnly)
    security: dict[str, Any] = {}
    if w.privileged:
        security["privileged"] = True
    if w.cap_add:
        security["capabilities"] = {"add": [_capability(cap) for cap in w.cap_add]}
    security.update(_security(w, out))
    if w.options.cap_drop:
        caps = security.setdefault("capabilities", {})
        caps["drop"] = [_capability(cap) for cap in w.options.cap_drop]
    if security:
        c["securityContext"] = security
    # replicas, state, labels, restart, depends_on, init, network, machine: in _deployment/_pod
    return c


def _container_options(
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
            if key == "size" and (size := _quantity(value)) is not None:
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


def _quantity(size: str) -> str | None:
    """A tmpfs size (`64m`, `1g`, bytes) as a Kubernetes quantity; None for percentages."""
    m = re.fullmatch(r"([0-9]+)([kmgtKMGT]?)", size)
    return None if m is None else m.group(1) + _SIZE_UNITS[m.group(2).lower()]


def _security(w: Workload, out: Rendering) -> dict[str, Any]:
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


def _mount(
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


def _device(
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


def _probes(desired: Desired, w: Workload, out: Rendering) -> dict[str, Any]:
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


def _capability(cap: str) -> str:
    return cap.upper().removeprefix("CAP_")


def _service(stack: str, w: Workload, out: Rendering) -> dict[str, Any] | None:
    ports: dict[tuple[int, str], dict[str, Any]] = {}
    for text in w.ports:
        p = parse_port(text)
        key = (p.container_port, p.protocol)
        ports.setdefault(
            key,
            {
                "name": f"{p.protocol}-{p.container_port}",
                "port": p.container_port,
                "targetPort": p.container_port,
                "protocol": p.protocol.upper(),
            },
        )
    if not ports:
        return None
    meta = _meta(stack, "Workload", w.name, w.labels)
    selector = {k: v for k, v in meta["labels"].items() if k.startswith("io.podform.")}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {"selector": selector, "ports": list(ports.values())},
    }


def _check_name(doc: dict[str, Any], out: Rendering) -> None:
    name = doc["metadata"]["name"]
    pattern = _DNS_LABEL if doc["kind"] == "Service" else _DNS_SUBDOMAIN
    if len(name) > 63 or not pattern.fullmatch(name):
        out.note(
            f"{doc['kind']} {name}",
            "metadata.name",
            "is not a valid Kubernetes name (a Service needs a DNS label of at most 63 "
            "characters starting with a letter): shorten the stack or resource name",
        )
