"""Static security policy: what a schema-valid manifest may ask of the host.

Runs after schema validation and before the desired-state model is built; like validation it is
all-or-nothing (any issue here means no Podman call at all). Pure apart from reading the local
filesystem to resolve symlinks of bind-mount sources, device paths and build contexts.

The host-path rule (SPEC §5, docs/DECISIONS.md): rootful Podman runs containers as host root, so
a bind mount is host root over its source. A bind source, symlinks resolved, is admitted when it
lies inside the manifest's folder, inside the user's home, at a volume target of the workload's
Machine, or under an entry of the Stack's `spec.policy.allowedHostPaths`. Never admitted: the
host's root, the home directory itself, a dot-entry at the top of the home (~/.ssh, ~/.config,
~/.bashrc) and a Podman/Docker socket or a directory holding one. Whatever is not admitted needs
`allowPrivileged`.

What `spec.policy.allowPrivileged: true` on the Stack lifts, and what it does not:
- lifted: `privileged: true`, host network (`network: host` or joining a namespace with `ns:`),
  capabilities outside the Kubernetes baseline set, bind mounts the host-path rule refuses, and
  block devices (a workload that really needs a raw disk can have it, knowingly);
- never lifted: devices outside `/dev` or that are `/dev/mem`, `/dev/kmem`, `/dev/port`; SELinux
  relabelling (`:z`/`:Z`) of a path the host-path rule refuses, which would relabel the host's
  own files; mount targets `/`, `/proc`, `/sys` inside the container (mounting over procfs or sysfs
  is a known runc escape route); build contexts leaving the repository; invalid names; labels
  under `io.podform.`.

Checks on the local filesystem are made where podform runs. For a workload on a Podman machine the
host paths live in the VM (usually mirrored from the host through machine volumes), so the
lexical rules are the ones that always hold; symlink and block-device checks are best effort there.

Device, CDI and build-context checks are in policy_files.py; path normalising in hostpath.py.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.errors import Issue
from reconciler.labels import LABEL_PREFIX
from reconciler.manifests.container_opts import privilege_findings
from reconciler.manifests.hostpath import find_repo_root as find_repo_root
from reconciler.manifests.hostpath import is_bind_source as is_bind_source
from reconciler.manifests.hostpath import lexical, under
from reconciler.manifests.hostpath import normalize_host_path as normalize_host_path
from reconciler.manifests.jsonpath import JsonPath, format_json_path
from reconciler.manifests.loader import Document
from reconciler.manifests.policy_files import PRIVILEGE_FIX as PRIVILEGE_FIX
from reconciler.manifests.policy_files import check_build, check_cdi, check_device_path

HOST_PATH_FIX = (
    "list a folder holding it under the Stack's spec.policy.allowedHostPaths,"
    " or set spec.policy.allowPrivileged: true"
)

NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
NAME_MAX = 63
MACHINE_NAME_MAX = 30
# Podman's own name rule for volumes and secrets (libpod define.NameRegex).
PODMAN_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")

# Kubernetes Pod Security Standards, Baseline: the capabilities a container may add.
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)

# Named in messages; the host-path rule refuses every path outside its roots, not only these.
SYSTEM_DIRS = (
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/root",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/opt",
    "/var",
    "/run",
    "/home",
    "/snap",
    "/nix",
    "/System",
    "/Library",
    "/Users",
    "/private",
)
FORBIDDEN_TARGETS = ("/proc", "/sys")
_SOCKET_NAME_RE = re.compile(r".*(docker|podman|containerd|buildkitd).*\.sock")


Finding = tuple[JsonPath, str]  # where in the document, and what is wrong there


def name_problem(name: str, max_len: int = NAME_MAX) -> str | None:
    """Why `name` is not a podform name, or None. Uses fullmatch: `$` would accept `web\\n`."""
    if len(name) <= max_len and NAME_RE.fullmatch(name):
        return None
    return (
        f"{name!r} is not a valid name: use at most {max_len} lowercase letters, digits and '-',"
        " starting and ending with a letter or digit"
    )


def check_policy(docs: Sequence[Document], *, allow_privileged: bool) -> list[Issue]:
    """Every policy violation in `docs`; empty when they may be applied."""
    issues: list[Issue] = []
    allowed: list[str] = []
    for doc in docs:
        findings: list[Finding] = []
        if doc.kind == "Stack":
            findings.extend(_allowed_host_paths(doc, allowed))
        issues.extend(
            Issue(
                message, location=doc.locate(p), json_path=format_json_path(p), subject=doc.subject
            )
            for p, message in findings
        )
    rules = _HostPaths(allow_privileged, tuple(allowed), _machine_targets(docs))
    for doc in docs:
        issues.extend(
            Issue(
                message,
                location=doc.locate(path),
                json_path=format_json_path(path),
                subject=doc.subject,
            )
            for path, message in _check_document(doc, rules)
        )
    return issues


def _allowed_host_paths(doc: Document, allowed: list[str]) -> Iterator[Finding]:
    """Resolve the Stack's policy.allowedHostPaths into `allowed`, reporting unusable entries."""
    policy = _dict(_dict(doc.data.get("spec")).get("policy"))
    for i, raw in enumerate(_list(policy.get("allowedHostPaths"))):
        if not isinstance(raw, str) or not raw:
            continue
        resolved = str(normalize_host_path(raw, doc.base_dir))
        if resolved == "/":
            at: JsonPath = ("spec", "policy", "allowedHostPaths", i)
            yield at, f"{raw} would admit every host path; use allowPrivileged: true instead"
        else:
            allowed.append(resolved)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _check_document(doc: Document, rules: _HostPaths) -> Iterator[Finding]:
    allow_privileged = rules.allow_privileged
    meta = _dict(doc.data.get("metadata"))
    spec = _dict(doc.data.get("spec"))
    name = meta.get("name")
    if isinstance(name, str):
        problem = name_problem(name, MACHINE_NAME_MAX if doc.kind == "Machine" else NAME_MAX)
        if problem:
            yield ("metadata", "name"), problem
    for key in _dict(meta.get("labels")):
        if key.lower().startswith(LABEL_PREFIX):
            yield ("metadata", "labels", key), "labels io.podform.* are reserved for podform"
    if doc.kind == "Image":
        yield from _check_machine_ref(spec)
        build = spec.get("build")
        if isinstance(build, dict):
            yield from check_build(doc, build)
    elif doc.kind == "DeviceMapping":
        for i, entry in enumerate(_list(spec.get("devices"))):
            if isinstance(entry, str):
                at = ("spec", "devices", i)
                if entry.startswith("/"):
                    yield from check_device_path(at, entry, allow_privileged)
                else:
                    yield from check_cdi(at, entry)
    elif doc.kind == "Workload":
        yield from _check_machine_ref(spec)
        yield from _check_workload(doc, spec, rules.for_machine(spec.get("machine")))


