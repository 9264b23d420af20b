"""Planner decisions on hand-made observations: every verb, its reason, and the deletes' guards."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from helpers import IMAGE_REF, make_desired, make_machine, make_workload

from reconciler.engine.hashing import (
    masked_spec,
    spec_hash,
    workload_spec,
)
from reconciler.engine.inventory_rules import Applied, record
from reconciler.engine.observed import (
    Observed,
    ObservedContainer,
    ObservedImage,
    ObservedNetwork,
    ObservedVolume,
    Recorded,
    RecordedContainer,
)
from reconciler.engine.plan import Plan, PlanOptions, RemoveWork, Verb
from reconciler.engine.planner import plan
from reconciler.engine.planner_networks import network_hash
from reconciler.labels import (
    LABEL_CONTENT_HASH,
    LABEL_NAME,
    LABEL_REPLICA,
    LABEL_SPEC_HASH,
    LABEL_STACK,
)
from reconciler.manifests.model import (
    Build,
    Dependency,
    Desired,
    Healthcheck,
    Image,
    Mount,
    Network,
)
from reconciler.runtime.orchestrator import load_desired

IMAGE_ID = "sha256:" + "a" * 64


def running(
    d: Desired,
    wname: str,
    n: int = 1,
    *,
    state: str = "running",
    cid: str = "",
    spec_change: str = "",
) -> ObservedContainer:
    w = d.workloads[wname]
    h = spec_hash(workload_spec(w, IMAGE_ID)) + spec_change
    return ObservedContainer(
        id=cid or f"id-{wname}-{n}",
        name=f"s-{wname}-{n}",
        state=state,
        labels={LABEL_STACK: "s", LABEL_NAME: wname, LABEL_REPLICA: str(n), LABEL_SPEC_HASH: h},
    )


STACK_NETWORK = ObservedNetwork(
    "s", {LABEL_STACK: "s", LABEL_SPEC_HASH: network_hash(Network("s", "s"))}
)


def observed(*containers: ObservedContainer, volumes: tuple[str, ...] = ()) -> Observed:
    """Podman holding these containers and volumes, the image and the stack network `s`."""
    return Observed(
        containers={"": list(containers)},
        images={"": [ObservedImage(IMAGE_ID, (IMAGE_REF,))]},
        volumes={"": [ObservedVolume(v) for v in volumes]},
        networks={"": [STACK_NETWORK]},
    )


def recorded_for(*containers: ObservedContainer, d: Desired | None = None) -> Recorded:
    rec = Recorded()
    for c in containers:
        spec = masked_spec(workload_spec(d.workloads[c.labels[LABEL_NAME]], IMAGE_ID)) if d else {}
        rec.containers[c.name] = RecordedContainer(c.id, c.labels[LABEL_NAME], "", spec)
    return rec


def verbs(p: Plan) -> dict[str, tuple[str, str]]:
    return {a.name: (a.verb.value, a.operation) for a in p.actions if a.kind == "Container"}


def test_fresh_stack_creates_every_replica() -> None:
    """Nothing observed: each replica is created, named <stack>-<workload>-<n>, with a reason."""
    d = make_desired(make_workload("web", replicas=2))
    p = plan(d, observed(), Recorded(valid=False), {})
    assert verbs(p) == {"s-web-1": ("create", "create"), "s-web-2": ("create", "create")}
    assert all(a.reason for a in p.actions)
    assert not p.is_empty()


def test_converged_stack_is_unchanged_with_reason() -> None:
    """Matching spec-hash and running: unchanged, and the reason says why."""
    d = make_desired(make_workload("web"))
    c = running(d, "web")
    p = plan(d, observed(c), recorded_for(c), {})
    assert verbs(p) == {"s-web-1": ("unchanged", "none")}
    assert p.is_empty()
    assert "up to date" in p.actions[-1].reason


def test_changed_env_replaces_with_field_diff() -> None:
    """An env edit replaces the container and names the field with old -> new."""
    before = make_desired(make_workload("web", env={"LEVEL": "info"}))
    c = running(before, "web")
    rec = recorded_for(c, d=before)
    after = make_desired(make_workload("web", env={"LEVEL": "debug"}))
    p = plan(after, observed(c), rec, {})
    action = next(a for a in p.actions if a.kind == "Container")
    assert (action.verb, action.operation) == (Verb.REPLACE, "replace")
    assert [str(ch) for ch in action.changes] == ['env.LEVEL: "info" → "debug"']


def test_secret_values_never_in_plan() -> None:
    """A secret-looking env value is masked in the diff and absent from the rendered plan."""
    before = make_desired(make_workload("web", env={"API_TOKEN": "sentinel-one"}))
    c = running(before, "web")
    after = make_desired(make_workload("web", env={"API_TOKEN": "sentinel-two", "X": "y"}))
    p = plan(after, observed(c), recorded_for(c, d=before), {})
    text = p.render() + str(p.to_json())
    assert "sentinel" not in text
    assert "replace" in text


@pytest.mark.parametrize(
    ("state", "want_state", "verb"),
    [
        ("exited", "running", ("update", "start")),
        ("created", "running", ("update", "start")),
        ("running", "stopped", ("update", "stop")),
        ("exited", "stopped", ("unchanged", "none")),
    ],
)
def test_run_state_drift_is_an_in_place_update(
    state: str, want_state: str, verb: tuple[str, str]
) -> None:
    """Stopped-by-hand containers are started (same id), running ones stopped when declared stopped."""
    d = make_desired(make_workload("web", state=want_state))
    c = running(d, "web", state=state)
    assert verbs(plan(d, observed(c), recorded_for(c), {})) == {"s-web-1": verb}


def test_crash_looping_container_is_reported_not_recreated() -> None:
    """Restarted again and again and not up: left alone with a crash-looping warning."""
    d = make_desired(make_workload("web"))
    c = running(d, "web", state="exited")
    looping = ObservedContainer(c.id, c.name, "exited", c.labels, restart_count=5, exit_code=3)
    p = plan(d, observed(looping), recorded_for(looping), {})
    action = next(a for a in p.actions if a.kind == "Container")
    assert action.verb is Verb.UNCHANGED
    assert "crash-looping" in action.warnings[0] and "exit code 3" in action.warnings[0]


def test_foreign_container_with_needed_name_is_an_error() -> None:
    """A container without podform's labels holding s-web-1 makes the plan fail, naming it."""
    d = make_desired(make_workload("web"))
    foreign = ObservedContainer("x", "s-web-1", "running", {})
    p = plan(d, observed(foreign), Recorded(), {})
    assert p.errors and "s-web-1" in p.errors[0] and "not created by podform" in p.errors[0]
    assert "s-web-1" not in verbs(p)


