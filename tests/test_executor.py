"""The executor against a scripted Engine (our own Protocol, not HTTP): ordering, parallelism,
retries of transient faults only, skipping of dependents, deletes last, interrupts."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.hashing import spec_hash, workload_spec
from reconciler.engine.observed import (
    Observed,
    ObservedContainer,
    ObservedImage,
    ProbeResult,
    Recorded,
)
from reconciler.engine.plan import (
    Action,
    ContainerWork,
    ImageWork,
    Kind,
    Operation,
    Plan,
    RemoveWork,
    Verb,
)
from reconciler.engine.planner import plan
from reconciler.errors import PermanentError, TemporaryError
from reconciler.labels import LABEL_CONTENT_HASH, LABEL_SPEC_HASH, LABEL_STACK
from reconciler.runtime.executor import Executor, RetryPolicy
from reconciler.runtime.orchestrator import load_desired
from reconciler.runtime.outcomes import Status

FAST = RetryPolicy(attempts=4, max_delay_s=5, initial_s=0.001, max_wait_s=0.01)
IMAGE = "localhost/base:latest"


class ScriptedEngine:
    """Records calls; `fail` maps a container name to the errors its create raises in turn."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail: dict[str, list[Exception]] = {}
        self.probe_output = "renderD128"
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.delay = 0.0
        self.health = "healthy"
        self.containers: list[ObservedContainer] = []  # what list_containers reports
        self.images: list[ObservedImage] = []

    def list_containers(self, name_prefix: str) -> list[ObservedContainer]:
        return [c for c in self.containers if c.name.startswith(name_prefix)]

    def find_image(self, name: str) -> ObservedImage | None:
        return next((i for i in self.images if name in i.refs or name == i.id), None)

    def _note(self, op: str, name: str) -> None:
        with self.lock:
            self.calls.append((op, name))

    def image_id(self, ref: str) -> str | None:
        return "sha256:" + "a" * 64

    def create_container(
        self, name: str, workload: Any, image_id: str, labels: dict[str, str]
    ) -> str:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(self.delay)
            errors = self.fail.get(name)
            if errors:
                raise errors.pop(0)
            self._note("create", name)
            return f"id-{name}"
        finally:
            with self.lock:
                self.active -= 1

    def start(self, ident: str) -> None:
        self._note("start", ident)

    def stop(self, ident: str, timeout_s: float) -> None:
        self._note("stop", ident)

    def remove(self, ident: str, timeout_s: float) -> None:
        self._note("remove", ident)

    def exec(self, ident: str, command: list[str], timeout_s: float) -> tuple[int, str]:
        self._note("exec", ident)
        return 0, self.probe_output

    def healthcheck(self, ident: str) -> str:
        self._note("healthcheck", ident)
        return self.health

    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        self._note("volume", name)

    def remove_volume(self, name: str) -> None:
        self._note("remove_volume", name)

    def remove_image(self, ident: str) -> None:
        self._note("remove_image", ident)

    def create_network(self, name: str, labels: dict[str, str], *settings: Any) -> None:
        self._note("network", name)

    def remove_network(self, name: str, force: bool = False) -> None:
        self._note("remove_network", name)

    def create_secret(self, name: str, value: bytes, labels: dict[str, str]) -> str:
        self._note("secret", name)
        return f"id-{name}"

    def remove_secret(self, name: str) -> None:
        self._note("remove_secret", name)

    def build(self, *a: Any, **k: Any) -> str:
        raise AssertionError("no builds in these tests")

    def pull(self, ref: str, on_line: Callable[[str], None]) -> str:
        raise AssertionError("no pulls in these tests")


class Conns:
    def __init__(self, engine: ScriptedEngine) -> None:
        self.e = engine

    def engine(self, key: str) -> ScriptedEngine:
        return self.e

    def machine(self, action: Action) -> None:
        raise AssertionError("no machines here")


def stack_plan(tmp_path: Path, body: str) -> Plan:
    (tmp_path / "s.yaml").write_text(
        "apiVersion: podform/v1\nkind: Stack\nmetadata: {name: s}\n" + body
    )
    d = load_desired([str(tmp_path / "s.yaml")])
    obs = Observed(
        containers={"": []},
        images={"": [ObservedImage("sha256:" + "a" * 64, (IMAGE,))]},
        volumes={"": []},
    )
    return plan(d, obs, Recorded(), {})


def wl(name: str, extra: str = "") -> str:
    return (
        f"---\napiVersion: podform/v1\nkind: Workload\nmetadata: {{name: {name}}}\n"
        f"spec:\n  image: {IMAGE}\n{extra}"
    )


