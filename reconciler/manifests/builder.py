"""Validated documents -> Desired: references resolved, every problem located.

The last step of manifests/ (loader -> schema -> policy -> builder). It turns each kind's
documents into model.py's frozen values in podform's units (MiB, GiB, seconds, absolute paths)
with defaults applied, checks references (machines, images, mappings, networks, secrets,
dependencies) and dependency cycles, and raises InvalidInput with every problem, each at the
location of the offending field.
"""

from __future__ import annotations

import graphlib
from collections.abc import Sequence
from typing import Any

from reconciler.errors import InvalidInput, Issue
from reconciler.manifests import units
from reconciler.manifests.container_opts import container_options
from reconciler.manifests.jsonpath import format_json_path
from reconciler.manifests.loader import Document
from reconciler.manifests.model import (
    Build,
    Dependency,
    Desired,
    DeviceMapping,
    Healthcheck,
    Image,
    Machine,
    Mount,
    Probe,
    SecretRef,
    Stack,
    Workload,
)
from reconciler.manifests.model_extras import (
    Network,
    Secret,
    build_network,
    build_secret,
    env_files,
    label_findings,
    network_of,
    port_findings,
)
from reconciler.manifests.policy import check_policy, is_bind_source, normalize_host_path
from reconciler.manifests.ports import host_port_clashes


def build_desired(docs: Sequence[Document]) -> Desired:
    """Validated documents -> Desired. Raises InvalidInput with every problem found."""
    return _Builder(docs).build()


