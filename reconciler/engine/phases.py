"""Two-phase planning: machines first, then what lives inside each machine once it runs.

Pure, above the planners. A machine that is not running when observed (new, stopped by a
reboot, or about to be stopped and started again by `podman machine set`) has nothing that
can be observed inside it, so nothing inside it is planned against a guess: the first plan
holds its machine action and, for each resource inside, one DEFERRED action ("known after
machine NAME starts"). Apply (runtime/orchestrator.py) runs that plan, observes the machine
once it runs, and asks plan_after_start() for the second plan, made against what is really
there: an image it already holds is not rebuilt, a stopped container is started, not
recreated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.engine.machine_planner import plan_machines
from reconciler.engine.observed import ClientInfo, Observed, ObservedMachine, Recorded
from reconciler.engine.plan import Action, Kind, MachineWork, Plan, PlanOptions, Verb
from reconciler.engine.planner import plan as make_plan
from reconciler.manifests.model import DEFAULT_CONNECTION, Desired


@dataclass(frozen=True)
class Phases:
    """Which connections are observed before the first plan and which only later.

    `now`: observed now ("" is the default connection). `after_start`: connection -> the
    machine that must start first (a connection key is its machine's name). `unobservable`:
    connection -> why nothing there is observed or planned in this pass.
    """

    now: tuple[str, ...]
    after_start: dict[str, str] = field(default_factory=dict)
    unobservable: dict[str, str] = field(default_factory=dict)


def connection_keys(desired: Desired, recorded: Recorded) -> set[str]:
    """Every connection the stack uses: the default one, declared placements, recorded ones."""
    keys = {DEFAULT_CONNECTION}
    keys |= {w.connection for w in desired.workloads.values()}
    keys |= {i.connection for i in desired.images.values()}
    keys |= {c.connection for c in recorded.containers.values()}
    return keys


def split_phases(
    desired: Desired,
    keys: Iterable[str],
    machines: Mapping[str, ObservedMachine],
    machine_actions: Iterable[Action] = (),
) -> Phases:
    """Decide per connection: observe it now, after its machine starts, or not at all."""
    actions = {a.name: a for a in machine_actions if a.kind is Kind.MACHINE}
    now: list[str] = []
    after: dict[str, str] = {}
    unobservable: dict[str, str] = {}
    for key in sorted(keys):
        if key == DEFAULT_CONNECTION:
            now.append(key)
            continue
        found = machines.get(key)
        action = actions.get(key)
        work = action.work if action is not None and action.changes_something else None
        declared = desired.machines.get(key)
        if isinstance(work, MachineWork) and work.start_after:
            after[key] = key  # created, started, or stopped and started again around `set`
        elif isinstance(work, MachineWork) and work.stop_first:
            unobservable[key] = f"machine {key} is being stopped"
        elif found is not None and found.state == "running":
            now.append(key)
        elif declared is not None and declared.state == "stopped":
            unobservable[key] = f"machine {key} is declared stopped"
        elif found is not None and found.state == "starting":
            unobservable[key] = f"machine {key} is starting, not running"
        elif found is None and declared is None:
            unobservable[key] = f"machine {key} does not exist"
        else:
            unobservable[key] = f"machine {key} is not running"
    return Phases(tuple(now), after, unobservable)


def plan_machines_first(
    desired: Desired,
    machines: Mapping[str, ObservedMachine],
    recorded: Recorded,
    client: ClientInfo | None,
    options: PlanOptions,
    keys: Iterable[str],
) -> tuple[list[Action], list[str], Phases]:
    """The machine actions, their errors and, from them, the phases of every connection."""
    actions, errors = plan_machines(desired, dict(machines), recorded.machines, client, options)
    return actions, errors, split_phases(desired, keys, machines, actions)


def plan_first(
    desired: Desired,
    observed: Observed,
    recorded: Recorded,
    content_hashes: dict[str, str],
    options: PlanOptions,
    machine_actions: list[Action],
    machine_errors: list[str],
    phases: Phases,
) -> Plan:
    """The plan `plan` prints and apply starts with: machines, what can be observed now, and
    a DEFERRED action for each resource inside a machine that is not running yet."""
    seen = dataclasses.replace(observed, errors={**phases.unobservable, **observed.errors})
    plan = make_plan(
        desired,
        seen,
        recorded,
        content_hashes,
        options,
        machine_actions=machine_actions,
        deferred=phases.after_start,
    )
    return dataclasses.replace(plan, errors=plan.errors + tuple(machine_errors))


def plan_after_start(
    desired: Desired,
    observed: Observed,
    recorded: Recorded,
    content_hashes: dict[str, str],
    options: PlanOptions,
    machine: str,
) -> Plan:
    """The second phase for one machine, observed after it started: its resources only."""
    return make_plan(desired, observed, recorded, content_hashes, options, only=machine)


def runnable(plan: Plan) -> Plan:
    """The plan without its DEFERRED actions: what can be executed before machines start."""
    return dataclasses.replace(
        plan, actions=tuple(a for a in plan.actions if a.verb is not Verb.DEFERRED)
    )


def deferred_ids(plan: Plan, machine: str) -> list[str]:
    """The DEFERRED actions waiting for `machine`."""
    return [a.id for a in plan.actions if a.verb is Verb.DEFERRED and a.known_after == machine]


def merge_after_start(plan: Plan, machine: str, inside: Plan) -> Plan:
    """The plan with `machine`'s DEFERRED actions replaced by its second-phase plan."""
    kept = tuple(
        a for a in plan.actions if not (a.verb is Verb.DEFERRED and a.known_after == machine)
    )
    return dataclasses.replace(
        plan,
        actions=kept + inside.actions,
        warnings=plan.warnings + inside.warnings,
        errors=plan.errors + inside.errors,
    )
