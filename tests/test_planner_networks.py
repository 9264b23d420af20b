"""The pure planning of networks and secrets: create, keep, replace, refuse, prune."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from reconciler.engine.hashing import LABEL_NAME, LABEL_SPEC_HASH, LABEL_STACK
from reconciler.engine.observed import (
    Observed,
    ObservedContainer,
    ObservedImage,
    ObservedNetwork,
    ObservedSecret,
    Recorded,
)
from reconciler.engine.plan import Plan, PlanOptions, Verb
from reconciler.engine.planner import plan
from reconciler.engine.planner_delete import plan_delete
from reconciler.engine.planner_networks import network_hash
from reconciler.manifests.model import Desired, Network
from reconciler.runtime.orchestrator import load_desired

IMAGE = "localhost/base:latest"


def desired(tmp_path: Path, *docs: dict[str, Any]) -> Desired:
    (tmp_path / "tok").write_text("t")
    head = {"apiVersion": "podform/v1", "kind": "Stack", "metadata": {"name": "s"}}
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump_all([head, *docs], sort_keys=False, explicit_start=True))
    return load_desired([str(path)])


def doc(kind: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "podform/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def world(
    *networks: ObservedNetwork,
    secrets: tuple[ObservedSecret, ...] = (),
    containers: tuple[ObservedContainer, ...] = (),
) -> Observed:
    return Observed(
        containers={"": list(containers)},
        images={"": [ObservedImage("sha256:" + "a" * 64, (IMAGE,))]},
        volumes={"": []},
        networks={"": list(networks)},
        secrets={"": list(secrets)},
    )


def owned(name: str, net: Network) -> ObservedNetwork:
    return ObservedNetwork(name, {LABEL_STACK: "s", LABEL_SPEC_HASH: network_hash(net)})


def verbs(p: Plan, kind: str) -> dict[str, str]:
    return {a.name: a.verb.value for a in p.actions if a.kind == kind}


def test_stack_network_is_created_first_and_containers_wait_for_it(tmp_path: Path) -> None:
    """A fresh stack creates `<stack>` before its containers, which depend on that action."""
    d = desired(tmp_path, doc("Workload", "web", image=IMAGE))
    p = plan(d, world(), Recorded(), {})
    assert verbs(p, "Network") == {"s": "create"}
    container = next(a for a in p.actions if a.kind == "Container")
    assert "Network/:s" in container.depends_on


def test_a_foreign_network_of_the_same_name_is_used_and_left_alone(tmp_path: Path) -> None:
    """A network `s` podform did not label is joined as is, never replaced."""
    d = desired(tmp_path, doc("Workload", "web", image=IMAGE))
    p = plan(d, world(ObservedNetwork("s", {})), Recorded(), {})
    [net] = [a for a in p.actions if a.kind == "Network"]
    assert net.verb is Verb.UNCHANGED and "not created by this stack" in net.reason


def test_a_changed_declared_network_is_replaced_and_so_are_its_containers(tmp_path: Path) -> None:
    """The network's config hash is in its users' spec hash: both are replaced together."""
    d = desired(
        tmp_path,
        doc("Network", "b", internal=True),
        doc("Workload", "web", image=IMAGE, networks=["b"]),
    )
    old = Network("b", "s-b", labels={})
    c = ObservedContainer(
        "c1", "s-web-1", "running", {LABEL_STACK: "s", LABEL_NAME: "web", LABEL_SPEC_HASH: "x"}
    )
    p = plan(d, world(owned("s-b", old), containers=(c,)), Recorded(), {})
    assert verbs(p, "Network") == {"s-b": "replace"}
    assert verbs(p, "Container") == {"s-web-1": "replace"}


def test_secret_hmac_decides_unchanged_or_replace(tmp_path: Path) -> None:
    """Same HMAC as recorded: unchanged; another: replace; the plan never holds a value."""
    d = desired(
        tmp_path,
        doc("Secret", "tok", file="./tok"),
        doc("Workload", "web", image=IMAGE, secrets=[{"name": "tok", "env": "T"}]),
    )
    rec = Recorded(
        secrets={":s-tok": {"name": "s-tok", "connection": "", "id": "sid", "hmac": "h1"}}
    )
    obs = world(owned("s", Network("s", "s")), secrets=(ObservedSecret("s-tok", "sid"),))
    same = plan(d, obs, rec, {}, PlanOptions(secret_digests={"tok": "h1"}))
    assert verbs(same, "Secret") == {"s-tok": "unchanged"}
    changed = plan(d, obs, rec, {}, PlanOptions(secret_digests={"tok": "h2"}))
    assert verbs(changed, "Secret") == {"s-tok": "replace"}
    container = next(a for a in changed.actions if a.kind == "Container")
    assert "Secret/:s-tok" in container.depends_on


def test_an_unrecorded_secret_of_the_same_name_stops_the_plan(tmp_path: Path) -> None:
    """A Podman secret `<stack>-<name>` podform did not create is someone else's: an error."""
    d = desired(tmp_path, doc("Secret", "tok", file="./tok"))
    p = plan(
        d,
        world(secrets=(ObservedSecret("s-tok", "other"),)),
        Recorded(),
        {},
        PlanOptions(secret_digests={"tok": "h"}),
    )
    assert any("s-tok already exists" in e for e in p.errors)


def test_prune_keeps_a_network_a_remaining_container_uses(tmp_path: Path) -> None:
    """An undeclared recorded network is pruned only once no remaining container is on it."""
    d = desired(tmp_path, doc("Workload", "web", image=IMAGE, network="bridge"))
    rec = Recorded(networks={":s-old": {"name": "s-old", "connection": ""}})
    net = ObservedNetwork("s-old", {LABEL_STACK: "s"})
    foreign = ObservedContainer("f1", "s-hand-made", "running", {}, networks=("s-old",))
    kept = plan(d, world(net, containers=(foreign,)), rec, {}, PlanOptions(prune=True))
    assert "s-old" not in verbs(kept, "Network")
    assert any("still used by s-hand-made" in w for w in kept.warnings)
    pruned = plan(d, world(net), rec, {}, PlanOptions(prune=True))
    assert verbs(pruned, "Network") == {"s-old": "delete"}


def test_delete_removes_recorded_networks_and_secrets_after_the_containers(tmp_path: Path) -> None:
    """`delete` removes the stack network and declared secrets podform recorded, last."""
    d = desired(
        tmp_path,
        doc("Secret", "tok", file="./tok"),
        doc("Workload", "web", image=IMAGE, secrets=[{"name": "tok", "env": "T"}]),
    )
    rec = Recorded(
        networks={":s": {"name": "s", "connection": ""}},
        secrets={":s-tok": {"name": "s-tok", "connection": "", "id": "sid", "hmac": "h"}},
    )
    c = ObservedContainer(
        "c1", "s-web-1", "running", {LABEL_STACK: "s", LABEL_NAME: "web"}, networks=("s",)
    )
    obs = world(
        ObservedNetwork("s", {LABEL_STACK: "s"}),
        secrets=(ObservedSecret("s-tok", "sid"),),
        containers=(c,),
    )
    p = plan_delete(d, obs, rec, volumes=False, machines=False)
    assert [(a.kind, a.name) for a in p.actions] == [
        ("Container", "s-web-1"),
        ("Network", "s"),
        ("Secret", "s-tok"),
    ]
    assert all("Container/s-web-1" in a.depends_on for a in p.actions[1:])