def test_dependencies_run_first(tmp_path: Path) -> None:
    """A dependent container is created only after its dependency was created and started."""
    p = stack_plan(tmp_path, wl("db") + wl("api", "  dependsOn: [db]\n"))
    e = ScriptedEngine()
    result = Executor(Conns(e), retry=FAST).run(p)
    assert {
        k: (o.status, o.message) for k, o in result.outcomes.items() if o.status != Status.OK
    } == {}
    order = [c for c in e.calls if c[0] in ("create", "start")]
    assert order.index(("start", "id-s-db-1")) < order.index(("create", "s-api-1"))


def test_independent_actions_run_in_parallel_bounded(tmp_path: Path) -> None:
    """Independent creates overlap, but never more than --parallel at once."""
    p = stack_plan(tmp_path, "".join(wl(f"w{i}") for i in range(6)))
    e = ScriptedEngine()
    e.delay = 0.05
    Executor(Conns(e), parallel=3, retry=FAST).run(p)
    assert e.peak == 3


def test_transient_errors_are_retried(tmp_path: Path) -> None:
    """A TemporaryError (socket not up, 5xx) is retried and the action then succeeds."""
    p = stack_plan(tmp_path, wl("web"))
    e = ScriptedEngine()
    e.fail["s-web-1"] = [TemporaryError("connection refused"), TemporaryError("HTTP 500")]
    result = Executor(Conns(e), retry=FAST).run(p)
    assert result.outcomes["Container/s-web-1"].status == Status.OK


def test_retries_are_bounded(tmp_path: Path) -> None:
    """A fault that stays transient fails after the bounded attempts, not forever."""
    p = stack_plan(tmp_path, wl("web"))
    e = ScriptedEngine()
    e.fail["s-web-1"] = [TemporaryError("still down")] * 10
    result = Executor(Conns(e), retry=FAST).run(p)
    assert result.outcomes["Container/s-web-1"].status == Status.FAILED
    assert len(e.fail["s-web-1"]) == 10 - FAST.attempts


def test_permanent_errors_are_not_retried_and_skip_dependents_not_siblings(tmp_path: Path) -> None:
    """A 4xx fails at once; its dependent is skipped; an independent sibling still runs."""
    p = stack_plan(tmp_path, wl("db") + wl("api", "  dependsOn: [db]\n") + wl("other"))
    e = ScriptedEngine()
    e.fail["s-db-1"] = [PermanentError("bad request"), PermanentError("bad request")]
    result = Executor(Conns(e), retry=FAST).run(p)
    assert result.outcomes["Container/s-db-1"].status == Status.FAILED
    assert len(e.fail["s-db-1"]) == 1  # tried once
    assert result.outcomes["Container/s-api-1"].status == Status.SKIPPED
    assert "s-db-1" in result.outcomes["Container/s-api-1"].message
    assert result.outcomes["Container/s-other-1"].status == Status.OK
    assert result.failed


def test_deletes_run_only_after_everything_else_succeeded(tmp_path: Path) -> None:
    """A delete depending on a failed action is skipped, so nothing is removed on a bad pass."""
    base = stack_plan(tmp_path, wl("web"))
    everything = tuple(a.id for a in base.actions)
    delete = Action(
        "Container/s-old-1",
        Kind.CONTAINER,
        "s-old-1",
        Verb.DELETE,
        Operation.REMOVE,
        "prune",
        "",
        (),
        everything,
        RemoveWork("s-old-1", "id-old", 1.0),
    )
    p = Plan("s", (*base.actions, delete))
    e = ScriptedEngine()
    e.fail["s-web-1"] = [PermanentError("no")]
    result = Executor(Conns(e), retry=FAST).run(p)
    assert result.outcomes["Container/s-old-1"].status == Status.SKIPPED
    assert ("remove", "id-old") not in e.calls
    e2 = ScriptedEngine()
    assert Executor(Conns(e2), retry=FAST).run(p).outcomes["Container/s-old-1"].status == Status.OK
    assert e2.calls[-1] == ("remove", "id-old")


def test_interrupt_finishes_running_and_starts_nothing_new(tmp_path: Path) -> None:
    """After the stop event, running actions finish and the rest are marked interrupted."""
    p = stack_plan(tmp_path, wl("a") + wl("b", "  dependsOn: [a]\n"))
    e = ScriptedEngine()
    e.delay = 0.2
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    result = Executor(Conns(e), stop_event=stop, retry=FAST).run(p)
    assert result.outcomes["Container/s-a-1"].status == Status.OK
    assert result.outcomes["Container/s-b-1"].status == Status.INTERRUPTED
    assert result.interrupted


@pytest.mark.parametrize(
    ("output", "status"), [("card0 renderD128", Status.OK), ("llvmpipe", Status.DEGRADED)]
)
def test_probe_decides_degraded(tmp_path: Path, output: str, status: str) -> None:
    """After start the mapping's probe runs; a missing expect text marks the action degraded."""
    mapping = (
        "---\napiVersion: podform/v1\nkind: DeviceMapping\nmetadata: {name: gpu}\nspec:\n"
        "  devices: [/dev/zero:/dev/dri/renderD128]\n"
        "  probe: {command: [ls, /dev/dri], expect: renderD128}\n"
    )
    p = stack_plan(tmp_path, mapping + wl("web", "  devices: [gpu]\n"))
    e = ScriptedEngine()
    e.probe_output = output
    o = Executor(Conns(e), retry=FAST).run(p).outcomes["Container/s-web-1"]
    assert o.status == status
    assert o.probe == (ProbeResult.PASSED if status is Status.OK else ProbeResult.FAILED)
    if status == Status.DEGRADED:
        assert "GPU not visible" in o.message


