"""Desired state -> Kubernetes YAML that a cluster and `podman kube play` accept.

A Deployment per workload (a Service beside it when it publishes ports), a
PersistentVolumeClaim per named volume, every object named `<stack>-<name>` and labelled
`io.podform.*`. Each Workload field maps in `_container()`/`_pod()` (the details in
kube_container.py), in the model's order;
WORKLOAD_FIELDS lists them so a new model field fails tests/test_render.py until it has a line.
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.manifests.model import Desired, Workload
from reconciler.manifests.ports import parse_port
from reconciler.render import kube_container
from reconciler.render.common import (
    Rendering,
    dump_yaml,
    inline_devices,
    labels,
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
        mounts.append(kube_container.mount(stack, w, i, m, volumes, out))
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
                kube_container.device(w, device, f"DeviceMapping {name}", volumes, mounts, out)
    for device in inline_devices(w, desired.mappings):
        kube_container.device(w, device, "spec.devices", volumes, mounts, out)
    kube_container.container_options(w, c, volumes, mounts, out)
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
    c.update(kube_container.probes(desired, w, out))
    # privileged, cap_add, options (user, capDrop, securityOpt, readOnly)
    security: dict[str, Any] = {}
    if w.privileged:
        security["privileged"] = True
    if w.cap_add:
        security["capabilities"] = {"add": [kube_container.capability(cap) for cap in w.cap_add]}
    security.update(kube_container.security(w, out))
    if w.options.cap_drop:
        caps = security.setdefault("capabilities", {})
        caps["drop"] = [kube_container.capability(cap) for cap in w.options.cap_drop]
    if security:
        c["securityContext"] = security
    # replicas, state, labels, restart, depends_on, init, network, machine: in _deployment/_pod
    return c


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
