"""The plan: a deterministic value saying what apply will do and why.

The planner builds it, `plan` renders it, the executor walks it. Nothing here decides
anything; render() is the golden-test oracle (same plan -> same text, byte for byte).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.manifests.model import Build, Workload


class Verb(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    UNCHANGED = "unchanged"
    # Inside a machine that is not running yet: planned once it runs (engine/phases.py).
    DEFERRED = "deferred"


SYMBOLS = {
    Verb.CREATE: "+",
    Verb.UPDATE: "~",
    Verb.REPLACE: "-/+",
    Verb.DELETE: "-",
    Verb.UNCHANGED: " ",
    Verb.DEFERRED: "?",
}


class Kind(StrEnum):
    """What an action acts on; also the order `plan` prints the groups in."""

    MACHINE = "Machine"
    IMAGE = "Image"
    VOLUME = "Volume"
    NETWORK = "Network"
    SECRET = "Secret"
    CONTAINER = "Container"


KIND_ORDER = tuple(Kind)


class Operation(StrEnum):
    """What the executor does for an action (the verb says what changes, this says how)."""

    BUILD = "build"
    PULL = "pull"
    CREATE = "create"
    START = "start"
    STOP = "stop"
    REPLACE = "replace"
    REMOVE = "remove"
    INIT = "init"
    SET = "set"
    PROBE = "probe"
    NONE = "none"


_COLORS = {
    Verb.CREATE: "32",
    Verb.UPDATE: "33",
    Verb.REPLACE: "35",
    Verb.DELETE: "31",
    Verb.UNCHANGED: "2",
    Verb.DEFERRED: "36",
}


def _paint(text: str, verb: Verb, color: bool) -> str:
    return f"\x1b[{_COLORS[verb]}m{text}\x1b[0m" if color else text


@dataclass(frozen=True)
class Change:
    """One field that differs: `env.LEVEL: "info" -> "debug"` (values already masked)."""

    path: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.path}: {_show(self.old)} → {_show(self.new)}"


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return f'"{value}"'
    import json

    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class ImageWork:
    """What the executor needs to build or pull one image."""

    ref: str
    build: Build | None
    content_hash: str  # empty for pulled images
    labels: dict[str, str]
    pull_policy: str


@dataclass(frozen=True)
class ContainerWork:
    """What the executor needs to (re)create, start, stop or probe one container."""

    name: str
    replica: int
    workload: Workload
    labels: dict[str, str]  # ownership labels; the spec-hash label is added at create time
    old_id: str = ""  # the container being replaced, started, stopped or deleted
    healthy_deps: tuple[str, ...] = ()  # container names that must report healthy first
    healthy_wait_s: float = 0.0  # how long their health checks allow (the longest of them)
    probes: tuple[
        tuple[str, tuple[str, ...], str | None, float], ...
    ] = ()  # (mapping, cmd, expect, timeout)
    inputs: dict[str, str] = field(default_factory=dict)  # secret HMACs, network hashes


@dataclass(frozen=True)
class VolumeWork:
    name: str
    labels: dict[str, str]


@dataclass(frozen=True)
class NetworkWork:
    """A network to create (or, on replace, remove first: its settings changed)."""

    name: str
    labels: dict[str, str]
    internal: bool
    dns: bool
    subnet: str | None
    driver: str


@dataclass(frozen=True)
class SecretWork:
    """A Podman secret to create (or replace) from a file or an env var read at apply time.
    The plan holds where the value comes from and its keyed HMAC, never the value."""

    name: str
    labels: dict[str, str]
    file: str | None
    env: str | None
    digest: str


@dataclass(frozen=True)
class RemoveWork:
    """A container or image to delete, by id (never by name alone: the id is what we own)."""

    name: str
    id: str
    stop_timeout_s: float
    # An image still used by a container podform does not replace (another stack's, one made
    # by hand) is kept, not a failure: set for superseded builds, which nobody asked to delete.
    keep_if_in_use: bool = False


@dataclass(frozen=True)
class MachineWork:
    """What the executor needs for one `podman machine` operation."""

    name: str
    provider: str | None
    settings: dict[str, Any]  # init/set flags: cpus, memory_mib, disk_gib, rootful, volumes
    start_after: bool = False
    stop_first: bool = False


# Action ids: how actions name each other in depends_on.
def image_action_id(connection: str, name: str) -> str:
    return f"Image/{connection}:{name}"


def volume_action_id(connection: str, name: str) -> str:
    return f"Volume/{connection}:{name}"


def network_action_id(connection: str, name: str) -> str:
    return f"Network/{connection}:{name}"


def secret_action_id(connection: str, name: str) -> str:
    return f"Secret/{connection}:{name}"


def container_action_id(name: str) -> str:
    return f"Container/{name}"


def machine_action_id(name: str) -> str:
    return f"Machine/{name}"


@dataclass(frozen=True)
class Action:
    id: str  # unique: "Container/llm-web-1", "Image/web", "Volume/:models"
    kind: Kind
    name: str  # what the user reads
    verb: Verb
    operation: Operation
    reason: str
    connection: str = ""  # "" = the default connection, else a machine name
    changes: tuple[Change, ...] = ()
    depends_on: tuple[str, ...] = ()
    work: (
        ImageWork
        | ContainerWork
        | MachineWork
        | RemoveWork
        | VolumeWork
        | NetworkWork
        | SecretWork
        | None
    ) = None
    warnings: tuple[str, ...] = ()
    known_after: str = ""  # DEFERRED: the machine whose start comes first

    @property
    def changes_something(self) -> bool:
        return self.verb is not Verb.UNCHANGED


@dataclass(frozen=True)
class Plan:
    stack: str
    actions: tuple[Action, ...]
    warnings: tuple[str, ...] = ()
    errors: tuple[
        str, ...
    ] = ()  # the plan cannot be applied (e.g. a name taken by a foreign container)

    def is_empty(self) -> bool:
        return not any(a.changes_something for a in self.actions)

    def pending(self) -> list[Action]:
        return [a for a in self.actions if a.changes_something]

    def counts(self) -> dict[str, int]:
        out = {v.value: 0 for v in Verb}
        for a in self.actions:
            out[a.verb.value] += 1
        return out

    def render(self, color: bool = False, show_unchanged: bool = True) -> str:
        """Terraform-style text, grouped by kind, aligned; colour only when asked."""
        shown = [a for a in self.actions if show_unchanged or a.changes_something or a.warnings]
        width = max((len(a.name) for a in shown), default=0)
        lines: list[str] = []
        for kind in KIND_ORDER:
            group = [a for a in shown if a.kind == kind]
            if not group:
                continue
            lines.append(f"{kind}s:")
            for a in group:
                symbol = SYMBOLS[a.verb]
                where = f" (machine {a.connection})" if a.connection else ""
                head = f"  {symbol:>3} {a.name:<{width}}  {a.verb.value}"
                if a.verb is Verb.DEFERRED:
                    lines.append(
                        _paint(f"  {symbol:>3} {a.name:<{width}}  {a.reason}", a.verb, color)
                    )
                    continue
                if a.operation is not Operation.NONE and a.operation != a.verb.value:
                    head += f" ({a.operation})"
                lines.append(_paint(f"{head}: {a.reason}{where}", a.verb, color))
                lines.extend(f"        {c}" for c in a.changes)
                lines.extend(f"        warning: {w}" for w in a.warnings)
        for w in self.warnings:
            lines.append(f"warning: {w}")
        for e in self.errors:
            lines.append(f"error: {e}")
        c = self.counts()
        lines.append(
            f"Plan for stack {self.stack!r}: {c['create']} to create, {c['update']} to update, "
            f"{c['replace']} to replace, {c['delete']} to delete, {c['unchanged']} unchanged"
            + (f", {c['deferred']} known after a machine starts." if c["deferred"] else ".")
        )
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "changes": not self.is_empty(),
            "counts": self.counts(),
            "warnings": list(self.warnings),
            "errors": list(self.errors),
            "actions": [
                {
                    "id": a.id,
                    "kind": a.kind.value,
                    "name": a.name,
                    "action": a.verb.value,
                    "operation": a.operation.value,
                    "reason": a.reason,
                    "connection": a.connection or None,
                    "changes": [{"path": c.path, "old": c.old, "new": c.new} for c in a.changes],
                    "warnings": list(a.warnings),
                    "known_after": {"machine": a.known_after} if a.known_after else None,
                }
                for a in self.actions
            ],
        }


@dataclass
class PlanOptions:
    prune: bool = False
    allow_empty: bool = False
    allow_recreate: bool = False
    secret_digests: dict[str, str] = field(default_factory=dict)  # Secret name -> keyed HMAC
