"""Images (built by content hash, or pulled by policy) and named volumes: part of plan().

planner.py runs ImagePlanner first, on the same action list, and reads `images` afterwards:
which image id each workload will run, or that it changes in this pass (then its containers
are replaced after the build or pull). Pure, like the planner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.engine.drift import short
from reconciler.engine.hashing import stack_labels
from reconciler.engine.observed import Observed, ObservedImage
from reconciler.engine.plan import (
    Action,
    Change,
    ImageWork,
    Kind,
    Operation,
    Verb,
    VolumeWork,
    image_action_id,
    volume_action_id,
)
from reconciler.labels import LABEL_CONTENT_HASH, LABEL_STACK
from reconciler.manifests.model import Desired, Image, Workload

NotNow = Callable[[str, Kind, str, str], bool]


@dataclass
class Images:
    """Per (connection, ref): the image id workloads will run, or None when it changes now."""

    ids: dict[tuple[str, str], str | None] = field(default_factory=dict)
    action_ids: dict[tuple[str, str], str] = field(default_factory=dict)
    changing: set[tuple[str, str]] = field(default_factory=set)


class ImagePlanner:
    """One action per declared Image, per image a workload names by reference, and per named
    volume; appended to the planner's `actions`, problems to its `errors`."""

    def __init__(
        self,
        desired: Desired,
        observed: Observed,
        content_hashes: dict[str, str],
        actions: list[Action],
        errors: list[str],
        not_now: NotNow,
        machine_dep: Callable[[str], tuple[str, ...]],
    ) -> None:
        self.d = desired
        self.o = observed
        self.hashes = content_hashes
        self.stack = desired.stack.name
        self.actions = actions
        self.errors = errors
        self.images = Images()
        self._not_now = not_now
        self._machine_dep = machine_dep

    def run(self) -> None:
        for image in sorted(self.d.images.values(), key=lambda i: i.name):
            self._image(image)
        for w in self.d.workloads.values():
            if w.image is None:
                self._implicit_image(w)
        for (conn, vol), users in sorted(self.d.named_volumes().items()):
            self._volume(conn, vol, users)

    def _add(self, action: Action) -> None:
        self.actions.append(action)

    # --- images -------------------------------------------------------------------------
    def _find_image(self, conn: str, ref: str) -> ObservedImage | None:
        for img in self.o.images.get(conn, []):
            if ref in img.refs:
                return img
        return None

    def _image(self, image: Image) -> None:
        conn, key = image.connection, (image.connection, image.ref)
        aid = image_action_id(conn, image.name)
        if self._not_now(conn, Kind.IMAGE, aid, image.name):
            return
        found = self._find_image(conn, image.ref)
        deps = self._machine_dep(conn)
        labels = stack_labels(self.stack, "Image", image.name) | image.labels
        if image.build is not None:
            want = self.hashes[image.name]
            labels = labels | {LABEL_CONTENT_HASH: want}
            work = ImageWork(image.ref, image.build, want, labels, image.pull_policy)
            have = found.labels.get(LABEL_CONTENT_HASH, "") if found else ""
            if found and have == want:
                self._add(
                    Action(
                        aid,
                        Kind.IMAGE,
                        image.name,
                        Verb.UNCHANGED,
                        Operation.NONE,
                        f"{image.ref} carries content hash {short(want)}",
                        conn,
                    )
                )
                self.images.ids[key] = found.id
                return
            if found is None:
                verb, reason = Verb.CREATE, f"no image {image.ref} yet"
            elif not have:
                verb, reason = (
                    Verb.REPLACE,
                    f"{image.ref} was not built by podform (no content hash)",
                )
            else:
                verb, reason = Verb.REPLACE, "build inputs changed"
            changes = (Change("content-hash", short(have) or None, short(want)),) if found else ()
            self._add(
                Action(
                    aid,
                    Kind.IMAGE,
                    image.name,
                    verb,
                    Operation.BUILD,
                    reason,
                    conn,
                    changes,
                    deps,
                    work,
                )
            )
            self._mark_changing(key, aid)
            return
        work = ImageWork(image.ref, None, "", labels, image.pull_policy)
        self._pulled(aid, image.name, conn, image.ref, image.pull_policy, found, deps, work)

    def _implicit_image(self, w: Workload) -> None:
        conn, key = w.connection, (w.connection, w.image_ref)
        if key in self.images.ids:
            return
        aid = image_action_id(conn, w.image_ref)
        if self._not_now(conn, Kind.IMAGE, aid, w.image_ref):
            return
        found = self._find_image(conn, w.image_ref)
        work = ImageWork(w.image_ref, None, "", {}, "IfNotPresent")
        self._pulled(
            aid,
            w.image_ref,
            conn,
            w.image_ref,
            "IfNotPresent",
            found,
            self._machine_dep(conn),
            work,
        )

    def _pulled(
        self,
        aid: str,
        name: str,
        conn: str,
        ref: str,
        policy: str,
        found: ObservedImage | None,
        deps: tuple[str, ...],
        work: ImageWork,
    ) -> None:
        key = (conn, ref)
        if found is not None and policy != "Always":
            self._add(
                Action(
                    aid, Kind.IMAGE, name, Verb.UNCHANGED, Operation.NONE, f"{ref} is present", conn
                )
            )
            self.images.ids[key] = found.id
            return
        if found is None and policy == "Never":
            self.errors.append(f"image {ref} is not present and its pull policy is Never")
            self.images.ids[key] = None
            return
        if found is not None:
            self._add(
                Action(
                    aid,
                    Kind.IMAGE,
                    name,
                    Verb.UPDATE,
                    Operation.PULL,
                    "pull policy Always",
                    conn,
                    (),
                    deps,
                    work,
                )
            )
            self.images.ids[key] = found.id  # a new id takes effect on the next pass
            self.images.action_ids[key] = aid
            return
        self._add(
            Action(
                aid,
                Kind.IMAGE,
                name,
                Verb.CREATE,
                Operation.PULL,
                f"{ref} is not present",
                conn,
                (),
                deps,
                work,
            )
        )
        self._mark_changing(key, aid)

    def _mark_changing(self, key: tuple[str, str], aid: str) -> None:
        self.images.ids[key] = None
        self.images.action_ids[key] = aid
        self.images.changing.add(key)

    # --- volumes ------------------------------------------------------------------------
    def _volume(self, conn: str, name: str, users: list[str]) -> None:
        aid = volume_action_id(conn, name)
        if self._not_now(conn, Kind.VOLUME, aid, name):
            return
        found = next((v for v in self.o.volumes.get(conn, []) if v.name == name), None)
        if found is None:
            self._add(
                Action(
                    aid,
                    Kind.VOLUME,
                    name,
                    Verb.CREATE,
                    Operation.CREATE,
                    f"named volume used by {', '.join(sorted(users))} does not exist",
                    conn,
                    (),
                    self._machine_dep(conn),
                    VolumeWork(
                        name, self.d.stack.labels | stack_labels(self.stack, "Volume", name)
                    ),
                )
            )
        else:
            owner = (
                ""
                if found.labels.get(LABEL_STACK) == self.stack
                else " (not created by this stack; left as is)"
            )
            self._add(
                Action(
                    aid, Kind.VOLUME, name, Verb.UNCHANGED, Operation.NONE, f"exists{owner}", conn
                )
            )
