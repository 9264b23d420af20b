"""`podform doctor [-f ...]`: is this host (and the stack's machines) ready for GPU workloads?

Beside status.py in cli/. Read-only checks, one line each, `ok|warn|fail  <check>:
<detail>` (or JSON with -o json), exit 1 on any fail. Without -f only the host is checked:
podman client, the default API, the machines, krunkit, CDI specs. With -f it also checks the
stack's machines' APIs, /dev/dri inside each libkrun machine (a short-lived container run
through that machine's API) and the stack's GPU probes in running containers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from reconciler.engine.observed import ClientInfo, ObservedMachine
from reconciler.errors import PodformError
from reconciler.labels import LABEL_NAME, LABEL_STACK
from reconciler.manifests.model import Desired, Probe, Workload
from reconciler.runtime.backends.machine_errors import KRUNKIT_FIX
from reconciler.runtime.orchestrator import Connections, Settings, load_desired
from reconciler.runtime.probes import Execs, first_failure

OK, WARN, FAIL = "ok", "warn", "fail"
CDI_DIRS = (Path("/etc/cdi"), Path("/var/run/cdi"))  # containers.conf cdi_spec_dirs default
# Where Podman looks for krunkit on macOS (helper_binaries_dir defaults) and the .pkg's folder.
KRUNKIT_DIRS = ("/usr/local/opt/podman/libexec/podman", "/opt/homebrew/opt/podman/libexec/podman",
                "/opt/homebrew/bin", "/usr/local/bin", "/opt/podman/bin")  # fmt: skip


@dataclass(frozen=True)
class Check:
    status: str
    check: str
    detail: str


def run_doctor(args: argparse.Namespace, settings: Settings) -> int:
    """Run every check, print one line each (or JSON), and return 1 when any failed."""
    desired = load_desired(args.files) if getattr(args, "files", None) else None
    checks = list(_checks(desired, settings))
    if getattr(args, "output", "text") == "json":
        body = {"ok": all(c.status != FAIL for c in checks),
                "checks": [dataclasses.asdict(c) for c in checks]}  # fmt: skip
        print(json.dumps(body, indent=2))
    else:
        for c in checks:
            print(f"{c.status:<4}  {c.check}: {c.detail}")
    return 1 if any(c.status == FAIL for c in checks) else 0


def _checks(desired: Desired | None, settings: Settings) -> Iterator[Check]:
    connections = Connections(settings)
    try:
        yield _api("api (default)", connections, "")
        client: ClientInfo | None = None
        try:
            client = connections.machines.client()
            yield Check(OK, "podman client", f"{_v(client.version)} ({client.os}/{client.arch})")
        except PodformError as exc:
            needed = bool(desired and desired.machines)
            yield Check(FAIL if needed else WARN, "podman client", str(exc))
        machines: dict[str, ObservedMachine] = {}
        if client is not None:
            yield from _machines(desired, connections, machines)
            if client.os == "darwin" and _uses_libkrun(desired, machines, client):
                yield _krunkit(settings)
        if client is None or client.os == "linux":
            yield from _cdi(desired)
        if desired is not None:
            yield from _stack(desired, connections, machines)
    finally:
        connections.close()


def _v(version: tuple[int, int, int]) -> str:
    return ".".join(map(str, version))


def _api(name: str, connections: Connections, key: str) -> Check:
    try:
        engine = connections.engine(key)
        return Check(OK, name, f"Podman {engine.ping()} at {engine.url}")
    except PodformError as exc:
        return Check(FAIL, name, str(exc))


def _machines(
    desired: Desired | None, connections: Connections, found: dict[str, ObservedMachine]
) -> Iterator[Check]:
    declared = desired.machines if desired else {}
    try:
        found.update(connections.machines.list_all())
    except PodformError as exc:
        yield Check(FAIL, "machines", str(exc))
        return
    if not found and not declared:
        yield Check(OK, "machines", "none")
    for name, m in sorted(found.items()):
        detail = f"{m.provider}, {m.state}, {m.cpus} cpus, {m.memory_mib} MiB, {m.disk_gib} GiB"
        want = declared.get(name)
        status = OK
        if want is not None and want.state == "running" and m.state != "running":
            status, detail = WARN, detail + " (declared running: apply starts it)"
        if want is not None and want.provider and want.provider != m.provider:
            status, detail = WARN, detail + f" (declared provider {want.provider})"
        yield Check(status, f"machine {name}", detail)
    for name in sorted(set(declared) - set(found)):
        yield Check(WARN, f"machine {name}", "does not exist yet (apply creates it)")


def _uses_libkrun(
    desired: Desired | None, found: dict[str, ObservedMachine], client: ClientInfo
) -> bool:
    declared = [m.provider or client.default_provider for m in (desired.machines.values()
                                                                  if desired else [])]  # fmt: skip
    return "libkrun" in declared or any(m.provider == "libkrun" for m in found.values())


def _krunkit(settings: Settings) -> Check:
    podman = shutil.which(settings.podman or "podman")
    dirs = list(KRUNKIT_DIRS)
    if podman:
        dirs.insert(0, str(Path(podman).resolve().parent.parent / "libexec" / "podman"))
    for d in dirs:
        path = Path(d) / "krunkit"
        if path.is_file() and os.access(path, os.X_OK):
            return Check(OK, "krunkit", str(path))
    on_path = shutil.which("krunkit")
    if on_path:
        return Check(OK, "krunkit", on_path)
    return Check(FAIL, "krunkit", KRUNKIT_FIX)


def _cdi(desired: Desired | None) -> Iterator[Check]:
    """NVIDIA CDI names used by the stack must have a spec; without -f, report what exists."""
    kinds = _cdi_kinds()
    wanted = sorted({d for w in (desired.workloads.values() if desired else []) for d in w.devices
                     if "=" in d and d.startswith("nvidia.com/")})  # fmt: skip
    if not wanted:
        found = ", ".join(sorted(kinds)) or "none"
        yield Check(OK, "cdi specs", f"{found} in {', '.join(map(str, CDI_DIRS))}")
        return
    for name in wanted:
        kind, _, device = name.partition("=")
        if device in kinds.get(kind, set()):
            yield Check(OK, f"cdi {name}", "spec found")
        else:
            yield Check(FAIL, f"cdi {name}", "no CDI spec; generate it with `sudo nvidia-ctk cdi "
                        "generate --output=/etc/cdi/nvidia.yaml` (again after driver changes)")  # fmt: skip


def _cdi_kinds() -> dict[str, set[str]]:
    import yaml

    kinds: dict[str, set[str]] = {}
    for d in CDI_DIRS:
        for f in sorted(d.glob("*")) if d.is_dir() else []:
            if f.suffix not in (".yaml", ".yml", ".json"):
                continue
            try:
                spec = yaml.safe_load(f.read_text())
            except (OSError, yaml.YAMLError):
                continue
            if isinstance(spec, dict) and isinstance(spec.get("kind"), str):
                names = {str(dev.get("name")) for dev in spec.get("devices") or []
                         if isinstance(dev, dict)}  # fmt: skip
                kinds.setdefault(spec["kind"], set()).update(names)
    return kinds


def _stack(
    desired: Desired, connections: Connections, machines: dict[str, ObservedMachine]
) -> Iterator[Check]:
    for name in sorted(desired.machines):
        m = machines.get(name)
        if m is None or m.state != "running":
            continue
        yield _api(f"api (machine {name})", connections, name)
        if m.provider == "libkrun":
            yield _dri(desired, connections, name)
    yield from _probes(desired, connections, machines)


def _dri(desired: Desired, connections: Connections, machine: str) -> Check:
    """/dev/dri inside the machine: `ls /dev/dri` in a short-lived container with the device."""
    check = f"/dev/dri in machine {machine}"
    workloads = [w for w in desired.workloads.values() if w.machine == machine]
    if not workloads:
        return Check(WARN, check, "skipped: no workload of the stack runs on this machine")
    try:
        engine = connections.engine(machine)
        image_id = engine.image_id(workloads[0].image_ref)
        if not image_id:
            return Check(WARN, check, f"skipped: {workloads[0].image_ref} is not there yet")
        w = _throwaway(workloads[0])
        cid = engine.create_container(f"podform-doctor-{secrets.token_hex(4)}", w, image_id, {})
        try:
            engine.start(cid)
            code, out = engine.exec(cid, ["ls", "/dev/dri"], 30.0)
        finally:
            engine.remove(cid, 0)
    except PodformError as exc:
        return Check(FAIL, check, f"{exc}; is the machine's provider libkrun?")
    if code != 0 or "renderD" not in out:
        return Check(FAIL, check, f"no render node ({out.strip() or f'exit {code}'}); "
                     "only libkrun machines have a GPU")  # fmt: skip
    return Check(OK, check, " ".join(out.split()))


def _throwaway(w: Workload) -> Workload:
    """A copy of a workload that only holds /dev/dri open: no ports, mounts or health check."""
    return dataclasses.replace(
        w, command=("sleep",), args=("60",), env={}, secrets=(), ports=(), volumes=(),
        devices=("/dev/dri",), mappings=(), healthcheck=None, restart="no", init=True,
        memory_mib=None, cpus=None, network="bridge", privileged=False, cap_add=(),
    )  # fmt: skip


def _probes(
    desired: Desired, connections: Connections, machines: dict[str, ObservedMachine]
) -> Iterator[Check]:
    for w in sorted(desired.workloads.values(), key=lambda w: w.name):
        probes = [(n, p) for n in w.mappings if (p := desired.mappings[n].probe) is not None]
        if not probes:
            continue
        if w.machine and machines.get(w.machine) is None:
            yield Check(WARN, f"probe {w.name}", f"machine {w.machine} does not exist yet")
            continue
        try:
            engine = connections.engine(w.connection)
            running = {c.name: c for c in engine.list_containers()
                       if c.labels.get(LABEL_STACK) == desired.stack.name
                       and c.labels.get(LABEL_NAME) == w.name and c.running}  # fmt: skip
        except PodformError as exc:
            yield Check(FAIL, f"probe {w.name}", str(exc))
            continue
        if not running:
            yield Check(WARN, f"probe {w.name}", "no running container to probe (apply first)")
        for cname in sorted(running):
            for mapping, probe in probes:
                yield _probe(engine, cname, mapping, probe)


def _probe(engine: Execs, cname: str, mapping: str, probe: Probe) -> Check:
    check = f"probe {cname} ({mapping})"
    try:
        failed = first_failure(
            engine, cname, [(mapping, probe.command, probe.expect, probe.timeout_s)]
        )
    except PodformError as exc:
        return Check(FAIL, check, str(exc))
    if failed:
        return Check(FAIL, check, failed.why)
    return Check(OK, check, f"`{' '.join(probe.command)}` passed")
