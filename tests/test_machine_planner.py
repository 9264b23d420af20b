"""plan_machines on hand-made observations: every verb, its reason and flags, adoption, errors."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import make_desired, make_machine, make_workload

from reconciler.engine.machine_planner import DESTROYS, plan_delete_machines, plan_machines
from reconciler.engine.observed import ClientInfo, ObservedMachine
from reconciler.engine.plan import Action, MachineWork, PlanOptions, Verb
from reconciler.manifests.model import Desired

MAC = ClientInfo((5, 8, 2), "darwin", "arm64", "applehv")
# The machine as model.py builds it from the manifest: 8GiB -> 8192 MiB, 100GiB -> 100 GiB.
SPEC: dict[str, Any] = {"provider": "libkrun", "cpus": 4, "memory_mib": 8192, "disk_gib": 100,
                        "rootful": True, "volumes": ("/srv/models:/models:ro",), "state": "running"}  # fmt: skip
RECORD = {"gpu": {"provider": "libkrun", "volumes": ["/srv/models:/models:ro"]}}


def desired(workloads: tuple[str, ...] = ("llama",), **fields: Any) -> Desired:
    """Machine gpu (SPEC with FIELDS over it; None = not declared) and workloads on it."""
    on_gpu = (make_workload(w, machine="gpu", image_ref="localhost/x:1") for w in workloads)
    return make_desired(make_machine("gpu", **{**SPEC, **fields}), *on_gpu)


def seen(**fields: Any) -> dict[str, ObservedMachine]:
    base = {"name": "gpu", "provider": "libkrun", "state": "running", "cpus": 4,
            "memory_mib": 8192, "disk_gib": 100, "rootful": True}  # fmt: skip
    return {"gpu": ObservedMachine(**{**base, **fields})}


def one(
    d: Desired,
    observed: dict[str, ObservedMachine],
    record: dict[str, dict[str, object]] | None = None,
    allow_recreate: bool = False,
) -> tuple[Action, list[str]]:
    actions, errors = plan_machines(
        d,
        observed,
        RECORD if record is None else record,
        MAC,
        PlanOptions(allow_recreate=allow_recreate),
    )
    [action] = actions
    return action, errors


def test_missing_machine_is_created_with_every_declared_setting() -> None:
    """No machine: create (init) with cpus, MiB, GiB, rootful, volumes, then start."""
    action, errors = one(desired(), {}, {})
    assert (action.verb, action.operation, errors) == (Verb.CREATE, "init", [])
    assert action.reason == "machine does not exist: init, then start it"
    assert action.work == MachineWork(
        "gpu", "libkrun",
        {"cpus": 4, "memory_mib": 8192, "disk_gib": 100, "rootful": True,
         "volumes": ["/srv/models:/models:ro"]},
        start_after=True,
    )  # fmt: skip


def test_declared_stopped_machine_is_created_but_not_started() -> None:
    """state: stopped: init only."""
    action, _ = one(desired(state="stopped"), {}, {})
    assert isinstance(action.work, MachineWork) and not action.work.start_after
    assert action.reason == "machine does not exist: init (left stopped)"


@pytest.mark.parametrize(
    ("observed", "verb", "op", "reason"),
    [
        ({}, Verb.UNCHANGED, "none", "up to date (4 cpus, 8192 MiB, 100 GiB, running)"),
        ({"state": "stopped"}, Verb.UPDATE, "start", "machine is stopped, should be running"),
        ({"state": "starting"}, Verb.UNCHANGED, "none", "machine is starting"),
    ],
)
def test_state_convergence(observed: dict[str, Any], verb: Verb, op: str, reason: str) -> None:
    """An existing machine is started when it should run, and left alone when up to date."""
    action, errors = one(desired(), seen(**observed))
    assert (action.verb, action.operation, action.reason, errors) == (verb, op, reason, [])


def test_stop_names_the_interrupted_workloads() -> None:
    """state: stopped on a running machine: stop, naming the workloads placed on it."""
    action, _ = one(desired(("b", "a"), state="stopped"), seen())
    assert (action.verb, action.operation) == (Verb.UPDATE, "stop")
    assert action.reason == "machine is running, should be stopped; interrupts workloads a, b"


@pytest.mark.parametrize(
    ("spec", "observed", "settings", "changes", "steps", "stop_first"),
    [
        ({"cpus": 6, "memory_mib": 12288}, {}, {"cpus": 6, "memory_mib": 12288},
         ["cpus: 4 → 6", 'memory: "8192MiB" → "12288MiB"'],
         "stop, `podman machine set`, start", True),
        ({"disk_gib": 200}, {}, {"disk_gib": 200},
         ['diskSize: "100GiB" → "200GiB"'], "stop, `podman machine set`, start", True),
        ({"rootful": False}, {"state": "stopped"}, {"rootful": False},
         ["rootful: true → false"], "`podman machine set`, then start", False),
        ({"cpus": 2, "state": "stopped"}, {"state": "stopped"}, {"cpus": 2},
         ["cpus: 4 → 2"], "`podman machine set`", False),
    ],
)  # fmt: skip
def test_in_place_changes_pass_only_the_changed_flags(
    spec: dict[str, Any],
    observed: dict[str, Any],
    settings: dict[str, Any],
    changes: list[str],
    steps: str,
    stop_first: bool,
) -> None:
    """cpus/memory/disk growth/rootful: update (set) with just those flags, stop first if running."""
    action, errors = one(desired(**spec), seen(**observed))
    assert (action.verb, action.operation, errors) == (Verb.UPDATE, "set", [])
    assert isinstance(action.work, MachineWork)
    assert action.work.settings == settings
    assert action.work.stop_first is stop_first
    assert [str(c) for c in action.changes] == changes
    assert action.reason.startswith(f"changes in place ({steps})")
    assert action.reason.endswith("interrupts workloads llama") is stop_first


@pytest.mark.parametrize(
    ("spec", "observed", "record", "what"),
    [
        ({"provider": "applehv"}, {}, RECORD, "provider"),
        ({"volumes": ("/srv:/models:ro",)}, {}, RECORD, "volumes"),
        ({"disk_gib": 50}, {}, RECORD, "diskSize"),
    ],
)
def test_replace_is_an_error_unless_allowed(
    spec: dict[str, Any], observed: dict[str, Any], record: dict[str, dict[str, object]], what: str
) -> None:
    """Provider, volumes, disk shrink: replace saying it destroys everything; refused by default."""
    d = desired(**spec)
    action, errors = one(d, seen(**observed), record)
    assert (action.verb, action.operation) == (Verb.REPLACE, "replace")
    assert action.reason == f"{what} cannot change in place: re-create, which {DESTROYS}"
    assert errors == [
        f"machine gpu: {what} changed; applying it {DESTROYS}. Re-run with --allow-recreate to "
        f"accept that, or restore the old {what}"
    ]
    allowed, no_errors = one(d, seen(**observed), record, allow_recreate=True)
    assert (allowed.verb, no_errors) == (Verb.REPLACE, [])
    assert isinstance(allowed.work, MachineWork)
    assert allowed.work.settings["old_provider"] == "libkrun"


def test_adopted_machine_is_never_recreated_for_unknown_volumes() -> None:
    """A machine podform did not create: its volumes are unknown, so it is adopted as it is."""
    action, errors = one(desired(volumes=("/other:/x",)), seen(), {})
    assert (action.verb, errors) == (Verb.UNCHANGED, [])
    assert action.reason.endswith("(adopted: not created by podform)")


def test_omitted_provider_adopts_the_existing_one() -> None:
    """No provider declared: the existing machine's provider is fine, whatever it is."""
    action, _ = one(desired(provider=None), seen(provider="applehv"))
    assert action.verb is Verb.UNCHANGED


def test_delete_removes_only_machines_podform_created() -> None:
    """delete --machines: recorded machines are removed after the other deletes; others kept."""
    d = desired()
    actions, warnings = plan_delete_machines(d, seen(), RECORD, ("Container/x",))
    [rm] = actions
    assert (rm.verb, rm.operation, rm.depends_on, warnings) == (
        Verb.DELETE, "remove", ("Container/x",), []
    )  # fmt: skip
    assert plan_delete_machines(d, seen(), {}, ()) == (
        [], ["machine gpu was not created by podform: left alone"]
    )  # fmt: skip
    assert plan_delete_machines(d, {}, RECORD, ()) == ([], [])