def test_scale_down_deletes_only_recorded_replicas() -> None:
    """replicas 3 -> 1 deletes replicas 2 and 3 (recorded), keeps 1; deletes run after the rest."""
    d3 = make_desired(make_workload("web", replicas=3))
    cs = [running(d3, "web", n) for n in (1, 2, 3)]
    d1 = make_desired(make_workload("web", replicas=1))
    p = plan(d1, observed(*cs), recorded_for(*cs), {})
    assert verbs(p) == {
        "s-web-1": ("unchanged", "none"),
        "s-web-2": ("delete", "remove"),
        "s-web-3": ("delete", "remove"),
    }
    delete = next(a for a in p.actions if a.name == "s-web-2")
    assert "Container/s-web-1" in delete.depends_on


def test_prune_needs_inventory_and_labels() -> None:
    """Prune removes owned, undeclared containers; a labelled one never recorded stays."""
    old = make_desired(make_workload("web"), make_workload("old"))
    web, gone = running(old, "web"), running(old, "old")
    planted = ObservedContainer(
        "p", "s-planted-1", "running", {LABEL_STACK: "s", LABEL_NAME: "planted"}
    )
    d = make_desired(make_workload("web"))
    p = plan(d, observed(web, gone, planted), recorded_for(web, gone), {}, PlanOptions(prune=True))
    assert verbs(p)["s-old-1"] == ("delete", "remove")
    assert "s-planted-1" not in verbs(p)
    assert any("s-planted-1" in w for w in p.warnings)