class _Builder:
    def __init__(self, docs: Sequence[Document]) -> None:
        self.docs = docs
        self.issues: list[Issue] = []
        self.by_kind: dict[str, dict[str, Document]] = {}
        self.stack = Stack()
        self.networks: dict[str, Network] = {}
        self.secrets: dict[str, Secret] = {}

    def issue(self, doc: Document, path: Sequence[str | int], message: str) -> None:
        self.issues.append(Issue(message, doc.locate(path), format_json_path(path), doc.subject))

    def findings(self, doc: Document, found: Sequence[tuple[Sequence[str | int], str]]) -> None:
        for path, message in found:
            self.issue(doc, path, message)

    def build(self) -> Desired:
        self._index()
        stack = self._stack()
        self.issues.extend(check_policy(self.docs, allow_privileged=stack.allow_privileged))
        self.stack = stack
        for doc in self.docs:
            self.findings(doc, label_findings(doc))
        machines = {n: _machine(d) for n, d in self.by_kind.get("Machine", {}).items()}
        mappings = {n: _mapping(d) for n, d in self.by_kind.get("DeviceMapping", {}).items()}
        images = {n: self._image(d, machines) for n, d in self.by_kind.get("Image", {}).items()}
        self.networks = {}
        for n, d in self.by_kind.get("Network", {}).items():
            self.networks[n], found = build_network(d, stack.name, stack.labels)
            self.findings(d, found)
        self.secrets = {}
        for n, d in self.by_kind.get("Secret", {}).items():
            self.secrets[n], found = build_secret(d, stack.name, stack.labels)
            self.findings(d, found)
        workloads = {
            n: self._workload(d, machines, images, mappings)
            for n, d in self.by_kind.get("Workload", {}).items()
        }
        self._check_cycles(workloads)
        self._check_host_ports(workloads)
        if self.issues:
            raise InvalidInput(self.issues)
        return Desired(
            stack,
            machines,
            images,
            mappings,
            workloads,
            tuple(sorted({d.file for d in self.docs})),
            self.networks,
            self.secrets,
        )

    def _index(self) -> None:
        for doc in self.docs:
            seen = self.by_kind.setdefault(doc.kind, {})
            if doc.name in seen:
                first = seen[doc.name]
                self.issue(
                    doc,
                    ["metadata", "name"],
                    f"{doc.subject} is declared twice (first at {first.locate(['metadata', 'name'])})",
                )
                continue
            seen[doc.name] = doc

    def _stack(self) -> Stack:
        stacks = list(self.by_kind.get("Stack", {}).values())
        for extra in stacks[1:]:
            self.issue(
                extra,
                ["kind"],
                f"only one Stack may be declared (first at {stacks[0].locate(['kind'])})",
            )
        if not stacks:
            return Stack()
        doc = stacks[0]
        spec = doc.data.get("spec") or {}
        policy = spec.get("policy") or {}
        return Stack(
            doc.name,
            bool(spec.get("prune", False)),
            bool(policy.get("allowPrivileged", False)),
            doc.locate([]),
            _labels(doc),
        )

    def _machine_ref(
        self, doc: Document, spec: dict[str, Any], machines: dict[str, Machine]
    ) -> str | None:
        name = spec.get("machine")
        if name is not None and name not in machines:
            self.issue(doc, ["spec", "machine"], f"unknown Machine {name!r}{_known(machines)}")
        return name if isinstance(name, str) else None

    def _image(self, doc: Document, machines: dict[str, Machine]) -> Image:
        spec = doc.data.get("spec") or {}
        build = spec.get("build")
        pull = spec.get("pull") or {}
        return Image(
            name=doc.name,
            ref=spec.get("ref") or f"localhost/{doc.name}:latest",
            machine=self._machine_ref(doc, spec, machines),
            build=_build(doc, build) if build else None,
            pull_policy=pull.get("policy", "IfNotPresent"),
            labels=self.stack.labels | _labels(doc),
            location=doc.locate([]),
        )

    def _workload(
        self,
        doc: Document,
        machines: dict[str, Machine],
        images: dict[str, Image],
        mappings: dict[str, DeviceMapping],
    ) -> Workload:
        spec: dict[str, Any] = doc.data.get("spec") or {}
        machine = self._machine_ref(doc, spec, machines)
        image_name, image_ref = self._image_ref(doc, spec["image"], machine, images)
        env: dict[str, str] = {}
        devices: list[str] = []
        optional: list[str] = []
        used: list[str] = []
        for i, entry in enumerate(spec.get("devices", [])):
            if entry in mappings:
                mapping = mappings[entry]
                used.append(entry)
                devices.extend(mapping.devices)
                optional.extend(mapping.optional)
                env.update(mapping.env)
            elif entry.startswith("/") or "=" in entry:
                devices.append(entry)
            else:
                self.issue(
                    doc,
                    ["spec", "devices", i],
                    f"unknown DeviceMapping {entry!r}{_known(mappings)}",
                )
        file_env, found = env_files(spec, doc.base_dir)
        self.findings(doc, found)
        env.update(file_env)
        env.update(spec.get("env", {}))
        depends = tuple(_dependency(d) for d in spec.get("dependsOn", []))
        for i, dep in enumerate(depends):
            dependency = self.by_kind.get("Workload", {}).get(dep.name)
            if dependency is None:
                self.issue(doc, ["spec", "dependsOn", i], f"unknown Workload {dep.name!r}")
            elif dep.condition == "healthy" and not (dependency.data.get("spec") or {}).get(
                "healthcheck"
            ):
                self.issue(
                    doc,
                    ["spec", "dependsOn", i],
                    f"condition healthy needs a healthcheck on Workload {dep.name!r} (it has "
                    "none, so it would never report healthy); add one there or use condition "
                    "started",
                )
        resources = spec.get("resources") or {}
        hc = spec.get("healthcheck")
        replicas = spec.get("replicas", 1)
        self.findings(doc, port_findings(spec, replicas))
        first_container = {
            name: f"{self.stack.name}-{name}-1" for name in self.by_kind.get("Workload", {})
        }
        mode, attachments, target, found = network_of(
            spec, doc.name, self.stack.name, self.networks, first_container
        )
        self.findings(doc, found)
        options, found = container_options(spec, first_container)
        self.findings(doc, found)
        # Joining another workload's namespaces needs its container first.
        joined = [
            v.removeprefix("container:")
            for v in (mode, spec.get("ipc", ""))
            if v.startswith("container:")
        ]
        known = {d.name for d in depends}
        depends += tuple(
            Dependency(n, "started")
            for n in dict.fromkeys(joined)
            if n in first_container and n not in known and n != doc.name
        )
        secrets = tuple(
            SecretRef(
                s["name"],
                s.get("env"),
                s.get("target"),
                self.secrets[s["name"]].podman_name if s["name"] in self.secrets else s["name"],
                s["name"] in self.secrets,
            )
            for s in spec.get("secrets", [])
        )
        return Workload(
            name=doc.name,
            machine=machine,
            image=image_name,
            image_ref=image_ref,
            command=tuple(spec["command"]) if "command" in spec else None,
            args=tuple(spec["args"]) if "args" in spec else None,
            env=env,
            secrets=secrets,
            ports=tuple(str(p) for p in spec.get("ports", [])),
            volumes=tuple(_mount(doc, v) for v in spec.get("volumes", [])),
            devices=tuple(dict.fromkeys(devices)),
            mappings=tuple(used),
            memory_mib=units.mebibytes(resources["memory"]) if "memory" in resources else None,
            cpus=float(resources["cpus"]) if "cpus" in resources else None,
            restart=spec.get("restart", "no"),
            healthcheck=_healthcheck(hc) if hc else None,
            depends_on=depends,
            replicas=replicas,
            init=spec.get("init", False),
            stop_timeout_s=units.seconds(spec.get("stopTimeout", "10s")),
            network=mode,
            privileged=spec.get("privileged", False),
            cap_add=tuple(spec.get("capAdd", [])),
            state=spec.get("state", "running"),
            labels=self.stack.labels | _labels(doc),
            location=doc.locate([]),
            options=options,
            env_file_keys=tuple(sorted(k for k in file_env if k not in spec.get("env", {}))),
            optional_devices=tuple(d for d in dict.fromkeys(optional)),
            networks=attachments,
            network_target=target,
            env_files=tuple(
                normalize_host_path(f, doc.base_dir) for f in spec.get("envFile") or ()
            ),
        )

    def _image_ref(
        self, doc: Document, value: str, machine: str | None, images: dict[str, Image]
    ) -> tuple[str | None, str]:
        if value in images:
            image = images[value]
            if image.machine != machine:
                where = f"machine {image.machine!r}" if image.machine else "the default connection"
                here = f"machine {machine!r}" if machine else "the default connection"
                self.issue(
                    doc,
                    ["spec", "image"],
                    f"Image {value!r} is built on {where} but this workload runs on {here}",
                )
            return value, image.ref
        if "/" in value or ":" in value:
            return None, value
        self.issue(
            doc,
            ["spec", "image"],
            f"unknown Image {value!r}{_known(images)} (a full reference contains '/' or ':')",
        )
        return None, value

    def _check_cycles(self, workloads: dict[str, Workload]) -> None:
        graph = {
            w.name: [d.name for d in w.depends_on if d.name in workloads]
            for w in workloads.values()
        }
        try:
            graphlib.TopologicalSorter(graph).prepare()
        except graphlib.CycleError as exc:
            cycle: list[str] = exc.args[1]
            first = self.by_kind["Workload"][cycle[0]]
            self.issue(first, ["spec", "dependsOn"], "dependency cycle: " + " -> ".join(cycle))

    def _check_host_ports(self, workloads: dict[str, Workload]) -> None:
        published = [
            (w.connection, w.name, i, port)
            for w in workloads.values()  # manifest order: the later entry is the one reported
            for i, port in enumerate(w.ports)
        ]
        for owner, index, problem in host_port_clashes(published):
            self.issue(self.by_kind["Workload"][owner], ["spec", "ports", index], problem)