def _check_machine_ref(spec: dict[str, Any]) -> Iterator[Finding]:
    machine = spec.get("machine")
    if isinstance(machine, str) and (problem := name_problem(machine, MACHINE_NAME_MAX)):
        yield ("spec", "machine"), f"machine {problem}"


def _check_workload(doc: Document, spec: dict[str, Any], rules: _HostPaths) -> Iterator[Finding]:
    allow = rules.allow_privileged
    image = str(spec.get("image", ""))
    # A full reference ("/" or ":") goes to Podman as is; anything else names an Image document.
    if image and not any(c in image for c in "/:") and (problem := name_problem(image)):
        yield ("spec", "image"), f"image {problem}"
    for i, dep in enumerate(_list(spec.get("dependsOn"))):
        at: JsonPath = ("spec", "dependsOn", i)
        if isinstance(dep, dict):
            dep, at = dep.get("name"), (*at, "name")
        if isinstance(dep, str) and (problem := name_problem(dep)):
            yield at, f"dependsOn {problem}"
    for i, secret in enumerate(_list(spec.get("secrets"))):
        ref = _dict(secret).get("name")
        if isinstance(ref, str) and not PODMAN_NAME_RE.fullmatch(ref):
            yield ("spec", "secrets", i, "name"), f"{ref!r} is not a valid Podman secret name"
    if not allow:
        if spec.get("privileged") is True:
            yield ("spec", "privileged"), f"privileged: true is refused; {PRIVILEGE_FIX}"
        network = spec.get("network")
        if isinstance(network, str) and (network == "host" or network.startswith("ns:")):
            yield ("spec", "network"), f"host network ({network}) is refused; {PRIVILEGE_FIX}"
        for i, cap in enumerate(_list(spec.get("capAdd"))):
            if isinstance(cap, str) and _capability(cap) not in BASELINE_CAPABILITIES:
                yield (
                    ("spec", "capAdd", i),
                    f"capability {cap} is outside the baseline set; {PRIVILEGE_FIX}",
                )
        for at, message in privilege_findings(spec):
            yield at, f"{message}; {PRIVILEGE_FIX}"
    for i, volume in enumerate(_list(spec.get("volumes"))):
        if isinstance(volume, str):
            yield from _check_volume(doc, ("spec", "volumes", i), volume, rules)
    for i, entry in enumerate(_list(spec.get("devices"))):
        if not isinstance(entry, str):
            continue
        at = ("spec", "devices", i)
        if entry.startswith("/"):
            yield from check_device_path(at, entry, allow)
        elif "/" in entry or "=" in entry:
            yield from check_cdi(at, entry)
        elif problem := name_problem(entry):
            yield at, f"device mapping {problem}"


