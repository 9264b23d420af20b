"""plan(desired, observed, recorded, options) -> Plan: every image, volume and container decision.

Images and named volumes are planned by planner_images.py, networks and secrets by
planner_networks.py, the scale-down and prune deletes by planner_prune.py, machines by
machine_planner.py; `podform delete` is planned by planner_delete.py. Each decision carries its
reason.

Pure: no I/O. What needs reading first (image content hashes, Podman's objects, the
inventory) is passed in. Change detection is by label hash, never by comparing inspect
output field by field; the recorded spec only feeds the human-readable "what changed".
"""

from __future__ import annotations

from collections.abc import Mapping
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
    ProbeResult,
    Recorded,
)
from reconciler.engine.plan import (
    Action,
    Change,
    ContainerWork,
    Kind,
    Operation,
    Plan,
    PlanOptions,
    Verb,
    container_action_id,
    volume_action_id,
)
from reconciler.engine.planner_images import ImagePlanner, Images
from reconciler.engine.planner_networks import Shared, plan_shared
from reconciler.engine.planner_prune import Pruner
from reconciler.labels import (
    LABEL_REPLICA,
    LABEL_SPEC_HASH,
    LABEL_STACK,
)
from reconciler.manifests.model import Desired, Healthcheck, Workload

# `condition: healthy` waits what the dependency's check allows, plus this for the checks' own
# start-up (exec into the container, Podman's bookkeeping).
HEALTH_MARGIN_S = 5.0


def health_wait_s(hc: Healthcheck | None) -> float:
    """How long a health check may take to pass: startPeriod + retries x (interval + timeout)."""
    if hc is None:
        return HEALTH_MARGIN_S
    return hc.start_period_s + hc.retries * (hc.interval_s + hc.timeout_s) + HEALTH_MARGIN_S


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
        self.images = Images()
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
        images = ImagePlanner(
            self.d, self.o, self.hashes, self.actions, self.errors, self._not_now, self._machine_dep
        )
        images.run()
        self.images = images.images
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
        Pruner(self.d, self.o, self.r, self.opt, self.actions, self.errors, self.warnings).run()
        return Plan(self.stack, tuple(self.actions), tuple(self.warnings), tuple(self.errors))

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
