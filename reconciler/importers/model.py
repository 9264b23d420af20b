"""Values the compose importer passes between its steps: documents, warnings, the shared context.

The context holds what spans services (names, the Stack's policy, host-path rewriting) so that
the per-service mapper stays a plain walk over one service's keys.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.importers.compose_load import ComposeProject
from reconciler.manifests.policy import SYSTEM_DIRS

API_VERSION = "podform/v1"
PRIVILEGED_NOTE = "imported with the Stack's policy.allowPrivileged: true"


@dataclass(frozen=True)
class Note:
    """One thing the import dropped, changed or had to allow; printed as a warning on stderr."""

    service: str | None  # None: a top-level key
    key: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"service {self.service!r}: " if self.service else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{self.key}: {self.message}{hint}"


@dataclass
class Doc:
    """One podform document; `comment` lines follow it in the output (commented suggestions)."""

    kind: str
    name: str
    spec: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)
    comment: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.name}
        if self.labels:
            metadata["labels"] = dict(sorted(self.labels.items()))
        out: dict[str, Any] = {"apiVersion": API_VERSION, "kind": self.kind, "metadata": metadata}
        if self.spec or self.kind != "Stack":
            out["spec"] = self.spec
        return out


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def relative_posix(path: str) -> str:
    """`path` (relative) as a manifest writes it: `.`, `./x` or `../x`."""
    path = path.replace(os.sep, "/")
    if path in (".", "..") or path.startswith(("./", "../")):
        return path
    return posixpath.join(".", path)


@dataclass
class ImportContext:
    """What the mapping of one compose project shares across services."""

    project: ComposeProject
    out_dir: Path
    service_names: dict[str, str] = field(default_factory=dict)
    volume_names: dict[str, str] = field(default_factory=dict)
    secret_names: dict[str, str] = field(default_factory=dict)
    warnings: list[Note] = field(default_factory=list)
    allowed_host_paths: set[str] = field(default_factory=set)
    privileged_reasons: list[tuple[str | None, str]] = field(default_factory=list)
    extra_privileges: list[tuple[str, str, str]] = field(default_factory=list)
    implicit_networks: set[str] = field(default_factory=set)  # used, never declared

    def warn(self, service: str | None, key: str, message: str, hint: str = "") -> None:
        self.warnings.append(Note(service, key, message, hint))

    def service_of(self, workload: str) -> str | None:
        return next((s for s, w in self.service_names.items() if w == workload), None)

    def privileged(self, service: str | None, key: str, reason: str) -> None:
        """Record one reason for allowPrivileged: one warning per service and field."""
        top = key.split("[")[0].split(".")[0]
        if (service, top) in self.privileged_reasons:
            return
        self.privileged_reasons.append((service, top))
        self.warn(service, key, f"{reason}: {PRIVILEGED_NOTE}")

    def host_path(
        self, raw: str, where: str, service: str | None = None, *, allow: bool = True
    ) -> str:
        """A compose host path rewritten for the output's folder; paths outside it are allowed
        through the Stack's policy.allowedHostPaths (the compose folder when they lie in it)."""
        if raw.startswith("~"):
            return raw  # the user's home is allowed by podform's policy as it is
        project_dir = str(self.project.project_dir)
        out_dir = str(self.out_dir)
        absolute = os.path.isabs(raw)
        source = os.path.normpath(raw if absolute else os.path.join(project_dir, raw))
        if allow and not _under(source, out_dir):
            if not absolute and _under(source, project_dir):
                self._allow(project_dir, where, service, "the compose folder")
            elif not _protected(source):
                self._allow(source, where, service, "the path")
        if absolute:
            return raw
        return relative_posix(os.path.relpath(source, out_dir))

    def _allow(self, path: str, where: str, service: str | None, what: str) -> None:
        if path in self.allowed_host_paths:
            return
        self.allowed_host_paths.add(path)
        self.warn(
            service,
            where,
            f"host path outside the output's folder: {what} {path} was added to the Stack's "
            "policy.allowedHostPaths",
        )


def _protected(path: str) -> bool:
    """Paths allowedHostPaths cannot open (sockets, system directories): the policy check
    reports those, and they need allowPrivileged instead."""
    if path.endswith(".sock") or path == "/":
        return True
    return any(_under(path, d) for d in SYSTEM_DIRS)
