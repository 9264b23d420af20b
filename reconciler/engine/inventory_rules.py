"""What the inventory holds after a pass: the rules, apart from the file that stores them.

Pure. runtime/inventory.py reads and writes the file under its lock; runtime/orchestrator.py
turns the executor's outcomes into `Applied` values and calls record(). Prune and crash-loop
detection rely on these rules, so they are tested without Podman.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.engine.hashing import masked_spec
from reconciler.engine.observed import ProbeResult, Recorded, RecordedContainer
from reconciler.engine.plan import (
    Action,
    ContainerWork,
    ImageWork,
    Kind,
    MachineWork,
    NetworkWork,
    Operation,
    Plan,
    RemoveWork,
    SecretWork,
    Verb,
)


@dataclass(frozen=True)
class Applied:
    """What one action achieved, as far as the inventory cares."""

    done: bool  # it succeeded (a degraded GPU probe included)
    container_id: str = ""
    image_id: str = ""
    spec: dict[str, Any] | None = None
    probe: ProbeResult = ProbeResult.NOT_RUN
    object_id: str = ""  # a created secret's id (Podman 4.3 keeps no labels on secrets)
    created: bool = False  # it made its object although a later step failed (init, then start)


def record(
    before: Recorded,
    plan: Plan,
    applied: Mapping[str, Applied],
    restarted: Collection[str] = (),
) -> Recorded:
    """The inventory after a pass: what podform created and the spec it applied.

    A container is recorded when it was created now or is a declared replica that is up to
    date; a deleted one is dropped. A failed replace keeps the old record (the old container
    may still exist), so the next pass still knows it. A machine podform initialised is
    recorded even when its first start failed, so `delete --machines` can remove it.
    `restarted`: machines started in this pass; starting their containers again is not a
    crash loop.
    """
    after = Recorded(valid=True, secret_key=before.secret_key)
    if before.valid:
        after.containers = dict(before.containers)
        after.images = dict(before.images)
        after.volumes = dict(before.volumes)
        after.machines = dict(before.machines)
        after.networks = dict(before.networks)
        after.secrets = dict(before.secrets)
    for action in plan.actions:
        result = applied.get(action.id)
        if result is None:
            continue
        if not result.done:
            if action.kind == Kind.MACHINE and result.created:
                _record_machine(after.machines, action)
            continue
        if action.verb is Verb.DELETE:
            if action.kind == Kind.CONTAINER:
                after.containers.pop(action.name, None)
            elif action.kind == Kind.IMAGE:
                # Only the record of the image removed: a superseded build's delete must not
                # drop the record of the build that replaced it.
                removed = action.work.id if isinstance(action.work, RemoveWork) else None
                if after.images.get(action.name, {}).get("id") in (removed, None):
                    after.images.pop(action.name, None)
            elif action.kind == Kind.VOLUME:
                after.volumes.pop(f"{action.connection}:{action.name}", None)
            elif action.kind == Kind.MACHINE:
                after.machines.pop(action.name, None)
            elif action.kind == Kind.NETWORK:
                after.networks.pop(f"{action.connection}:{action.name}", None)
            elif action.kind == Kind.SECRET:
                after.secrets.pop(f"{action.connection}:{action.name}", None)
            continue
        if action.kind == Kind.MACHINE:
            if action.verb in (Verb.CREATE, Verb.REPLACE):
                _record_machine(after.machines, action)
            continue
        work = action.work
        if action.kind == Kind.CONTAINER and isinstance(work, ContainerWork):
            prev = after.containers.get(action.name)
            spec = (
                masked_spec(result.spec) if result.spec is not None else (prev.spec if prev else {})
            )
            probe = result.probe or (
                prev.probe if prev and result.spec is None else ProbeResult.NOT_RUN
            )
            after.containers[action.name] = RecordedContainer(
                result.container_id or work.old_id,
                work.workload.name,
                action.connection,
                spec,
                probe,
                starts_in_a_row(action, prev, action.connection in restarted),
            )
        elif (
            action.kind == Kind.IMAGE
            and isinstance(work, ImageWork)
            and action.verb is not Verb.UNCHANGED
        ):
            after.images[action.name] = {
                "ref": work.ref,
                "id": result.image_id,
                "connection": action.connection,
                "content_hash": work.content_hash,
            }
        elif isinstance(work, NetworkWork) and action.verb is not Verb.UNCHANGED:
            after.networks[f"{action.connection}:{action.name}"] = {
                "name": action.name,
                "connection": action.connection,
            }
        elif isinstance(work, SecretWork) and action.verb is not Verb.UNCHANGED:
            after.secrets[f"{action.connection}:{action.name}"] = {
                "name": action.name,
                "connection": action.connection,
                "id": result.object_id,
                "hmac": work.digest,
            }
        elif action.kind == Kind.VOLUME and action.verb is Verb.CREATE:
            after.volumes[f"{action.connection}:{action.name}"] = {
                "name": action.name,
                "connection": action.connection,
            }
    return after


def starts_in_a_row(
    action: Action, prev: RecordedContainer | None, machine_restarted: bool = False
) -> int:
    """Count podform's starts of a container that keeps stopping; any pass that finds it as
    declared (or a new container) resets the count. The planner reports a crash loop from it.
    A start after its machine started again (a reboot) is no evidence either way."""
    if action.operation == Operation.START:
        if machine_restarted:
            return prev.starts if prev else 0
        return (prev.starts if prev else 0) + 1
    if action.warnings and prev is not None:  # left alone as crash-looping: keep the count
        return prev.starts
    return 0


def _record_machine(machines: dict[str, dict[str, object]], action: Action) -> None:
    """Remember a machine podform created (and its volumes, which Podman cannot report), so
    `delete --machines` removes only those."""
    work = action.work
    if not isinstance(work, MachineWork):
        return
    machines[action.name] = {
        "provider": work.provider or "",
        "volumes": list(work.settings.get("volumes") or []),
        "created_by": "podform",
    }