A_ID = "sha256:" + "a" * 64


def test_create_finding_the_same_container_adopts_it(tmp_path: Path) -> None:
    """A create whose name was taken since the plan by a container of this stack with the same
    spec hash adopts it (and starts it); one with another hash is still a failure."""
    p = stack_plan(tmp_path, wl("web"))
    [action] = [a for a in p.actions if a.kind == "Container"]
    assert isinstance(action.work, ContainerWork)
    same = action.work.labels | {
        LABEL_SPEC_HASH: spec_hash(workload_spec(action.work.workload, A_ID))
    }
    e = ScriptedEngine()
    e.fail["s-web-1"] = [PermanentError("Podman: the container name is already in use")]
    e.containers = [ObservedContainer("id-raced", "s-web-1", "created", same)]
    o = Executor(Conns(e), retry=FAST).run(p).outcomes[action.id]
    assert (o.status, o.container_id) == (Status.OK, "id-raced")
    assert "adopted s-web-1" in o.message and ("start", "id-raced") in e.calls

    e = ScriptedEngine()
    e.fail["s-web-1"] = [PermanentError("Podman: the container name is already in use")]
    e.containers = [
        ObservedContainer("id-other", "s-web-1", "created", same | {LABEL_SPEC_HASH: "x"})
    ]
    o = Executor(Conns(e), retry=FAST).run(p).outcomes[action.id]
    assert o.status == Status.FAILED and "already in use" in o.message


def image_plan(work: ImageWork) -> Plan:
    op = Operation.PULL if work.build is None else Operation.BUILD
    return Plan("s", (Action("Image/:x", Kind.IMAGE, "x", Verb.CREATE, op, "r", "", (), (), work),))


def test_pull_if_not_present_looks_first(tmp_path: Path) -> None:
    """IfNotPresent: an image that appeared since the plan is not pulled (the engine's pull
    would fail the test)."""
    work = ImageWork(IMAGE, None, "", {}, "IfNotPresent")
    o = Executor(Conns(ScriptedEngine()), retry=FAST).run(image_plan(work)).outcomes["Image/:x"]
    assert (o.status, o.image_id) == (Status.OK, A_ID)
    assert o.message == f"{IMAGE} is present: pull skipped"


def test_build_of_a_ref_already_carrying_the_hash_is_skipped(tmp_path: Path) -> None:
    """A build whose ref already carries the content hash (built by another client since the
    plan) is skipped (the engine's build would fail the test)."""
    from reconciler.manifests.model import Build

    build = Build(tmp_path, tmp_path / "Containerfile", {}, None)
    work = ImageWork("localhost/x:latest", build, "sha256:" + "c" * 64, {}, "IfNotPresent")
    e = ScriptedEngine()
    labels = {LABEL_CONTENT_HASH: work.content_hash, LABEL_STACK: "s"}
    e.images = [ObservedImage("sha256:built", ("localhost/x:latest",), labels)]
    o = Executor(Conns(e), retry=FAST).run(image_plan(work)).outcomes["Image/:x"]
    assert (o.status, o.image_id) == (Status.OK, "sha256:built")
    assert "build skipped" in o.message


def test_healthy_dependency_waits_what_its_healthcheck_allows(tmp_path: Path) -> None:
    """The planner sets the wait to startPeriod + retries x (interval + timeout) + margin; a
    dependency that stays unhealthy fails its dependent after that long, not 120 s."""
    hc = '{command: ["true"], interval: 2s, timeout: 1s, retries: 2, startPeriod: 3s}'
    db = wl("db", f"  healthcheck: {hc}\n")
    p = stack_plan(tmp_path, db + wl("api", "  dependsOn: [{name: db, condition: healthy}]\n"))
    api = next(a for a in p.actions if a.name == "s-api-1")
    assert isinstance(api.work, ContainerWork)
    assert api.work.healthy_wait_s == 3 + 2 * (2 + 1) + 5
    short = dataclasses.replace(api, work=dataclasses.replace(api.work, healthy_wait_s=1.0))
    e = ScriptedEngine()
    e.health = "unhealthy"
    start = time.monotonic()
    o = Executor(Conns(e), retry=FAST).run(Plan("s", (short,))).outcomes[api.id]
    assert 0.9 < time.monotonic() - start < 5
    assert o.status == Status.FAILED
    assert "did not become healthy within 1s" in o.message and "last: unhealthy" in o.message