def _known(names: dict[str, Any]) -> str:
    return f" (declared: {', '.join(sorted(names))})" if names else " (none declared)"


def _labels(doc: Document) -> dict[str, str]:
    return dict((doc.data.get("metadata") or {}).get("labels") or {})


def _machine(doc: Document) -> Machine:
    spec = doc.data.get("spec") or {}
    return Machine(
        name=doc.name,
        provider=spec.get("provider"),
        cpus=spec.get("cpus"),
        memory_mib=units.mebibytes(spec["memory"]) if "memory" in spec else None,
        disk_gib=units.gibibytes(spec["diskSize"]) if "diskSize" in spec else None,
        rootful=spec.get("rootful"),
        volumes=tuple(_machine_volume(doc, v) for v in spec.get("volumes", [])),
        state=spec.get("state", "running"),
        location=doc.locate([]),
    )


def _machine_volume(doc: Document, value: str) -> str:
    """A machine volume as `podman machine init -v` must get it: the host source with `~`
    expanded and a relative path resolved against the manifest's folder (as Workload binds)."""
    source, sep, rest = value.partition(":")
    return str(normalize_host_path(source, doc.base_dir)) + sep + rest


def _mapping(doc: Document) -> DeviceMapping:
    spec = doc.data.get("spec") or {}
    probe = spec.get("probe")
    providers = spec.get("providers")
    entries = [d if isinstance(d, str) else d["path"] for d in spec["devices"]]
    optional = [d["path"] for d in spec["devices"] if isinstance(d, dict) and d.get("optional")]
    return DeviceMapping(
        name=doc.name,
        devices=tuple(entries),
        optional=tuple(optional),
        providers=tuple(providers) if providers is not None else None,
        env=dict(spec.get("env", {})),
        probe=Probe(
            tuple(probe["command"]), probe.get("expect"), units.seconds(probe.get("timeout", "30s"))
        )
        if probe
        else None,
        kubernetes_resources=dict((spec.get("kubernetes") or {}).get("resources", {})),
        location=doc.locate([]),
    )


def _build(doc: Document, build: dict[str, Any]) -> Build:
    context = normalize_host_path(build["context"], doc.base_dir)
    containerfile = build.get("containerfile")
    if containerfile is None:
        containerfile = (
            "Dockerfile"
            if not (context / "Containerfile").exists() and (context / "Dockerfile").exists()
            else "Containerfile"
        )
    return Build(
        context=context,
        containerfile=normalize_host_path(containerfile, context),
        args=dict(build.get("args", {})),
        target=build.get("target"),
    )


def _mount(doc: Document, value: str) -> Mount:
    source, _, rest = value.partition(":")
    target, _, options = rest.partition(":")
    bind = is_bind_source(source)
    return Mount(
        source=str(normalize_host_path(source, doc.base_dir)) if bind else source,
        target=target,
        options=tuple(o for o in options.split(",") if o),
        bind=bind,
    )


def _dependency(value: str | dict[str, str]) -> Dependency:
    if isinstance(value, str):
        return Dependency(value, "started")
    return Dependency(value["name"], value.get("condition", "started"))


def _healthcheck(hc: dict[str, Any]) -> Healthcheck:
    return Healthcheck(
        command=tuple(hc["command"]),
        interval_s=units.seconds(hc.get("interval", "30s")),
        timeout_s=units.seconds(hc.get("timeout", "30s")),
        retries=hc.get("retries", 3),
        start_period_s=units.seconds(hc.get("startPeriod", "0s")),
    )
