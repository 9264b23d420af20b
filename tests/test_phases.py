"""Two-phase planning without Podman: which connections wait for their machine, what the first
plan shows for them, and what the second plan decides once the machine runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.engine.hashing import spec_hash, workload_spec
from reconciler.engine.inventory_rules import Applied, record, starts_in_a_row
from reconciler.engine.observed import (
    ClientInfo,
    Observed,
    ObservedContainer,
    ObservedImage,
    ObservedMachine,
    ObservedNetwork,
    Recorded,
    RecordedContainer,
)
from reconciler.engine.phases import (
    connection_keys,
    deferred_ids,
    merge_after_start,
    plan_after_start,
    plan_first,
    plan_machines_first,
    runnable,
)
from reconciler.engine.plan import Action, Plan, PlanOptions, Verb
from reconciler.engine.planner_networks import network_hash
from reconciler.labels import (
    LABEL_CONTENT_HASH,
    LABEL_NAME,
    LABEL_REPLICA,
    LABEL_SPEC_HASH,
    LABEL_STACK,
)
from reconciler.manifests.model import Desired
from reconciler.runtime.orchestrator import load_desired

MAC = ClientInfo((5, 8, 2), "darwin", "arm64", "applehv")
HASH = "sha256:" + "c" * 64
IMAGE_ID = "sha256:" + "b" * 64
REF = "localhost/llama-img:latest"
STACK = """\
apiVersion: podform/v1
kind: Stack
metadata: {name: s}
---
apiVersion: podform/v1
kind: Machine
metadata: {name: gpu}
spec: {provider: libkrun, cpus: 4, memory: 8GiB, state: %(state)s}
---
apiVersion: podform/v1
kind: Image
metadata: {name: llama-img}
spec: {machine: gpu, build: {context: ./ctx}}
---
apiVersion: podform/v1
kind: Workload
metadata: {name: llama}
spec: {machine: gpu, image: llama-img, replicas: 2}
---
apiVersion: podform/v1
kind: Workload
metadata: {name: web}
spec: {image: "localhost/web:1"}
"""


def desired(tmp_path: Path, state: str = "running") -> Desired:
    (tmp_path / "ctx").mkdir(exist_ok=True)
    (tmp_path / "ctx" / "Containerfile").write_text("FROM scratch\n")
    (tmp_path / "stack.yaml").write_text(STACK % {"state": state})
    return load_desired([str(tmp_path / "stack.yaml")])


def machine(state: str = "running", cpus: int = 4) -> dict[str, ObservedMachine]:
    return {"gpu": ObservedMachine("gpu", "libkrun", state, cpus, 8192, 100, False)}  # type: ignore[arg-type]


def first(d: Desired, machines: dict[str, ObservedMachine]) -> tuple[Plan, dict[str, str]]:
    """The first plan, with the default connection observed empty."""
    recorded = Recorded(machines={"gpu": {"provider": "libkrun", "volumes": []}})
    actions, errors, phases = plan_machines_first(
        d, machines, recorded, MAC, PlanOptions(), connection_keys(d, recorded)
    )
    observed = Observed(machines=machines)
    for key in phases.now:
        observed.containers[key], observed.images[key], observed.volumes[key] = [], [], []
    plan = plan_first(d, observed, recorded, {"llama-img": HASH}, PlanOptions(), actions, errors,
                      phases)  # fmt: skip
    return plan, {**phases.after_start, **phases.unobservable}


def by_name(plan: Plan) -> dict[str, Action]:
    return {a.name: a for a in plan.actions}


@pytest.mark.parametrize(
    ("found", "cpus", "machine_op"),
    [
        ({}, 4, "init"),  # new
        (machine("stopped"), 4, "start"),  # stopped by a reboot
        (machine("running", cpus=2), 4, "set"),  # stop, set, start
    ],
    ids=["new", "stopped", "restarted-by-set"],
)
def test_insides_of_a_machine_that_must_start_are_known_after_it_starts(
    tmp_path: Path, found: dict[str, ObservedMachine], cpus: int, machine_op: str
) -> None:
    """New, stopped or about-to-restart: each resource inside is one DEFERRED action naming
    the machine; the default connection is planned now; runnable() drops only the deferred."""
    plan, phases = first(desired(tmp_path), found)
    actions = by_name(plan)
    assert phases == {"gpu": "gpu"}
    assert actions["gpu"].operation == machine_op
    for name in ("llama-img", "s-llama-1", "s-llama-2"):
        assert actions[name].verb is Verb.DEFERRED
        assert actions[name].known_after == "gpu"
        assert actions[name].reason == "known after machine gpu starts"
    assert actions["s-web-1"].verb is Verb.CREATE
    assert not plan.is_empty() and not plan.errors
    assert sorted(deferred_ids(plan, "gpu")) == [
        "Container/s-llama-1", "Container/s-llama-2", "Image/gpu:llama-img", "Network/gpu:s",
    ]  # fmt: skip
    # "s": the stack network on the default connection, planned now like web
    assert {a.name for a in runnable(plan).actions} == {"gpu", "s-web-1", "localhost/web:1", "s"}
    assert "4 known after a machine starts." in plan.render()


def test_running_machine_is_planned_now(tmp_path: Path) -> None:
    """A running machine that stays as it is: its insides are observed and planned now."""
    plan, phases = first(desired(tmp_path), machine("running"))
    assert phases == {}
    assert by_name(plan)["llama-img"].verb is Verb.CREATE
    assert by_name(plan)["gpu"].verb is Verb.UNCHANGED


@pytest.mark.parametrize(
    ("state", "found", "why"),
    [
        ("stopped", machine("stopped"), "machine gpu is declared stopped"),
        ("stopped", machine("running"), "machine gpu is being stopped"),
        ("running", machine("starting"), "machine gpu is starting, not running"),
    ],
)
def test_machine_that_will_not_run_is_not_planned_inside(
    tmp_path: Path, state: str, found: dict[str, ObservedMachine], why: str
) -> None:
    """Declared stopped, being stopped, or stuck starting: nothing inside is planned, and a
    warning says why."""
    plan, phases = first(desired(tmp_path, state), found)
    assert phases == {"gpu": why}
    assert set(by_name(plan)) == {"gpu", "s-web-1", "localhost/web:1", "s"}
    assert "Network/gpu:s" not in {a.id for a in plan.actions}
    assert f"could not observe machine gpu: {why}" in plan.warnings


def inside(d: Desired, container_state: str) -> Observed:
    """What a started machine holds: the built image and both replicas, as applied before."""
    w = d.workloads["llama"]
    labels = {LABEL_STACK: "s", LABEL_NAME: "llama",
              LABEL_SPEC_HASH: spec_hash(workload_spec(w, IMAGE_ID))}  # fmt: skip
    containers = [
        ObservedContainer(
            f"id{n}", f"s-llama-{n}", container_state, labels | {LABEL_REPLICA: str(n)}
        )
        for n in (1, 2)
    ]
    image = ObservedImage(IMAGE_ID, (REF,), {LABEL_CONTENT_HASH: HASH, LABEL_STACK: "s"})
    net = d.used_networks()[("gpu", "s")]
    network = ObservedNetwork("s", {LABEL_STACK: "s", LABEL_SPEC_HASH: network_hash(net)})
    return Observed(
        containers={"gpu": containers},
        images={"gpu": [image]},
        volumes={"gpu": []},
        networks={"gpu": [network]},
    )


def test_second_phase_starts_what_the_machine_holds_and_rebuilds_nothing(tmp_path: Path) -> None:
    """After the start: the image carrying its hash is unchanged, exited containers are
    started (not recreated), and nothing outside the machine is planned again."""
    d = desired(tmp_path)
    plan = plan_after_start(d, inside(d, "exited"), Recorded(), {"llama-img": HASH},
                            PlanOptions(), "gpu")  # fmt: skip
    actions = by_name(plan)
    assert set(actions) == {"llama-img", "s-llama-1", "s-llama-2", "s"}
    assert actions["llama-img"].verb is Verb.UNCHANGED
    assert actions["s"].verb is Verb.UNCHANGED  # the stack network inside the machine
    for n in (1, 2):
        a = actions[f"s-llama-{n}"]
        assert (a.verb, a.operation) == (Verb.UPDATE, "start")
        assert a.reason == "container is exited, should be running; machine gpu has just started"


def test_second_phase_of_a_new_machine_builds_and_creates(tmp_path: Path) -> None:
    """A machine that holds nothing: build the image, create both containers after it."""
    d = desired(tmp_path)
    empty = Observed(containers={"gpu": []}, images={"gpu": []}, volumes={"gpu": []})
    plan = plan_after_start(d, empty, Recorded(), {"llama-img": HASH}, PlanOptions(), "gpu")
    actions = by_name(plan)
    assert (actions["llama-img"].verb, actions["llama-img"].operation) == (Verb.CREATE, "build")
    assert actions["s-llama-1"].verb is Verb.CREATE
    assert "Image/gpu:llama-img" in actions["s-llama-1"].depends_on


def test_merge_replaces_the_deferred_actions_of_that_machine_only(tmp_path: Path) -> None:
    """merge_after_start swaps the placeholders for the second plan; the rest stays."""
    d = desired(tmp_path)
    plan, _ = first(d, machine("stopped"))
    second = plan_after_start(d, inside(d, "running"), Recorded(), {"llama-img": HASH},
                              PlanOptions(), "gpu")  # fmt: skip
    merged = merge_after_start(plan, "gpu", second)
    assert deferred_ids(merged, "gpu") == []
    assert {a.verb for a in merged.actions if a.connection == "gpu"} == {Verb.UNCHANGED}
    assert by_name(merged)["gpu"].operation == "start"
    assert len(merged.actions) == len(plan.actions)


def test_machine_record_survives_a_failed_first_start(tmp_path: Path) -> None:
    """A machine init created is recorded even though its action failed at the start step;
    a failed action that created nothing is not."""
    plan, _ = first(desired(tmp_path), {})
    after = record(Recorded(), plan, {"Machine/gpu": Applied(done=False, created=True)})
    assert after.machines["gpu"]["created_by"] == "podform"
    assert record(Recorded(), plan, {"Machine/gpu": Applied(done=False)}).machines == {}


def test_start_after_a_machine_restart_is_not_a_crash_loop_step(tmp_path: Path) -> None:
    """podform's own start counts toward a crash loop, except right after the machine
    started (a reboot stops every container)."""
    d = desired(tmp_path)
    plan = plan_after_start(d, inside(d, "exited"), Recorded(), {"llama-img": HASH},
                            PlanOptions(), "gpu")  # fmt: skip
    start = by_name(plan)["s-llama-1"]
    prev = RecordedContainer("id1", "llama", "gpu", {}, "", starts=2)
    assert starts_in_a_row(start, prev) == 3
    assert starts_in_a_row(start, prev, machine_restarted=True) == 2
    applied = {start.id: Applied(done=True)}
    before = Recorded(containers={"s-llama-1": prev})
    assert record(before, plan, applied, restarted={"gpu"}).containers["s-llama-1"].starts == 2
