"""A merged compose project as podform documents: Stack, Networks, Secrets, DeviceMappings, Images, Workloads.

Second step of `podform import compose` (compose_load.py reads, emit.py writes). Every compose
key is either mapped to the podform field SPEC §10 names or reported as a warning (Note) naming the
service and the key (and the podform way, where there is one): nothing is dropped silently.
What podform refuses without `policy.allowPrivileged` is imported with the policy set and one
warning per service and reason; bind sources outside the output's folder go to
`policy.allowedHostPaths`. Pure apart from the policy check reading bind sources' symlinks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.importers import compose_values as cv
from reconciler.importers.compose_devices import DeviceResolver
from reconciler.importers.compose_env import ComposeError
from reconciler.importers.compose_load import ComposeProject
from reconciler.importers.compose_service import ServiceMapper
from reconciler.importers.compose_storage import as_bool
from reconciler.importers.model import Doc, ImportContext, Note


@dataclass
class ImportResult:
    """What an import produced: documents in output order, and what the user must read."""

    docs: list[Doc]
    warnings: list[Note] = field(default_factory=list)


def map_project(project: ComposeProject, out_dir: Path) -> ImportResult:
    """`project` as podform documents whose relative paths resolve against `out_dir`."""
    ctx = ImportContext(project=project, out_dir=Path(os.path.realpath(out_dir)))
    ctx.service_names = _unique_names(list(project.services), "service")
    ctx.volume_names = _unique_names(list(project.volumes), "volume")
    _unique_names(list(project.networks), "network")  # refuses two meeting in one name
    ctx.secret_names = {
        k: v
        for k, v in _unique_names(list(project.secrets), "secret").items()
        if not as_bool(project.secrets[k].get("external", False))
    }
    for service, profiles in project.skipped.items():
        ctx.warn(
            service,
            "profiles",
            f"not imported: its profiles ({', '.join(profiles)}) are not in COMPOSE_PROFILES",
            "set COMPOSE_PROFILES to import it",
        )
    for key in project.top_level_dropped:
        hint = ""
        if key.startswith("x-"):
            hint = (
                "extension fields have no podform meaning; anchors in them are expanded where used"
            )
        if key == "include":
            hint = "pass the included files with -f instead"
        ctx.warn(None, key, "top-level key dropped", hint)

    networks = [_network(ctx, name, body) for name, body in sorted(project.networks.items())]
    secrets = [d for d in (_secret(ctx, n, b) for n, b in sorted(project.secrets.items())) if d]
    for name, body in sorted(project.volumes.items()):
        _check_volume(ctx, name, body)

    devices = DeviceResolver(ctx)
    workloads: list[Doc] = []
    images: list[Doc] = []
    for service, body in project.services.items():
        mapper = ServiceMapper(ctx, service, body, devices)
        workload, image = mapper.run()
        workloads.append(workload)
        if image is not None:
            images.append(image)
    devices.finish(workloads)
    declared = {d.name for d in networks}
    networks += [Doc("Network", n, {"dns": True}) for n in sorted(ctx.implicit_networks - declared)]
    _privileges(ctx, workloads)

    stack_spec: dict[str, Any] = {}
    policy: dict[str, Any] = {}
    if ctx.privileged_reasons:
        policy["allowPrivileged"] = True
    if ctx.allowed_host_paths:
        policy["allowedHostPaths"] = sorted(ctx.allowed_host_paths)
    if policy:
        stack_spec["policy"] = policy
    stack = Doc("Stack", cv.podform_name(project.name), stack_spec)
    docs = [stack, *networks, *secrets, *devices.mappings(), *images, *workloads]
    return ImportResult(docs=docs, warnings=ctx.warnings)


def _unique_names(raw: list[str], what: str) -> dict[str, str]:
    names: dict[str, str] = {}
    taken: dict[str, str] = {}
    for item in raw:
        name = cv.podform_name(item)
        if name in taken:
            raise ComposeError(
                f"{what}s {taken[name]!r} and {item!r} both become {name!r} as podform names"
            )
        taken[name] = item
        names[item] = name
    return names


def _network(ctx: ImportContext, name: str, body: dict[str, Any]) -> Doc:
    spec: dict[str, Any] = {}
    for key, value in body.items():
        if key == "driver":
            spec["driver"] = str(value)
        elif key == "internal":
            spec["internal"] = as_bool(value)
        elif key == "ipam":
            configs = (value or {}).get("config") or []
            for i, conf in enumerate(configs):
                if i == 0 and conf.get("subnet"):
                    spec["subnet"] = str(conf["subnet"])
                for extra in sorted(k for k in conf if k != "subnet" or i > 0):
                    ctx.warn(
                        None,
                        f"networks.{name}.ipam.config[{i}].{extra}",
                        "dropped",
                        "a podform Network has one subnet; Podman picks the gateway",
                    )
            for extra in sorted(k for k in (value or {}) if k != "config"):
                ctx.warn(None, f"networks.{name}.ipam.{extra}", "dropped", "")
        elif key == "external":
            if not as_bool(value):
                continue
            ctx.warn(
                None,
                f"networks.{name}.external",
                "dropped",
                f"podform creates and owns the network as <stack>-{cv.podform_name(name)}",
            )
        else:
            ctx.warn(None, f"networks.{name}.{key}", "dropped", "no podform Network field")
    spec.setdefault("dns", True)
    order = ("internal", "dns", "subnet", "driver")
    return Doc("Network", cv.podform_name(name), {k: spec[k] for k in order if k in spec})


def _secret(ctx: ImportContext, name: str, body: dict[str, Any]) -> Doc | None:
    if as_bool(body.get("external", False)):
        ctx.warn(
            None,
            f"secrets.{name}.external",
            "not declared",
            f"workloads use the existing Podman secret {body.get('name', name)!r}",
        )
        return None
    if "file" in body:
        spec: dict[str, Any] = {"file": ctx.host_path(str(body["file"]), f"secrets.{name}")}
    elif "environment" in body:
        spec = {"env": str(body["environment"])}
    else:
        ctx.warn(None, f"secrets.{name}", "dropped", "a podform Secret reads a file or an env var")
        return None
    for key in sorted(set(body) - {"file", "environment", "name"}):
        ctx.warn(None, f"secrets.{name}.{key}", "dropped", "")
    return Doc("Secret", ctx.secret_names[name], spec)


def _check_volume(ctx: ImportContext, name: str, body: dict[str, Any]) -> None:
    for key in sorted(body):
        if key == "name" and cv.podform_name(str(body[key])) == ctx.volume_names[name]:
            continue
        hint = {
            "external": "podform creates the volume when missing and never deletes it",
            "name": f"podform names the volume {ctx.volume_names[name]!r}",
        }.get(key, "podform creates named volumes with Podman's defaults")
        ctx.warn(None, f"volumes.{name}.{key}", "dropped", hint)


# What podform's static policy refuses without allowPrivileged, from the policy itself: one
# warning per service and reason. Imported lazily: only this step needs the manifest layer.
def _privileges(ctx: ImportContext, workloads: list[Doc]) -> None:
    from reconciler.manifests.loader import Document
    from reconciler.manifests.policy import PRIVILEGE_FIX, check_policy

    by_name = {w.name: w for w in workloads}
    # The Stack as it will be written, minus allowPrivileged: its allowedHostPaths count.
    stack_spec = {"policy": {"allowedHostPaths": sorted(ctx.allowed_host_paths)}}
    stack = Doc(
        "Stack", cv.podform_name(ctx.project.name), stack_spec if ctx.allowed_host_paths else {}
    )
    docs = [
        Document(file="podform.yaml", index=i, data=d.as_dict(), base_dir=ctx.out_dir)
        for i, d in enumerate([stack, *workloads])
    ]
    for issue in check_policy(docs, allow_privileged=False):
        workload = issue.subject.split('"')[1] if '"' in issue.subject else ""
        service = ctx.service_of(workload) if workload in by_name else None
        field_path = issue.json_path.removeprefix("$.spec.")
        if PRIVILEGE_FIX in issue.message:
            reason = issue.message.split(";")[0].replace(" is refused", "")
            ctx.privileged(service, field_path, reason)
        else:
            ctx.warn(service, field_path, f"podform validate will refuse this: {issue.message}", "")
    for service, key, reason in ctx.extra_privileges:
        ctx.privileged(service, key, reason)