def test_without_prune_undeclared_containers_stay_and_the_plan_says_so() -> None:
    """No prune flag: an undeclared workload's container is not touched, and the plan names
    it (compose's "orphan containers"), so a removal from the manifests is not a silent no-op."""
    old = make_desired(make_workload("web"), make_workload("old"))
    web, gone = running(old, "web"), running(old, "old")
    d = make_desired(make_workload("web"))
    p = plan(d, observed(web, gone), recorded_for(web, gone), {})
    assert "s-old-1" not in verbs(p)
    assert p.warnings == (
        "no longer declared, kept because prune is off: s-old-1 (apply --prune removes them)",
    )


def test_corrupt_inventory_skips_prune_with_warning() -> None:
    """A missing/corrupt inventory never means delete: prune is skipped with a warning."""
    old = make_desired(make_workload("web"), make_workload("old"))
    web, gone = running(old, "web"), running(old, "old")
    d = make_desired(make_workload("web"))
    p = plan(d, observed(web, gone), Recorded(valid=False), {}, PlanOptions(prune=True))
    assert "s-old-1" not in verbs(p)
    assert any("prune skipped" in w for w in p.warnings)


def test_prune_to_nothing_refused_without_allow_empty() -> None:
    """An empty manifest set with prune is an error unless --allow-empty."""
    old = make_desired(make_workload("web"))
    web = running(old, "web")
    empty = make_desired()
    refused = plan(empty, observed(web), recorded_for(web), {}, PlanOptions(prune=True))
    assert refused.errors and "--allow-empty" in refused.errors[0]
    allowed = plan(
        empty, observed(web), recorded_for(web), {}, PlanOptions(prune=True, allow_empty=True)
    )
    assert verbs(allowed) == {"s-web-1": ("delete", "remove")}


def build_stack(tmp_path: Path) -> Desired:
    """Image `app` built from ./ctx, used by `web`; `other` runs the pulled base image."""
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Containerfile").write_text("FROM scratch\n")
    app = Image("app", "localhost/app:latest", None, Build(ctx, ctx / "Containerfile", {}, None),
                "IfNotPresent")  # fmt: skip
    web = make_workload("web", image="app", image_ref=app.ref, command=None)
    return make_desired(app, web, make_workload("other"))


def test_image_content_hash_decides_build(tmp_path: Path) -> None:
    """Same content hash: reuse; different: rebuild and replace exactly the workloads using it."""
    d = build_stack(tmp_path)
    app_id = "sha256:" + "b" * 64
    images = [
        ObservedImage(app_id, ("localhost/app:latest",), {LABEL_CONTENT_HASH: "h1"}),
        ObservedImage(IMAGE_ID, (IMAGE_REF,)),
    ]
    web_hash = spec_hash(workload_spec(d.workloads["web"], app_id))
    web = ObservedContainer(
        "w", "s-web-1", "running", {LABEL_STACK: "s", LABEL_NAME: "web", LABEL_SPEC_HASH: web_hash}
    )
    other = running(d, "other")
    obs = Observed(
        containers={"": [web, other]},
        images={"": images},
        volumes={"": []},
        networks={"": [STACK_NETWORK]},
    )
    same = plan(d, obs, recorded_for(web, other), {"app": "h1"})
    assert same.is_empty()
    changed = plan(d, obs, recorded_for(web, other), {"app": "h2"})
    image = next(a for a in changed.actions if a.kind == "Image" and a.name == "app")
    assert (image.verb, image.operation) == (Verb.REPLACE, "build")
    assert verbs(changed) == {"s-web-1": ("replace", "replace"), "s-other-1": ("unchanged", "none")}
    web_action = next(a for a in changed.actions if a.name == "s-web-1")
    assert image.id in web_action.depends_on


