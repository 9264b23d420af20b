"""Scale-down and prune: the deletes at the end of an apply plan.

planner.py runs Pruner last, on the same action list: a container goes only when the
inventory proves podform created it, and every delete waits for the rest of the plan. Pure,
like the planner.
"""

from __future__ import annotations

from reconciler.engine.drift import short
from reconciler.engine.observed import Observed, Recorded
from reconciler.engine.plan import (
    Action,
    ImageWork,
    Kind,
    Operation,
    PlanOptions,
    RemoveWork,
    Verb,
    container_action_id,
    image_action_id,
)
from reconciler.engine.planner_networks import prune_shared
from reconciler.labels import LABEL_NAME, LABEL_REPLICA, LABEL_STACK
from reconciler.manifests.model import Desired


class Pruner:
    """Replicas beyond `replicas` and, with prune, what is no longer declared (containers,
    images, networks, secrets); appended to the planner's `actions` after everything else."""

    def __init__(
        self,
        desired: Desired,
        observed: Observed,
        recorded: Recorded,
        options: PlanOptions,
        actions: list[Action],
        errors: list[str],
        warnings: list[str],
    ) -> None:
        self.d = desired
        self.o = observed
        self.r = recorded
        self.opt = options
        self.stack = desired.stack.name
        self.actions = actions
        self.errors = errors
        self.warnings = warnings

    def _add(self, action: Action) -> None:
        self.actions.append(action)

    def run(self) -> None:
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
        kept: list[str] = []  # owned, no longer declared, kept because prune is off
        for conn in sorted(self.o.containers):
            for c in sorted(self.o.containers[conn], key=lambda c: c.name):
                if c.labels.get(LABEL_STACK) != self.stack or c.name in wanted:
                    continue
                declared = c.labels.get(LABEL_NAME) in self.d.workloads
                if not declared and not prune:
                    if c.name in self.r.containers:
                        kept.append(c.name)
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
        if kept:
            # compose says "Found orphan containers"; Terraform would plan them away. podform
            # deletes only when asked, and says what it keeps.
            self.warnings.append(
                f"no longer declared, kept because prune is off: {', '.join(kept)} "
                "(apply --prune removes them)"
            )
        if left_alone:
            self.warnings.append(
                f"no usable inventory (the file is missing or damaged): {left_alone} container(s) "
                "with this stack's labels that are no longer wanted were left alone, since "
                "nothing is deleted without a record that podform created it (prune skipped "
                "this time)"
            )
        if self.r.valid:
            self._superseded_builds(everything_else)
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

    def _superseded_builds(self, after: tuple[str, ...]) -> None:
        """A rebuild leaves the previous build untagged: with models in images that is
        gigabytes per edit. It goes once everything else is done (the containers that ran it
        are replaced by then), if the inventory records it and it carries this stack's labels;
        an image still used elsewhere is kept."""
        for a in list(self.actions):
            if a.kind is not Kind.IMAGE or a.operation is not Operation.BUILD:
                continue
            old = (self.r.images.get(a.name) or {}).get("id")
            img = self.o.stack_image(a.connection, old, self.stack)
            if img is None:
                continue
            ref = a.work.ref if isinstance(a.work, ImageWork) else a.name
            self._add(
                Action(
                    image_action_id(a.connection, f"{a.name}@{short(img.id)}"),
                    Kind.IMAGE,
                    a.name,
                    Verb.DELETE,
                    Operation.REMOVE,
                    f"previous build {short(img.id)}, superseded by this rebuild",
                    a.connection,
                    (),
                    after,
                    RemoveWork(ref, img.id, 0.0, keep_if_in_use=True),
                )
            )

    def _prune_images(self, after: tuple[str, ...]) -> None:
        declared = set(self.d.images)
        container_deletes = tuple(a.id for a in self.actions if a.verb is Verb.DELETE)
        for name, rec in sorted(self.r.images.items()):
            if name in declared:
                continue
            conn = rec.get("connection", "")
            img = self.o.stack_image(conn, rec.get("id"), self.stack)
            if img is None:
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
