"""plan_machines(...) -> (machine actions, errors): every machine decision and its reason.

Pure, like planner.py, which takes these actions as `machine_actions` and makes the images,
volumes and containers on a machine depend on that machine's changing action. Podman's
`inspect` reports no mounts, so a machine's volumes are compared with what the inventory
recorded when podform created it; a machine podform did not create is adopted as it is.
Machines are never pruned: only `podform delete --machines` removes them (plan_delete_all).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from reconciler.engine.observed import ClientInfo, Observed, ObservedMachine, Recorded
from reconciler.engine.plan import (
    Action,
    Change,
    Kind,
    MachineWork,
    Operation,
    Plan,
    PlanOptions,
    Verb,
    machine_action_id,
)
from reconciler.engine.planner_delete import plan_delete
from reconciler.manifests.model import Desired, Machine

DESTROYS = "destroys every image, container and volume inside the machine"


def effective_provider(
    machine: Machine, found: ObservedMachine | None, client: ClientInfo | None
) -> str:
    """The declared provider, else the existing machine's, else Podman's default."""
    if machine.provider:
        return machine.provider
    if found is not None:
        return found.provider
    return client.default_provider if client else ""


def init_settings(machine: Machine) -> dict[str, Any]:
    """The `init` flags of a declared machine; None leaves a setting to Podman's defaults."""
    return {
        "cpus": machine.cpus,
        "memory_mib": machine.memory_mib,
        "disk_gib": machine.disk_gib,
        "rootful": machine.rootful,
        "volumes": list(machine.volumes),
    }


def plan_machines(
    desired: Desired,
    observed_machines: dict[str, ObservedMachine],
    recorded_machines: dict[str, dict[str, object]],
    client: ClientInfo | None,
    options: PlanOptions,
) -> tuple[list[Action], list[str]]:
    """Compare each declared Machine with the observed one and say what apply must do."""
    actions: list[Action] = []
    errors: list[str] = []
    for name in sorted(desired.machines):
        machine = desired.machines[name]
        found = observed_machines.get(name)
        action, error = _machine(
            desired, machine, found, recorded_machines.get(name), client, options
        )
        actions.append(action)
        if error:
            errors.append(error)
    return actions, errors


def _machine(
    desired: Desired,
    m: Machine,
    found: ObservedMachine | None,
    record: dict[str, object] | None,
    client: ClientInfo | None,
    options: PlanOptions,
) -> tuple[Action, str]:
    aid = machine_action_id(m.name)
    provider = effective_provider(m, found, client)
    start = m.state == "running"

    def act(
        verb: Verb,
        op: Operation,
        reason: str,
        changes: tuple[Change, ...] = (),
        work: MachineWork | None = None,
        warnings: tuple[str, ...] = (),
    ) -> Action:
        return Action(aid, Kind.MACHINE, m.name, verb, op, reason, "", changes, (), work, warnings)

    if found is None:
        work = MachineWork(m.name, provider or None, init_settings(m), start_after=start)
        then = ", then start it" if start else " (left stopped)"
        return act(Verb.CREATE, Operation.INIT, f"machine does not exist: init{then}", (), work), ""

    recreate = _recreate_changes(m, found, record)
    if recreate:
        what = ", ".join(c.path for c in recreate)
        reason = f"{what} cannot change in place: re-create, which {DESTROYS}"
        # rm goes to the machine as it is (its old provider), init to the declared one.
        settings = init_settings(m) | {"old_provider": found.provider}
        work = MachineWork(m.name, provider, settings, start_after=start)
        error = ""
        if not options.allow_recreate:
            error = (
                f"machine {m.name}: {what} changed; applying it {DESTROYS}. "
                f"Re-run with --allow-recreate to accept that, or restore the old {what}"
            )
        return act(Verb.REPLACE, Operation.REPLACE, reason, recreate, work), error

    interrupted = _interrupted(desired, m.name)
    set_changes, settings = _set_changes(m, found)
    if set_changes:
        running = found.state == "running"
        steps = "stop, `podman machine set`, start" if running else "`podman machine set`"
        if not running and start:
            steps += ", then start"
        reason = f"changes in place ({steps})"
        if running and interrupted:
            reason += f"; interrupts {interrupted}"
        work = MachineWork(m.name, provider, settings, start_after=start, stop_first=running)
        return act(Verb.UPDATE, Operation.SET, reason, set_changes, work), ""

    state_change = (Change("state", found.state, m.state),)
    if found.state == "starting":
        warning = (
            f"machine {m.name} reports starting but not running; if it stays so, recover with "
            f"`podman machine stop {m.name}`"
        )
        return act(Verb.UNCHANGED, Operation.NONE, "machine is starting", warnings=(warning,)), ""
    if start and found.state != "running":
        work = MachineWork(m.name, provider, {}, start_after=True)
        return act(Verb.UPDATE, Operation.START, "machine is stopped, should be running",
                   state_change, work), ""  # fmt: skip
    if not start and found.state == "running":
        reason = "machine is running, should be stopped" + (
            f"; interrupts {interrupted}" if interrupted else ""
        )
        work = MachineWork(m.name, provider, {}, stop_first=True)
        return act(Verb.UPDATE, Operation.STOP, reason, state_change, work), ""
    owner = "" if record else " (adopted: not created by podform)"
    summary = f"{found.cpus} cpus, {found.memory_mib} MiB, {found.disk_gib} GiB, {found.state}"
    return act(Verb.UNCHANGED, Operation.NONE, f"up to date ({summary}){owner}"), ""