@pytest.mark.parametrize(
    ("labels", "in_inventory", "removed"),
    [
        ({LABEL_STACK: "s"}, True, True),
        ({LABEL_STACK: "other"}, True, False),  # another stack's image under the same ref
        ({LABEL_STACK: "s"}, False, False),  # no record: podform cannot prove it built it
    ],
)
def test_a_rebuild_removes_the_previous_build_last(
    tmp_path: Path, labels: dict[str, str], in_inventory: bool, removed: bool
) -> None:
    """The build it supersedes goes after everything else (its containers are replaced by
    then), only when the inventory records it and it carries this stack's labels."""
    d = build_stack(tmp_path)
    old_id = "sha256:" + "b" * 64
    old = ObservedImage(old_id, ("localhost/app:latest",), {LABEL_CONTENT_HASH: "h1", **labels})
    web_hash = spec_hash(workload_spec(d.workloads["web"], old_id))
    web = ObservedContainer(
        "w", "s-web-1", "running", {LABEL_STACK: "s", LABEL_NAME: "web", LABEL_SPEC_HASH: web_hash}
    )
    other = running(d, "other")
    obs = Observed(
        containers={"": [web, other]},
        images={"": [old, ObservedImage(IMAGE_ID, (IMAGE_REF,))]},
        volumes={"": []},
        networks={"": [STACK_NETWORK]},
    )
    rec = recorded_for(web, other)
    if in_inventory:
        rec.images["app"] = {"ref": "localhost/app:latest", "id": old_id, "connection": ""}
    p = plan(d, obs, rec, {"app": "h2"})
    deletes = [a for a in p.actions if a.kind == "Image" and a.verb is Verb.DELETE]
    if not removed:
        assert deletes == []
        return
    (delete,) = deletes
    assert delete.reason == "previous build bbbbbbbbbbbb, superseded by this rebuild"
    assert isinstance(delete.work, RemoveWork)
    assert (delete.work.id, delete.work.keep_if_in_use) == (old_id, True)
    assert delete.work.name == "localhost/app:latest"
    others = {a.id for a in p.actions} - {delete.id}
    assert set(delete.depends_on) >= others - {a.id for a in p.actions if a.verb is Verb.UNCHANGED}


def test_removing_the_previous_build_keeps_the_record_of_the_new_one(tmp_path: Path) -> None:
    """The inventory drops an image record only for the image removed: the superseded
    build's delete comes after the rebuild recorded its new id."""
    d = build_stack(tmp_path)
    old_id, new_id = "sha256:" + "b" * 64, "sha256:" + "c" * 64
    obs = Observed(
        containers={"": []},
        images={"": [ObservedImage(old_id, ("localhost/app:latest",),
                                   {LABEL_CONTENT_HASH: "h1", LABEL_STACK: "s"})]},
        volumes={"": []},
        networks={"": [STACK_NETWORK]},
    )  # fmt: skip
    rec = Recorded(images={"app": {"ref": "localhost/app:latest", "id": old_id, "connection": ""}})
    p = plan(d, obs, rec, {"app": "h2"})
    applied = {
        a.id: Applied(done=True, image_id=new_id if a.verb is Verb.REPLACE else "")
        for a in p.actions
        if a.kind == "Image" and a.name == "app"
    }
    assert len(applied) == 2  # the rebuild and the removal of the previous build
    assert record(rec, p, applied).images["app"]["id"] == new_id


def test_missing_named_volume_is_created_first() -> None:
    """A named volume is created when missing and the container waits for it."""
    d = make_desired(make_workload("db", volumes=(Mount("data", "/data", (), False),)))
    p = plan(d, observed(), Recorded(), {})
    vol = next(a for a in p.actions if a.kind == "Volume")
    assert (vol.verb, vol.name) == (Verb.CREATE, "data")
    db = next(a for a in p.actions if a.kind == "Container")
    assert vol.id in db.depends_on
    p2 = plan(d, observed(volumes=("data",)), Recorded(), {})
    assert next(a for a in p2.actions if a.kind == "Volume").verb is Verb.UNCHANGED


def test_depends_on_orders_and_waits_for_health() -> None:
    """dependsOn healthy: the dependent's action depends on the dependency's and waits for health."""
    db_check = Healthcheck(("true",), interval_s=10.0, timeout_s=2.0, retries=3, start_period_s=0.0)
    d = make_desired(
        make_workload("db", healthcheck=db_check),
        make_workload("api", depends_on=(Dependency("db", "healthy"),)),
    )
    p = plan(d, observed(), Recorded(), {})
    api = next(a for a in p.actions if a.name == "s-api-1")
    assert "Container/s-db-1" in api.depends_on
    assert api.work is not None and getattr(api.work, "healthy_deps", ()) == ("s-db-1",)
    # startPeriod 0 + retries 3 x (interval 10 + timeout 2) + a 5 s margin, not a fixed 120 s
    assert getattr(api.work, "healthy_wait_s", 0) == 41.0