def _capability(cap: str) -> str:
    cap = cap.strip().upper()
    return cap.removeprefix("CAP_")


def _check_volume(doc: Document, at: JsonPath, volume: str, rules: _HostPaths) -> Iterator[Finding]:
    parts = volume.split(":")
    if len(parts) > 3:
        yield at, f"volume {volume!r}: expected source:target[:options]"
        return
    target = parts[1] if len(parts) > 1 else parts[0]
    normal_target = lexical(target)
    if normal_target == "/" or any(under(normal_target, t) for t in FORBIDDEN_TARGETS):
        yield at, f"mounting over {target} inside the container is refused"
    if len(parts) == 1:
        return  # an anonymous volume: no host source
    source = parts[0]
    if not is_bind_source(source):
        if not PODMAN_NAME_RE.fullmatch(source):
            yield at, f"{source!r} is not a valid volume name (nor a path: start it with ./ or /)"
        return
    refusal = rules.refusal(source, doc.base_dir)
    if refusal is None:
        return
    reason, fix = refusal
    options = parts[2].split(",") if len(parts) == 3 else []
    if "z" in options or "Z" in options:
        yield (
            at,
            f"relabelling (:z/:Z) {source} is refused: {reason}, and relabelling changes it on the host",
        )
    elif not rules.allow_privileged:
        yield at, f"bind mount of {source} is refused: {reason}; {fix}"


def _known_sockets() -> list[str]:
    sockets = [
        "/run/docker.sock",
        "/var/run/docker.sock",
        "/run/podman/podman.sock",
        "/var/run/podman/podman.sock",
        f"/run/user/{os.getuid()}/podman/podman.sock",
    ]
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        sockets.append(os.path.join(runtime_dir, "podman", "podman.sock"))
    return sockets


def _machine_targets(docs: Sequence[Document]) -> dict[str, tuple[str, ...]]:
    """Machine name -> the paths its volumes appear at inside the VM."""
    targets: dict[str, tuple[str, ...]] = {}
    for doc in docs:
        if doc.kind != "Machine":
            continue
        found: list[str] = []
        for volume in _list(_dict(doc.data.get("spec")).get("volumes")):
            if isinstance(volume, str):
                parts = volume.split(":")
                # Podman machine: `src` alone mounts at the same path inside the VM.
                target = parts[1] if len(parts) > 1 else os.path.expanduser(parts[0])
                if target.startswith("/") and lexical(target) != "/":
                    found.append(lexical(target))
        targets[doc.name] = tuple(found)
    return targets


