"""What a pass must observe on one connection, decided from the manifests and the inventory.

Pure. Observation (runtime/orchestrator.py) asks only for what the planners will look at, so
the cost of a pass follows the stack, not the host: Podman 4.x's full image list computes every
image's size and container count (about 150 ms for a dozen images here, growing with the
store), while inspecting one image by name costs about 3 ms.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.engine.observed import Recorded
from reconciler.manifests.model import Desired


@dataclass(frozen=True)
class Needs:
    """images: the refs and ids to inspect (each declared image, each workload's image, each
    image the stack recorded, for prune and delete); networks / secrets: whether the stack
    has or had any there, so a stack without secrets pays no call for them."""

    images: tuple[str, ...]
    networks: bool
    secrets: bool


def needs(desired: Desired, recorded: Recorded, key: str) -> Needs:
    """What the planners will read about connection KEY ("" is the default connection)."""
    images: dict[str, None] = {}  # insertion-ordered set: the same order every pass
    for image in sorted(desired.images.values(), key=lambda i: i.name):
        if image.connection == key:
            images[image.ref] = None
    for w in sorted(desired.workloads.values(), key=lambda w: w.name):
        if w.connection == key and w.image_ref:
            images[w.image_ref] = None
    for _, rec in sorted(recorded.images.items()):
        if rec.get("connection", "") == key and rec.get("id"):
            images[rec["id"]] = None
    prefix = f"{key}:"
    return Needs(
        images=tuple(images),
        networks=bool(
            desired.workloads
            or desired.networks
            or any(k.startswith(prefix) for k in recorded.networks)
        ),
        secrets=bool(desired.secrets or any(k.startswith(prefix) for k in recorded.secrets)),
    )
