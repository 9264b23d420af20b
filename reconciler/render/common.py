"""What every render target shares: the result value, warnings, value and probe forms, YAML out.

Sits beside runtime/ (below cli, above engine and manifests) and is pure: desired state in,
text out, no IO. A target that cannot express something says so with a Note naming the
resource and the field; nothing is dropped silently.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from reconciler.engine.hashing import stack_labels
from reconciler.manifests.container_opts import Ulimit
from reconciler.manifests.model import DeviceMapping, Probe, Workload


class Target(StrEnum):
    KUBE = "kube"
    QUADLET = "quadlet"
    COMPOSE = "compose"


@dataclass(frozen=True)
class Note:
    """Something a target cannot express: which resource, which field, and what happens instead."""

    resource: str  # "Workload web", "Machine gpu", ...
    field: str  # JSON path inside the document: "spec.dependsOn"
    message: str

    def __str__(self) -> str:
        return f"{self.resource}: {self.field}: {self.message}"


@dataclass
class Rendering:
    """Files in write order (relative name -> text) and the notes gathered while rendering."""

    files: dict[str, str] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)

    def note(self, resource: str, path: str, message: str) -> None:
        self.notes.append(Note(resource, path, message))

    def stream(self) -> str:
        """All files as one text for stdout: one file is itself; several each follow `# NAME`."""
        if len(self.files) == 1:
            return next(iter(self.files.values()))
        return "\n".join(f"# {name}\n{text}" for name, text in self.files.items())


def workload_resource(w: Workload) -> str:
    return f"Workload {w.name}"


def labels(stack: str, kind: str, name: str, own: dict[str, str] | None = None) -> dict[str, str]:
    """The user's labels, then podform's ownership labels (which the schema keeps them from setting)."""
    return dict(own or {}) | stack_labels(stack, kind, name)


def visible_env(w: Workload) -> dict[str, str]:
    """The env a target may write out: values read from envFile are referred to by file only."""
    hidden = set(w.env_file_keys)
    return {k: v for k, v in w.env.items() if k not in hidden}


def split_user(user: str) -> tuple[str, str | None]:
    """`user[:group]` -> (user, group or None)."""
    name, _, group = user.partition(":")
    return name, group or None


def ulimit_text(u: Ulimit) -> str:
    """`name=soft:hard` as Podman's --ulimit takes it (-1 is unlimited)."""
    return f"{u.name}={u.soft}:{u.hard}"


def required_devices(w: Workload) -> list[str]:
    """The workload's devices without the optional ones (passed only where they exist)."""
    optional = set(w.optional_devices)
    return [d for d in w.devices if d not in optional]


def whole_seconds(value: float) -> int:
    """Kubernetes and systemd count whole seconds; round up so a timeout never shrinks."""
    return max(1, math.ceil(value))


def duration(value: float) -> str:
    """Seconds -> the shortest compose/Podman duration text: 30s, 1m30s, 500ms."""
    if 0 < value < 1:
        return f"{round(value * 1000)}ms"
    whole = round(value)
    minutes, seconds = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n]
    return "".join(parts) or "0s"


def probe_argv(probe: Probe) -> tuple[list[str], bool]:
    """The probe as one exec command; True when its expect text needed `sh -c ... | grep`."""
    if probe.expect is None:
        return list(probe.command), False
    line = f"{shlex.join(probe.command)} | grep -F -q -- {shlex.quote(probe.expect)}"
    return ["sh", "-c", line], True


def inline_devices(w: Workload, mappings: dict[str, DeviceMapping]) -> list[str]:
    """Devices the workload names itself, not through one of its DeviceMappings."""
    from_mappings = {d for m in w.mappings for d in mappings[m].devices}
    return [d for d in w.devices if d not in from_mappings]


def is_cdi(device: str) -> bool:
    return not device.startswith("/")


def split_device(device: str) -> tuple[str, str, str | None]:
    """`/dev/x[:/dev/y][:rwm]` -> (host path, container path, permissions or None)."""
    parts = device.split(":")
    host = parts[0]
    container = parts[1] if len(parts) > 1 and parts[1].startswith("/") else host
    perms = parts[-1] if len(parts) > 1 and not parts[-1].startswith("/") else None
    return host, container, perms


def relative_to(path: Path, base: Path | None) -> str:
    """`./x` when path lies inside base (so a committed file works from any checkout), else absolute."""
    if base is not None:
        try:
            rel = path.relative_to(base)
        except ValueError:
            return str(path)
        return "." if str(rel) == "." else f"./{rel}"
    return str(path)


class _Dumper(yaml.SafeDumper):
    """Block style everywhere; multi-line strings as literal blocks so diffs stay readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(*documents: Any) -> str:
    """Documents as YAML with `---` between them, keys in insertion order, ending in a newline."""
    return yaml.dump_all(
        documents,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=4096,
        explicit_start=len(documents) > 1,
    )
