"""load -> validate -> model -> observe -> plan -> execute (per machine phase) -> record.

The composition of the pipeline, shared by the CLI commands and watch mode. It holds no
decisions of its own (the engine has them: planners, phases, inventory rules) and prints
nothing (the CLI does). Besides the pass it keeps the connection pool; loading manifests (with
the cache of schema verdicts) is in loading.py.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.engine.adoption import adopt
from reconciler.engine.inventory_rules import Applied, record
from reconciler.engine.machine_planner import plan_delete_all
from reconciler.engine.observed import Observed, Recorded
from reconciler.engine.phases import (
    Phases,
    connection_keys,
    deferred_ids,
    merge_after_start,
    plan_after_start,
    plan_first,
    plan_machines_first,
    runnable,
    split_phases,
)
from reconciler.engine.plan import Action, Kind, Plan, PlanOptions, machine_action_id
from reconciler.manifests.model import Desired
from reconciler.runtime.executor import Executor
from reconciler.runtime.inventory import Inventory, state_dir
from reconciler.runtime.loading import load_desired as load_desired
from reconciler.runtime.loading import manifest_paths as manifest_paths
from reconciler.runtime.machines import MachineLayer
from reconciler.runtime.observe import observe
from reconciler.runtime.outcomes import Execution, Outcome, Status

EventSink = Callable[..., None]


@dataclass
class Settings:
    """Everything a pass needs besides the manifests; filled from flags and environment."""

    url: str | None = None
    state_dir: str | None = None
    podman: str | None = None
    parallel: int = 4
    lock_timeout: float = 0.0
    plan: PlanOptions = field(default_factory=PlanOptions)


class Connections:
    """Podman API clients per connection key ("" = default; else a machine's socket)."""

    def __init__(self, settings: Settings) -> None:
        from reconciler.runtime.backends.podman_api import default_url

        self.settings = settings
        self.default_url = settings.url or default_url()
        self._engines: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.machines = MachineLayer(settings.podman)

    def url(self, key: str) -> str:
        if key == "":
            return self.default_url
        return self.machines.url(key)

    def engine(self, key: str) -> Any:
        from reconciler.runtime.backends.podman_api import PodmanApi

        with self._lock:
            if key not in self._engines:
                self._engines[key] = PodmanApi(self.url(key))
            return self._engines[key]

    def machine(self, action: Action) -> None:
        self.machines.execute(action)
        with self._lock:  # the machine's socket may have moved or gone: reconnect next time
            engine = self._engines.pop(action.name, None)
        if engine is not None:
            engine.close()

    def close(self) -> None:
        for e in self._engines.values():
            e.close()


def content_hashes(
    desired: Desired, cache_dir: Path | None = None
) -> tuple[dict[str, str], tuple[str, ...]]:
    """Each built image's content hash (the planner's input) and the >1 GiB context hints.

    With cache_dir, file digests are kept in `<stack>.contexts.json` there (a stack name has
    no dot, so it never meets an inventory file): an unchanged file costs one lstat.
    """
    if not any(image.build for image in desired.images.values()):
        return {}, ()  # nothing to hash: no cache to open, no tarfile to import
    from reconciler.runtime.buildcontext import DigestCache, digest_context, large_context_hint

    cache = DigestCache(cache_dir / f"{desired.stack.name}.contexts.json" if cache_dir else None)
    hashes: dict[str, str] = {}
    hints: list[str] = []
    for image in sorted(desired.images.values(), key=lambda i: i.name):
        if image.build is not None:
            digest = digest_context(image.build, cache)
            hashes[image.name] = digest.hash
            hint = large_context_hint(image.name, image.build.context, digest)
            if hint:
                hints.append(hint)
    cache.save()
    return hashes, tuple(hints)


@dataclass(frozen=True)
class PlanResult:
    """What plan() found and decided: the plan and everything it was made from."""

    plan: Plan
    recorded: Recorded
    observed: Observed  # the snapshot the plan was made from (status reads it)
    phases: Phases
    content_hashes: dict[str, str]
    options: PlanOptions  # the settings' options plus this pass's secret digests
    problems: list[str]  # inventory warnings and the like
    adopted: bool = False  # `recorded` holds containers adopted this pass: save it even on a no-op


@dataclass
class PassResult:
    desired: Desired
    plan: Plan
    execution: Execution | None = None
    problems: list[str] = field(default_factory=list)  # inventory warnings and the like

    @property
    def ok(self) -> bool:
        if self.plan.errors:
            return False
        return self.execution is None or not self.execution.failed

    def log_fields(self) -> dict[str, Any]:
        """What the pass changed and what failed, for watch's and sync's log lines."""
        ex = self.execution
        return {
            "changed": bool(ex and ex.changed),
            "changes": [
                f"{a.verb.value} {a.id}: {a.reason}" + "".join(f"; {c}" for c in a.changes)
                for a in self.plan.pending()
            ],
            "failed": sorted(k for k, o in ex.outcomes.items() if o.status is not Status.OK)
            if ex
            else [],
            "errors": [*self.plan.errors, *self.problems],
        }


class Reconciler:
    """One stack's passes. Holds connections across passes (watch mode reuses them).

    Each pass composes observe -> plan -> execute per phase: machines and whatever can be
    observed now first, then, for every machine that had to start, its insides observed and
    planned against what is really there (engine/phases.py decides; this class only runs it).
    """

    def __init__(
        self,
        settings: Settings,
        on_event: EventSink | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.emit = on_event or (lambda *a, **k: None)
        self.stop_event = stop_event or threading.Event()
        self.connections = Connections(settings)

    def inventory(self, desired: Desired) -> Inventory:
        return Inventory(state_dir(self.settings.state_dir), desired.stack.name)

    def plan(self, desired: Desired) -> PlanResult:
        """Observe and make the first plan (what `plan` prints); changes nothing."""
        inv = self.inventory(desired)
        recorded = inv.load()
        problems = []
        if inv.exists() and not recorded.valid:
            problems.append(f"inventory {inv.path}: {inv.problem}")
        machines = self.connections.machines
        client = machines.check(desired)  # preflight, before any change
        options = self._with_secret_digests(desired, recorded)
        found = machines.observe(desired, recorded)
        keys = connection_keys(desired, recorded)
        machine_actions, machine_errors, phases = plan_machines_first(
            desired, found, recorded, client, options, keys
        )
        observed = observe(desired, recorded, phases.now, self.connections, self.stop_event)
        observed.machines = found
        loaded = recorded
        recorded = adopt(recorded, observed, desired.stack.name)  # what a killed pass left
        hashes, hints = content_hashes(desired, inv.directory)
        plan = plan_first(
            desired,
            observed,
            recorded,
            hashes,
            options,
            machine_actions,
            machine_errors,
            phases,
        )
        if hints:
            plan = dataclasses.replace(plan, warnings=plan.warnings + hints)
        return PlanResult(
            plan, recorded, observed, phases, hashes, options, problems, recorded != loaded
        )

    def _with_secret_digests(self, desired: Desired, recorded: Recorded) -> PlanOptions:
        """The plan options with each declared Secret's keyed HMAC (a key is made, and kept
        in the inventory by record(), the first time a stack declares a Secret)."""
        if not desired.secrets:
            return self.settings.plan
        from reconciler.runtime.secrets import new_key, secret_digests

        if not recorded.secret_key:
            recorded.secret_key = new_key()
        digests = secret_digests(desired, recorded.secret_key)
        return dataclasses.replace(self.settings.plan, secret_digests=digests)

    def apply(
        self,
        desired: Desired,
        dry_run: bool = False,
        revision: dict[str, str] | None = None,
        on_plan: Callable[[Plan], None] | None = None,
    ) -> PassResult:
        """One pass. REVISION (from sync) is recorded when the pass succeeds; a failed pass
        keeps the previous one; an apply without a revision clears it. ON_PLAN sees the plan
        before anything is changed (the CLI prints it, as Terraform does)."""
        inv = self.inventory(desired)
        with inv.lock(self.settings.lock_timeout):
            first = self.plan(desired)
            result = PassResult(desired, first.plan, problems=first.problems)
            if dry_run or first.plan.errors:
                return result
            if on_plan is not None:
                on_plan(first.plan)
            execution = self._execute(runnable(first.plan))
            plan, restarted = self._after_machines_start(desired, first, execution)
            result.plan, result.execution = plan, execution
            after = record(first.recorded, plan, self._applied(plan, execution), restarted)
            if revision is not None:
                after.revision = dict(revision if result.ok else first.recorded.revision)
            # A no-op pass leaves the inventory as it was: no write, no fsync.
            if after != first.recorded or first.adopted or not first.recorded.valid:
                inv.save(after)
            return result

    def _after_machines_start(
        self, desired: Desired, first: PlanResult, execution: Execution
    ) -> tuple[Plan, set[str]]:
        """Phase two: each machine that had to start is observed now and what lives inside
        it planned and executed against what is really there."""
        plan = first.plan
        started: set[str] = set()
        for machine in sorted(set(first.phases.after_start.values())):
            waiting = deferred_ids(plan, machine)
            done = execution.outcomes.get(machine_action_id(machine))
            if self.stop_event.is_set():
                for aid in waiting:
                    execution.outcomes[aid] = Outcome(
                        Status.INTERRUPTED, "not started: interrupted"
                    )
                execution.interrupted = True
                continue
            if done is None or done.status is not Status.OK:
                for aid in waiting:
                    execution.outcomes[aid] = Outcome(
                        Status.SKIPPED, f"skipped: machine {machine} did not start"
                    )
                continue
            started.add(machine)
            observed = observe(
                desired, first.recorded, [machine], self.connections, self.stop_event
            )
            observed.machines = first.observed.machines
            if machine in observed.errors:
                for aid in waiting:
                    execution.outcomes[aid] = Outcome(
                        Status.FAILED,
                        f"machine {machine} started, but nothing inside it could be observed: "
                        f"{observed.errors[machine]}",
                    )
                continue
            inside = plan_after_start(
                desired,
                observed,
                first.recorded,
                first.content_hashes,
                first.options,
                machine,
            )
            self.emit("phase", machine=machine, plan=inside)
            plan = merge_after_start(plan, machine, inside)
            if inside.errors:
                continue  # the merged plan carries them: the pass fails, nothing runs inside
            more = self._execute(inside)
            execution.outcomes.update(more.outcomes)
            execution.interrupted = execution.interrupted or more.interrupted
        return plan, started

    def _applied(self, plan: Plan, execution: Execution) -> dict[str, Applied]:
        """The executor's outcomes as the inventory rules read them."""
        initialised = self.connections.machines.initialised
        out: dict[str, Applied] = {}
        for action in plan.actions:
            o = execution.outcomes.get(action.id)
            if o is None:
                continue
            out[action.id] = Applied(
                done=o.status.succeeded,
                container_id=o.container_id,
                image_id=o.image_id,
                spec=o.spec,
                probe=o.probe,
                object_id=o.object_id,
                created=action.kind is Kind.MACHINE and action.name in initialised,
            )
        return out

    def delete(self, desired: Desired, volumes: bool, machines: bool) -> PassResult:
        inv = self.inventory(desired)
        with inv.lock(self.settings.lock_timeout):
            recorded = inv.load()
            found = self.connections.machines.observe(desired, recorded)
            phases = split_phases(desired, connection_keys(desired, recorded), found)
            observed = observe(desired, recorded, phases.now, self.connections, self.stop_event)
            observed.machines = found
            observed.errors.update(phases.unobservable)
            plan = plan_delete_all(desired, observed, recorded, volumes=volumes, machines=machines)
            execution = self._execute(plan)
            inv.save(record(recorded, plan, self._applied(plan, execution)))
            return PassResult(desired, plan, execution)

    def _execute(self, plan: Plan) -> Execution:
        executor = Executor(
            self.connections,
            parallel=self.settings.parallel,
            stop_event=self.stop_event,
            on_event=self.emit,
        )
        return executor.run(plan)

    def close(self) -> None:
        self.connections.close()
