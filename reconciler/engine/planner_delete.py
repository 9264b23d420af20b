"""`podform delete`: the plan that removes what the manifests declare.

Beside the planner: the same observed state and inventory, a different question. Named
volumes are only touched when asked (`--volumes`); machines (`--machines`) are planned by
machine_planner.plan_delete_all on top of this plan.
"""

from __future__ import annotations

from reconciler.engine.observed import Observed, Recorded
from reconciler.engine.plan import (
    Action,
    Kind,
    Operation,
    Plan,
    RemoveWork,
    Verb,
    container_action_id,
    image_action_id,
    volume_action_id,
)
from reconciler.engine.planner_networks import prune_shared, secret_places
from reconciler.labels import LABEL_NAME, LABEL_STACK
from reconciler.manifests.model import Desired


def plan_delete(desired: Desired, observed: Observed, recorded: Recorded, *, volumes: bool) -> Plan:
    """`podform delete`: remove the declared workloads' containers, the images podform built
    for declared Images and, only when asked, named volumes. Machines (`--machines`) are
    added by machine_planner.plan_delete_all, after all of these."""
    stack = desired.stack.name
    actions: list[Action] = []
    for w in desired.workloads.values():
        for c in observed.containers.get(w.connection, []):
            if c.labels.get(LABEL_STACK) == stack and c.labels.get(LABEL_NAME) == w.name:
                actions.append(
                    Action(
                        container_action_id(c.name),
                        Kind.CONTAINER,
                        c.name,
                        Verb.DELETE,
                        Operation.REMOVE,
                        "declared in the manifests being deleted",
                        w.connection,
                        work=RemoveWork(c.name, c.id, w.stop_timeout_s),
                    )
                )
    containers = tuple(a.id for a in actions)
    for image in desired.images.values():
        rec = recorded.images.get(image.name) or {}
        found = observed.stack_image(image.connection, rec.get("id"), stack)
        if found is not None:
            actions.append(
                Action(
                    image_action_id(image.connection, image.name),
                    Kind.IMAGE,
                    image.name,
                    Verb.DELETE,
                    Operation.REMOVE,
                    "built by podform for this stack",
                    image.connection,
                    (),
                    containers,
                    RemoveWork(image.ref, found.id, 0),
                )
            )
    warnings: list[str] = []
    if volumes:
        for (conn, name), _users in sorted(desired.named_volumes().items()):
            found_volume = next((v for v in observed.volumes.get(conn, []) if v.name == name), None)
            if found_volume is None:
                continue
            kept = _foreign_volume(found_volume.labels, recorded, conn, name, stack)
            if kept:
                warnings.append(f"volume {name} kept: {kept}")
            else:
                actions.append(
                    Action(
                        volume_action_id(conn, name),
                        Kind.VOLUME,
                        name,
                        Verb.DELETE,
                        Operation.REMOVE,
                        "--volumes: its data is deleted",
                        conn,
                        (),
                        containers,
                        RemoveWork(name, name, 0),
                    )
                )
    shared, left = prune_shared(
        desired,
        observed,
        recorded,
        containers,
        {a.name for a in actions if a.kind is Kind.CONTAINER},
        "declared in the manifests being deleted",
        only=set(desired.used_networks()) | set(secret_places(desired)),
    )
    actions.extend(shared)
    warnings.extend(left)
    return Plan(stack, tuple(actions), tuple(warnings))


def _foreign_volume(
    labels: dict[str, str], recorded: Recorded, conn: str, name: str, stack: str
) -> str | None:
    """Why `delete --volumes` must keep this volume (podform did not create it), or None.

    Like prune: the inventory must record it and its labels must name this stack. A volume the
    user made before (or another stack's) holds data podform has no right to destroy.
    """
    if labels.get(LABEL_STACK) != stack:
        owner = labels.get(LABEL_STACK)
        return (
            f"it belongs to stack {owner!r}"
            if owner
            else "podform did not create it (no podform labels); remove it with podman volume rm"
        )
    if not recorded.valid:
        return "the inventory is missing or unreadable, so podform cannot prove it created it"
    if f"{conn}:{name}" not in recorded.volumes:
        return "it carries this stack's labels but is not in the inventory"
    return None
