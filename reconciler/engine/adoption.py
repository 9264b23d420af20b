"""Adoption: containers podform evidently created but never recorded join the inventory.

A pass killed between creating a container and saving the inventory (SIGKILL, OOM, a full
disk), or a failed replace, leaves containers that carry this stack's labels and podform's own
name `<stack>-<workload>-<n>` but have no record. Manifests may not set `io.podform.*` labels,
so the label set plus the exact name pattern is proof enough: such a container is recorded as
podform's, and prune and scale-down manage it like any other. A missing or corrupt inventory
is never a reason to adopt (that would make "no record" mean "ours"): adoption only extends a
valid one.

Pure: observed state in, a new Recorded out.
"""

from __future__ import annotations

from dataclasses import replace

from reconciler.engine.observed import Observed, ObservedContainer, Recorded, RecordedContainer
from reconciler.labels import LABEL_KIND, LABEL_NAME, LABEL_REPLICA, LABEL_STACK


def podform_named(c: ObservedContainer, stack: str) -> bool:
    """True when `c` carries this stack's workload labels and the name podform gives them."""
    labels = c.labels
    workload, replica = labels.get(LABEL_NAME, ""), labels.get(LABEL_REPLICA, "")
    return (
        labels.get(LABEL_STACK) == stack
        and labels.get(LABEL_KIND) == "Workload"
        and bool(workload)
        and replica.isdigit()
        and c.name == f"{stack}-{workload}-{int(replica)}"
    )


def adopt(recorded: Recorded, observed: Observed, stack: str) -> Recorded:
    """`recorded` plus every unrecorded (or re-created) container podform evidently made."""
    if not recorded.valid:
        return recorded
    containers = dict(recorded.containers)
    for conn, found in sorted(observed.containers.items()):
        for c in found:
            rec = containers.get(c.name)
            if rec is not None and rec.id == c.id:
                continue
            if not podform_named(c, stack):
                continue
            workload = c.labels[LABEL_NAME]
            # A record under this name for another id is stale: names are unique in Podman.
            containers[c.name] = RecordedContainer(c.id, workload, conn, {})
    if containers == recorded.containers:
        return recorded
    return replace(recorded, containers=containers)