def test_plan_render_is_deterministic_golden() -> None:
    """The rendered plan is stable text: Terraform-style symbols, aligned names, summary line."""
    d = make_desired(make_workload("web"), make_workload("db", state="stopped"))
    web = running(d, "web", state="exited")
    p = plan(d, observed(web), recorded_for(web), {})
    assert p.render() == (
        "Images:\n"
        "      localhost/base:latest  unchanged: localhost/base:latest is present\n"
        "Networks:\n"
        "      s                      unchanged: up to date (spec 8ae342993fed)\n"
        "Containers:\n"
        "    + s-db-1                 create: container does not exist (created stopped)\n"
        "    ~ s-web-1                update (start): container is exited, should be running\n"
        "Plan for stack 's': 1 to create, 1 to update, 0 to replace, 0 to delete, 2 unchanged.\n"
    )


def test_repeated_starts_that_stop_again_become_a_crash_loop() -> None:
    """Podman 4.3 reports no restart count: after podform started the same container 3 times in
    a row and found it stopped again, it is reported crash-looping and not started again."""
    d = make_desired(make_workload("web"))
    c = running(d, "web", state="exited")
    rec = recorded_for(c)
    rec.containers[c.name] = RecordedContainer(c.id, "web", "", {}, "", starts=2)
    assert verbs(plan(d, observed(c), rec, {})) == {"s-web-1": ("update", "start")}
    rec.containers[c.name] = RecordedContainer(c.id, "web", "", {}, "", starts=3)
    p = plan(d, observed(c), rec, {})
    action = next(a for a in p.actions if a.kind == "Container")
    assert (action.verb, action.operation) == (Verb.UNCHANGED, "none")
    assert "started 3 times" in action.warnings[0]
    assert "crash-looping" in p.render(show_unchanged=False)


def pulled_stack(policy: str) -> Desired:
    """Only Image `base`, pulled with POLICY."""
    return make_desired(Image("base", IMAGE_REF, None, None, policy))


@pytest.mark.parametrize(
    ("policy", "present", "want"),
    [
        ("IfNotPresent", True, ("unchanged", "none")),
        ("IfNotPresent", False, ("create", "pull")),
        ("Always", True, ("update", "pull")),
        ("Always", False, ("create", "pull")),
        ("Never", True, ("unchanged", "none")),
    ],
)
def test_pull_policies(policy: str, present: bool, want: tuple[str, str]) -> None:
    """IfNotPresent pulls only a missing image, Always pulls every pass, Never never pulls."""
    d = pulled_stack(policy)
    obs = (
        observed() if present else Observed(containers={"": []}, images={"": []}, volumes={"": []})
    )
    p = plan(d, obs, Recorded(), {})
    image = next(a for a in p.actions if a.kind == "Image")
    assert (image.verb.value, image.operation) == want
    assert not p.errors


def test_pull_policy_never_with_missing_image_is_an_error() -> None:
    """Never + absent image: the plan fails naming the image instead of pulling."""
    d = pulled_stack("Never")
    empty = Observed(containers={"": []}, images={"": []}, volumes={"": []})
    p = plan(d, empty, Recorded(), {})
    assert p.errors == (f"image {IMAGE_REF} is not present and its pull policy is Never",)


def test_hand_built_desired_matches_the_model(tmp_path: Path) -> None:
    """The builders these pure tests use give what model.py builds from the same manifest, so a
    planner test on a hand-built Desired is a test of what users' manifests produce."""
    text = """\
apiVersion: podform/v1
kind: Stack
metadata: {name: s}
---
apiVersion: podform/v1
kind: Machine
metadata: {name: gpu}
---
apiVersion: podform/v1
kind: Workload
metadata: {name: web}
spec: {image: localhost/base:latest, command: [sleep, "3600"], replicas: 2}
"""
    (tmp_path / "stack.yaml").write_text(text)
    loaded = load_desired([str(tmp_path / "stack.yaml")])
    built = make_desired(make_machine("gpu"), make_workload("web", replicas=2))
    assert {n: replace(w, location=None) for n, w in loaded.workloads.items()} == built.workloads
    assert {n: replace(m, location=None) for n, m in loaded.machines.items()} == built.machines
    assert replace(loaded.stack, location=None) == built.stack
