"""plan(desired, observed, recorded, options) -> Plan: every image, volume and container decision.

Machine decisions come in from machine_planner.py, `podform delete` is planned by
planner_delete.py; each decision carries its reason.

Pure: no I/O. What needs reading first (image content hashes, Podman's objects, the
inventory) is passed in. Change detection is by label hash, never by comparing inspect
output field by field; the recorded spec only feeds the human-readable "what changed".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.engine.drift import crash_loop, field_changes, short
from reconciler.engine.hashing import (
    masked_spec,
    spec_hash,
    stack_labels,
    workload_spec,
)
from reconciler.engine.observed import (
    Observed,
    ObservedContainer,
    ObservedImage,
    ProbeResult,
    Recorded,
)
from reconciler.engine.plan import (
    Action,
    Change,
    ContainerWork,
    ImageWork,
    Kind,
    Operation,
    Plan,
    PlanOptions,
    RemoveWork,
    Verb,
    VolumeWork,
    container_action_id,
    image_action_id,
    volume_action_id,
)
from reconciler.engine.planner_networks import Shared, plan_shared, prune_shared
from reconciler.labels import (
    LABEL_CONTENT_HASH,
    LABEL_NAME,
    LABEL_REPLICA,
    LABEL_SPEC_HASH,
    LABEL_STACK,
)
from reconciler.manifests.model import Desired, Healthcheck, Image, Workload

# `condition: healthy` waits what the dependency's check allows, plus this for the checks' own
# start-up (exec into the container, Podman's bookkeeping).
HEALTH_MARGIN_S = 5.0


def health_wait_s(hc: Healthcheck | None) -> float:
    """How long a health check may take to pass: startPeriod + retries x (interval + timeout)."""
    if hc is None:
        return HEALTH_MARGIN_S
    return hc.start_period_s + hc.retries * (hc.interval_s + hc.timeout_s) + HEALTH_MARGIN_S


@dataclass
class _Images:
    """Per (connection, ref): the image id workloads will run, or None when it changes now."""

    ids: dict[tuple[str, str], str | None] = field(default_factory=dict)
    action_ids: dict[tuple[str, str], str] = field(default_factory=dict)
    changing: set[tuple[str, str]] = field(default_factory=set)


def plan(
    desired: Desired,
    observed: Observed,
    recorded: Recorded,
    content_hashes: dict[str, str],
    options: PlanOptions | None = None,
    machine_actions: list[Action] | None = None,
    *,
    deferred: Mapping[str, str] | None = None,
    only: str | None = None,
) -> Plan:
    """Compare desired with observed and say, with a reason each, what apply must do.

    `deferred` (connection -> machine): connections inside a machine that is not running yet;
    each resource there is one DEFERRED action, "known after machine NAME starts".
    `only`: plan the resources of this connection alone (the second phase, once the machine
    runs; engine/phases.py composes both).
    """
    planner = _Planner(desired, observed, recorded, content_hashes, options or PlanOptions())
    planner.deferred = dict(deferred or {})
    planner.only = only
    return planner.run(machine_actions or [])


class _Planner:
    def __init__(
        self,
        desired: Desired,
        observed: Observed,
        recorded: Recorded,
        content_hashes: dict[str, str],
        options: PlanOptions,
    ) -> None:
        self.d = desired
        self.o = observed
        self.r = recorded
        self.hashes = content_hashes
        self.opt = options
        self.stack = desired.stack.name
        self.actions: list[Action] = []
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.images = _Images()
        self.machine_ids: dict[str, str] = {}
        self.shared = Shared()
        self.deferred: dict[str, str] = {}
        self.only: str | None = None

    def run(self, machine_actions: list[Action]) -> Plan:
        self.actions.extend(machine_actions)
        self.machine_ids = {
            a.name: a.id for a in machine_actions if a.kind is Kind.MACHINE and a.changes_something
        }
        for c, reason in sorted(self.o.errors.items()):
            where = f"machine {c}" if c else "the default connection"
            self.warnings.append(f"could not observe {where}: {reason}")
        for image in sorted(self.d.images.values(), key=lambda i: i.name):
            self._image(image)
        for w in self.d.workloads.values():
            if w.image is None:
                self._implicit_image(w)
        for (conn, vol), users in sorted(self.d.named_volumes().items()):
            self._volume(conn, vol, users)
        conns = {w.connection for w in self.d.workloads.values()} | {""}
        self.shared = plan_shared(
            self.d,
            self.o,
            self.r,
            self.opt.secret_digests,
            {c: self._machine_dep(c) for c in conns},
            self._not_now,
        )
        self.actions.extend(self.shared.actions)
        self.errors.extend(self.shared.errors)
        for name in self.d.workload_order():
            self._workload(self.d.workloads[name])
        self._scale_down_and_prune()
        return Plan(self.stack, tuple(self.actions), tuple(self.warnings), tuple(self.errors))

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

    # --- containers ---------------------------------------------------------------------
    def _containers_on(self, conn: str) -> dict[str, ObservedContainer]:
        return {c.name: c for c in self.o.containers.get(conn, [])}

    def _workload(self, w: Workload) -> None:
        conn = w.connection
        names = w.container_names(self.stack)
        if any([self._not_now(conn, Kind.CONTAINER, container_action_id(n), n) for n in names]):
            return  # (a list, not a generator: every replica gets its DEFERRED action)
        observed = self._containers_on(conn)
        key = (conn, w.image_ref)
        image_id = self.images.ids.get(key)
        image_changing = key in self.images.changing
        deps = list(self._machine_dep(conn))
        if key in self.images.action_ids:
            deps.append(self.images.action_ids[key])
        deps += [volume_action_id(conn, m.source) for m in w.volumes if not m.bind]
        shared_deps, inputs = self.shared.for_workload(w)
        deps += shared_deps
        healthy: list[str] = []
        healthy_wait = 0.0
        for dep in w.depends_on:
            other = self.d.workloads[dep.name]
            others = other.container_names(self.stack)
            deps += [container_action_id(n) for n in others]
            if dep.condition == "healthy":
                healthy += others
                healthy_wait = max(healthy_wait, health_wait_s(other.healthcheck))
        probes = tuple(
            (m.name, m.probe.command, m.probe.expect, m.probe.timeout_s)
            for m in (self.d.mappings[n] for n in w.mappings)
            if m.probe is not None
        )
        new_spec = workload_spec(w, image_id or "", inputs)
        want_hash = spec_hash(new_spec) if image_id else ""
        for n, cname in enumerate(w.container_names(self.stack), start=1):
            labels = (
                stack_labels(self.stack, "Workload", w.name) | w.labels | {LABEL_REPLICA: str(n)}
            )
            found = observed.get(cname)
            if found is not None and found.labels.get(LABEL_STACK) != self.stack:
                owner = found.labels.get(LABEL_STACK)
                self.errors.append(
                    f"container {cname} already exists and was not created by podform"
                    + (f" for this stack (it belongs to stack {owner!r})" if owner else "")
                    + "; rename or remove it"
                )
                continue
            work = ContainerWork(
                cname,
                n,
                w,
                labels,
                found.id if found else "",
                tuple(healthy),
                healthy_wait_s=healthy_wait,
                probes=probes,
                inputs=inputs,
            )
            self._container(w, cname, found, work, tuple(deps), new_spec, want_hash, image_changing)

    def _container(
        self,
        w: Workload,
        cname: str,
        found: ObservedContainer | None,
        work: ContainerWork,
        deps: tuple[str, ...],
        new_spec: dict[str, Any],
        want_hash: str,
        image_changing: bool,
    ) -> None:
        aid = container_action_id(cname)
        conn = w.connection

        def add(
            verb: Verb,
            op: Operation,
            reason: str,
            changes: tuple[Change, ...] = (),
            warnings: tuple[str, ...] = (),
        ) -> None:
            self._add(
                Action(
                    aid,
                    Kind.CONTAINER,
                    cname,
                    verb,
                    op,
                    reason,
                    conn,
                    changes,
                    deps,
                    work,
                    warnings,
                )
            )

        if found is None:
            add(
                Verb.CREATE,
                Operation.CREATE,
                "container does not exist" + ("" if w.state == "running" else " (created stopped)"),
            )
            return
        if image_changing:
            add(
                Verb.REPLACE,
                Operation.REPLACE,
                f"image {w.image or w.image_ref} is being built or pulled",
            )
            return
        have_hash = found.labels.get(LABEL_SPEC_HASH, "")
        if have_hash != want_hash:
            rec = self.r.containers.get(cname)
            changes = (
                tuple(field_changes(rec.spec, masked_spec(new_spec))) if rec and rec.spec else ()
            )
            if rec is None or not rec.spec:
                reason = "spec changed (no previous spec recorded to compare)"
            elif not changes:
                reason = "spec changed (a sensitive value or the image id changed)"
            else:
                reason = "spec changed"
            add(Verb.REPLACE, Operation.REPLACE, reason, changes)
            return
        crash = crash_loop(found, self.r.containers.get(cname), w.state == "running")
        if crash:
            add(Verb.UNCHANGED, Operation.NONE, "crash-looping: left as is", warnings=(crash,))
            return
        if w.state == "running" and not found.running:
            after = f"; machine {conn} has just started" if self.only else ""
            add(
                Verb.UPDATE,
                Operation.START,
                f"container is {found.state}, should be running{after}",
            )
            return
        if w.state == "stopped" and found.running:
            add(Verb.UPDATE, Operation.STOP, "container is running, should be stopped")
            return
        rec = self.r.containers.get(cname)
        if work.probes and found.running and (rec is None or rec.probe is not ProbeResult.PASSED):
            add(
                Verb.UNCHANGED,
                Operation.PROBE,
                "up to date; GPU probe has not passed yet, checking again",
            )
            return
        add(Verb.UNCHANGED, Operation.NONE, f"up to date (spec {short(want_hash)})")

    # --- deletes ------------------------------------------------------------------------
    def _scale_down_and_prune(self) -> None:
        wanted = {n for w in self.d.workloads.values() for n in w.container_names(self.stack)}
        prune = self.opt.prune or self.d.stack.prune
        if prune and self.d.is_empty() and not self.opt.allow_empty:
            self.errors.append(
                "refusing to prune: the manifests declare nothing, which would delete everything "
                "this stack owns (use --allow-empty if that is what you want)"
            )
            return
        everything_else = tuple(a.id for a in self.actions)
        left_alone = 0  # candidates kept because there is no inventory to prove ownership
        for conn in sorted(self.o.containers):
            for c in sorted(self.o.containers[conn], key=lambda c: c.name):
                if c.labels.get(LABEL_STACK) != self.stack or c.name in wanted:
                    continue
                declared = c.labels.get(LABEL_NAME) in self.d.workloads
                if not declared and not prune:
                    continue
                rec = self.r.containers.get(c.name)
                if not self.r.valid:
                    left_alone += 1
                    continue
                if rec is None or rec.id != c.id:
                    # Adoption recorded every container with podform's labels *and* name.
                    self.warnings.append(
                        f"container {c.name} carries this stack's labels but not the name "
                        "podform gives its containers, so podform did not create it: left alone"
                    )
                    continue
                reason = (
                    f"replica {c.labels.get(LABEL_REPLICA)} is beyond replicas: "
                    f"{self.d.workloads[c.labels[LABEL_NAME]].replicas}"
                    if declared
                    else "no longer declared (prune)"
                )
                w = self.d.workloads.get(c.labels.get(LABEL_NAME, ""))
                timeout = w.stop_timeout_s if w else 10.0
                self._add(
                    Action(
                        container_action_id(c.name),
                        Kind.CONTAINER,
                        c.name,
                        Verb.DELETE,
                        Operation.REMOVE,
                        reason,
                        conn,
                        (),
                        everything_else,
                        RemoveWork(c.name, c.id, timeout),
                    )
                )
        if left_alone:
            self.warnings.append(
                f"no usable inventory (the file is missing or damaged): {left_alone} container(s) "
                "with this stack's labels that are no longer wanted were left alone, since "
                "nothing is deleted without a record that podform created it (prune skipped "
                "this time)"
            )
        if prune and self.r.valid:
            self._prune_images(everything_else)
            # Replaced containers come back with the new spec: they leave what it no longer joins.
            leaving = {
                a.name
                for a in self.actions
                if a.kind is Kind.CONTAINER and a.verb in (Verb.DELETE, Verb.REPLACE)
            }
            deleted = {
                a.name for a in self.actions if a.verb is Verb.DELETE and a.kind is Kind.CONTAINER
            }
            after = everything_else + tuple(container_action_id(n) for n in sorted(deleted))
            actions, warnings = prune_shared(
                self.d, self.o, self.r, after, leaving, "no longer used (prune)"
            )
            self.actions.extend(actions)
            self.warnings.extend(warnings)

    def _prune_images(self, after: tuple[str, ...]) -> None:
        declared = set(self.d.images)
        container_deletes = tuple(a.id for a in self.actions if a.verb is Verb.DELETE)
        for name, rec in sorted(self.r.images.items()):
            if name in declared:
                continue
            conn = rec.get("connection", "")
            img = next((i for i in self.o.images.get(conn, []) if i.id == rec.get("id")), None)
            if img is None or img.labels.get(LABEL_STACK) != self.stack:
                continue
            self._add(
                Action(
                    image_action_id(conn, name),
                    Kind.IMAGE,
                    name,
                    Verb.DELETE,
                    Operation.REMOVE,
                    "no longer declared (prune)",
                    conn,
                    (),
                    after + container_deletes,
                    RemoveWork(rec.get("ref", name), img.id, 0.0),
                )
            )

    # --- helpers ------------------------------------------------------------------------
    def _not_now(self, conn: str, kind: Kind, aid: str, name: str) -> bool:
        """True when a resource on `conn` is not planned in this pass: it belongs to another
        phase, its machine is not running yet (one DEFERRED action says so), or its
        connection could not be observed (a plan warning says why)."""
        if self.only is not None and conn != self.only:
            return True
        machine = self.deferred.get(conn)
        if machine is not None:
            if not any(a.id == aid for a in self.actions):
                reason = f"known after machine {machine} starts"
                self._add(
                    Action(
                        aid,
                        kind,
                        name,
                        Verb.DEFERRED,
                        Operation.NONE,
                        reason,
                        conn,
                        known_after=machine,
                    )
                )
            return True
        return conn in self.o.errors

    def _machine_dep(self, conn: str) -> tuple[str, ...]:
        return (self.machine_ids[conn],) if conn in self.machine_ids else ()

    def _add(self, action: Action) -> None:
        self.actions.append(action)