@dataclass(frozen=True)
class _HostPaths:
    """The host-path rule (SPEC §5) for one manifest set: where bind sources may come from."""

    allow_privileged: bool
    allowed: tuple[str, ...]  # policy.allowedHostPaths, resolved
    machine_targets: dict[str, tuple[str, ...]]
    machine: str | None = None  # the workload being checked runs on this machine

    def for_machine(self, machine: object) -> _HostPaths:
        name = machine if isinstance(machine, str) else None
        return _HostPaths(self.allow_privileged, self.allowed, self.machine_targets, name)

    def refusal(self, source: str, base_dir: Path) -> tuple[str, str] | None:
        """(why, fix) when `source` may not be bound without allowPrivileged; None when admitted.

        Always refused: the host's root, a Podman/Docker socket (or a directory holding one), the
        home directory itself and the dot-entries at its top (~/.ssh, ~/.config, ~/.bashrc, ...).
        Otherwise admitted when, symlinks resolved, it lies inside the manifest's folder, inside
        the user's home, at a volume target of the workload's Machine, or under an entry of
        policy.allowedHostPaths.
        """
        written = lexical(os.path.join(base_dir, os.path.expanduser(source)))
        resolved = str(normalize_host_path(source, base_dir))
        folder = os.path.realpath(base_dir)
        reason = self._never(written, resolved, folder)
        if reason is not None:
            return reason, PRIVILEGE_FIX
        roots = [*self.allowed, *self.machine_targets.get(self.machine or "", ())]
        if folder != "/" and folder not in _system_roots():
            roots.append(folder)
        home = _home()
        if home is not None:
            roots.append(os.path.realpath(home))
        if any(under(resolved, root) for root in roots):
            return None
        for candidate in (written, resolved):  # as written first: /sbin, not /usr/sbin
            for directory in SYSTEM_DIRS:
                if under(candidate, directory) or under(candidate, os.path.realpath(directory)):
                    return f"{directory} is a host system directory", HOST_PATH_FIX
        where = "the manifest's folder, your home"
        if self.machine:
            where += f", a volume of machine {self.machine!r}"
        return f"it is outside {where} and policy.allowedHostPaths", HOST_PATH_FIX

    @staticmethod
    def _never(lexical: str, resolved: str, folder: str) -> str | None:
        """Why a source is refused wherever it lies (allowedHostPaths cannot admit it), or None.

        A manifest kept inside a home dot-directory (~/.config/podform/) may bind its own files.
        """
        candidates = (lexical, resolved)
        if "/" in candidates:
            return "it is the host's root directory"
        sockets = _known_sockets()
        for candidate in candidates:
            if _SOCKET_NAME_RE.fullmatch(posixpath.basename(candidate)):
                return "a Podman/Docker socket gives root on the host"
            for socket in sockets:
                if under(socket, candidate) or under(os.path.realpath(socket), candidate):
                    return f"it contains the Podman/Docker socket {socket}"
        home = _home()
        if home is not None:
            for root in {home, os.path.realpath(home)}:
                for candidate in candidates:
                    if candidate == root:
                        return "it is your home directory itself"
                    if under(candidate, root):
                        top = os.path.relpath(candidate, root).split("/")[0]
                        dot = os.path.join(root, top)
                        own = folder != dot and under(folder, dot) and under(resolved, folder)
                        if top.startswith(".") and not own:
                            return (
                                f"~/{top} is a dot-directory at the top of your home"
                                " (keys, shell and tool configuration)"
                            )
        return None


def _home() -> str | None:
    """The user's home as a host-path root; None when it is unset or `/` (some service users)."""
    home = os.path.expanduser("~")
    if not home.startswith("/") or lexical(home) == "/":
        return None
    return lexical(home)


def _system_roots() -> set[str]:
    return {r for d in SYSTEM_DIRS for r in (d, os.path.realpath(d))}