def _recreate_changes(
    m: Machine, found: ObservedMachine, record: dict[str, object] | None
) -> tuple[Change, ...]:
    """Changes Podman cannot make in place: provider, volumes, a smaller disk."""
    out: list[Change] = []
    if m.provider and m.provider != found.provider:
        out.append(Change("provider", found.provider, m.provider))
    recorded_volumes = record.get("volumes") if record else None
    if isinstance(recorded_volumes, list) and list(m.volumes) != recorded_volumes:
        out.append(Change("volumes", recorded_volumes, list(m.volumes)))
    if m.disk_gib is not None and m.disk_gib < found.disk_gib:
        out.append(Change("diskSize", f"{found.disk_gib}GiB", f"{m.disk_gib}GiB"))
    return tuple(out)


def _set_changes(m: Machine, found: ObservedMachine) -> tuple[tuple[Change, ...], dict[str, Any]]:
    """Declared settings that differ and `podman machine set` can change (only those)."""
    changes: list[Change] = []
    settings: dict[str, Any] = {}
    if m.cpus is not None and m.cpus != found.cpus:
        changes.append(Change("cpus", found.cpus, m.cpus))
        settings["cpus"] = m.cpus
    if m.memory_mib is not None and m.memory_mib != found.memory_mib:
        changes.append(Change("memory", f"{found.memory_mib}MiB", f"{m.memory_mib}MiB"))
        settings["memory_mib"] = m.memory_mib
    if m.disk_gib is not None and m.disk_gib > found.disk_gib:
        changes.append(Change("diskSize", f"{found.disk_gib}GiB", f"{m.disk_gib}GiB"))
        settings["disk_gib"] = m.disk_gib
    if m.rootful is not None and m.rootful != found.rootful:
        changes.append(Change("rootful", found.rootful, m.rootful))
        settings["rootful"] = m.rootful
    return tuple(changes), settings


def _interrupted(desired: Desired, machine: str) -> str:
    """'workloads a, b' running on the machine, or '' when none is declared there."""
    names = sorted(w.name for w in desired.workloads.values() if w.machine == machine)
    return f"workloads {', '.join(names)}" if names else ""


def plan_delete_machines(
    desired: Desired,
    observed_machines: dict[str, ObservedMachine],
    recorded_machines: dict[str, dict[str, object]],
    after: tuple[str, ...],
) -> tuple[list[Action], list[str]]:
    """`delete --machines`: remove declared machines the inventory says podform created.

    A machine podform adopted is left alone with a warning. Runs after `after` (the
    container/image/volume deletes), since those go through the machine's socket.
    """
    actions: list[Action] = []
    warnings: list[str] = []
    for name in sorted(desired.machines):
        found = observed_machines.get(name)
        if found is None:
            continue
        if name not in recorded_machines:
            warnings.append(f"machine {name} was not created by podform: left alone")
            continue
        actions.append(
            Action(
                machine_action_id(name),
                Kind.MACHINE,
                name,
                Verb.DELETE,
                Operation.REMOVE,
                f"--machines: created by podform; {DESTROYS}",
                "",
                (),
                after,
                MachineWork(name, found.provider, {}),
            )
        )
    return actions, warnings


def plan_delete_all(
    desired: Desired, observed: Observed, recorded: Recorded, *, volumes: bool, machines: bool
) -> Plan:
    """`podform delete`: planner_delete's plan, then (`--machines`) the machine removals."""
    plan = plan_delete(desired, observed, recorded, volumes=volumes)
    if not machines:
        return plan
    after = tuple(a.id for a in plan.actions)
    actions, warnings = plan_delete_machines(desired, observed.machines, recorded.machines, after)
    return dataclasses.replace(
        plan, actions=plan.actions + tuple(actions), warnings=plan.warnings + tuple(warnings)
    )
