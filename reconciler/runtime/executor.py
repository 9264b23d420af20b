"""Walks a Plan: dependency order, independent actions in parallel, transient failures retried.

It carries no decision logic ("observe once, decide purely, act dumbly", docs/ARCHITECTURE.md):
each action's operation maps to a few backend calls. What it does decide is mechanical: an action
runs when everything it depends on succeeded, is skipped when one of them failed, and is
not started once an interrupt was requested.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Protocol, TypeVar

from reconciler.engine.drift import short
from reconciler.engine.hashing import spec_hash, workload_spec
from reconciler.engine.observed import ObservedContainer, ObservedImage, ProbeResult
from reconciler.engine.plan import (
    Action,
    ContainerWork,
    ImageWork,
    Kind,
    MachineWork,
    NetworkWork,
    Operation,
    Plan,
    RemoveWork,
    SecretWork,
    Verb,
    VolumeWork,
)
from reconciler.errors import PermanentError, PodformError, TemporaryError
from reconciler.labels import LABEL_CONTENT_HASH, LABEL_SPEC_HASH, LABEL_STACK
from reconciler.manifests.model import Workload
from reconciler.runtime.backends.podman_api import BuildFailed
from reconciler.runtime.outcomes import Event, Execution, Outcome, Status
from reconciler.runtime.probes import first_failure
from reconciler.runtime.retry import RetryPolicy, retrying
from reconciler.runtime.secrets import read_value

T = TypeVar("T")


class Engine(Protocol):
    """The container operations the executor needs (backends.podman_api.PodmanApi has them)."""

    def image_id(self, ref: str) -> str | None: ...
    def find_image(self, name: str) -> ObservedImage | None: ...
    def list_containers(self, name_prefix: str) -> list[ObservedContainer]: ...
    def build(
        self,
        ref: str,
        tar: Iterable[bytes],
        containerfile: str,
        labels: dict[str, str],
        args: dict[str, str],
        target: str | None,
        on_line: Callable[[str], None],
    ) -> str: ...
    def pull(self, ref: str, on_line: Callable[[str], None]) -> str: ...
    def remove_image(self, ident: str) -> None: ...
    def create_volume(self, name: str, labels: dict[str, str]) -> None: ...
    def remove_volume(self, name: str) -> None: ...
    def create_network(
        self,
        name: str,
        labels: dict[str, str],
        internal: bool,
        dns: bool,
        subnet: str | None,
        driver: str,
    ) -> None: ...
    def remove_network(self, name: str, force: bool = False) -> None: ...
    def create_secret(self, name: str, value: bytes, labels: dict[str, str]) -> str: ...
    def remove_secret(self, name: str) -> None: ...
    def create_container(
        self, name: str, workload: Workload, image_id: str, labels: dict[str, str]
    ) -> str: ...
    def start(self, ident: str) -> None: ...
    def stop(self, ident: str, timeout_s: float) -> None: ...
    def remove(self, ident: str, timeout_s: float) -> None: ...
    def healthcheck(self, ident: str) -> str: ...
    def exec(self, ident: str, command: list[str], timeout_s: float) -> tuple[int, str]: ...


class Connections(Protocol):
    """Engine per connection key; machines are reconciled through `machine()`."""

    def engine(self, key: str) -> Engine: ...
    def machine(self, action: Action) -> None: ...


class Executor:
    def __init__(
        self,
        connections: Connections,
        *,
        parallel: int = 4,
        stop_event: threading.Event | None = None,
        on_event: Callable[..., None] | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.connections = connections
        self.parallel = max(1, parallel)
        self.stop_event = stop_event or threading.Event()
        self.emit = on_event or (lambda *a, **k: None)
        self.retry = retry or RetryPolicy()

    def run(self, plan: Plan) -> Execution:
        result = Execution()
        actions = {a.id: a for a in plan.actions}
        pending = dict(actions)
        running: dict[Future[Outcome], str] = {}
        with ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="podform") as pool:
            while pending or running:
                for aid, action in list(pending.items()):
                    deps = [d for d in action.depends_on if d in actions]
                    if any(d not in result.outcomes for d in deps):
                        continue
                    del pending[aid]
                    bad = [d for d in deps if not result.outcomes[d].status.succeeded]
                    if bad:
                        result.outcomes[aid] = Outcome(
                            Status.SKIPPED, f"skipped: {actions[bad[0]].name} did not succeed"
                        )
                        self.emit(Event.SKIPPED, action=action, reason=result.outcomes[aid].message)
                    elif self.stop_event.is_set():
                        result.outcomes[aid] = Outcome(
                            Status.INTERRUPTED, "not started: interrupted"
                        )
                        result.interrupted = True
                    else:
                        running[pool.submit(self._timed, action)] = aid
                if not running:
                    if pending:  # unreachable deps (cycles are refused earlier); fail loudly
                        for aid in pending:
                            result.outcomes[aid] = Outcome(
                                Status.FAILED, "dependencies never completed"
                            )
                        pending.clear()
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    aid = running.pop(fut)
                    result.outcomes[aid] = fut.result()
        if self.stop_event.is_set():
            result.interrupted = True
        return result

    def _timed(self, action: Action) -> Outcome:
        # Checked again here, in the worker: with every ready action already queued in the pool,
        # the check before submission alone let a whole queue run after SIGINT.
        if self.stop_event.is_set():
            return Outcome(Status.INTERRUPTED, "not started: interrupted")
        start = time.monotonic()
        try:
            outcome = self._execute(action)
        except PodformError as exc:
            outcome = Outcome(Status.FAILED, str(exc))
        except Exception as exc:  # a bug must fail one action, not hang the pool
            outcome = Outcome(Status.FAILED, f"internal error: {type(exc).__name__}: {exc}")
        outcome.seconds = time.monotonic() - start
        outcome.changed = action.changes_something and outcome.status.succeeded
        self.emit(Event.DONE, action=action, outcome=outcome)
        return outcome

    # --- dispatch -----------------------------------------------------------------------
    def _execute(self, action: Action) -> Outcome:
        if action.operation == Operation.NONE:
            return self._unchanged(action)
        if action.kind == Kind.MACHINE:
            self._retrying(lambda: self.connections.machine(action))
            return Outcome(Status.OK, f"did {action.operation}")
        engine = self.connections.engine(action.connection)
        work = action.work
        self.emit(Event.START, action=action)
        if action.kind == Kind.IMAGE and isinstance(work, ImageWork):
            return self._image(engine, action, work)
        if isinstance(work, VolumeWork):
            self._retrying(lambda: engine.create_volume(work.name, work.labels))
            return Outcome(Status.OK, "did create")
        if isinstance(work, NetworkWork):
            return self._network(engine, action, work)
        if isinstance(work, SecretWork):
            return self._secret(engine, action, work)
        if isinstance(work, RemoveWork) and work.keep_if_in_use:
            return self._remove_superseded(engine, work)
        if isinstance(work, RemoveWork):
            remove = {
                Kind.CONTAINER: lambda: engine.remove(work.id, work.stop_timeout_s),
                Kind.IMAGE: lambda: engine.remove_image(work.id),
                Kind.VOLUME: lambda: engine.remove_volume(work.name),
                Kind.NETWORK: lambda: engine.remove_network(work.name),
                Kind.SECRET: lambda: engine.remove_secret(work.name),
            }[action.kind]
            self._retrying(remove)
            return Outcome(Status.OK, "did remove")
        if isinstance(work, ContainerWork):
            return self._container(engine, action, work)
        raise PermanentError(f"no way to {action.operation} a {action.kind}")

    def _network(self, engine: Engine, action: Action, work: NetworkWork) -> Outcome:
        if action.verb is Verb.REPLACE:
            # Settings cannot change in place; the stack's containers on it are replaced anyway
            # (the network's hash is in their spec), so force takes them down with it.
            self._retrying(lambda: engine.remove_network(work.name, force=True))
        self._retrying(
            lambda: engine.create_network(
                work.name, work.labels, work.internal, work.dns, work.subnet, work.driver
            )
        )
        return Outcome(Status.OK, f"did {action.operation}")

    def _secret(self, engine: Engine, action: Action, work: SecretWork) -> Outcome:
        value = read_value(work.file, work.env)
        if action.verb is Verb.REPLACE:
            # Containers keep the value they were created with; theirs are replaced after this.
            self._retrying(lambda: engine.remove_secret(work.name))
        sid = self._retrying(lambda: engine.create_secret(work.name, value, work.labels))
        return Outcome(Status.OK, f"did {action.operation}", object_id=sid)

    def _unchanged(self, action: Action) -> Outcome:
        work = action.work
        if isinstance(work, ContainerWork):
            return Outcome(Status.OK, "unchanged", container_id=work.old_id)
        return Outcome(Status.OK, "unchanged")

    def _image(self, engine: Engine, action: Action, work: ImageWork) -> Outcome:
        def line(text: str) -> None:
            self.emit(Event.PROGRESS, action=action, line=text)

        if work.build is not None:
            # Another client (or an earlier, interrupted pass) may have built it since the plan.
            built = self._retrying(lambda: _image_by_ref(engine, work.ref))
            if built is not None and built.labels.get(LABEL_CONTENT_HASH) == work.content_hash:
                return Outcome(
                    Status.OK,
                    f"{work.ref} already carries content hash {short(work.content_hash)}: "
                    "build skipped",
                    image_id=built.id,
                )
            build = work.build
            from reconciler.runtime.buildcontext import context_tar  # tarfile: only to build

            tar = context_tar(build)
            rel = build.containerfile.relative_to(build.context).as_posix()
            try:
                image_id = self._retrying(
                    lambda: engine.build(
                        work.ref, tar, rel, work.labels, build.args, build.target, line
                    )
                )
            except BuildFailed as exc:
                return Outcome(Status.FAILED, str(exc))
            return Outcome(Status.OK, f"did build {work.ref}", image_id=image_id)
        if work.pull_policy != "Always":  # IfNotPresent: look before pulling
            present = self._retrying(lambda: engine.image_id(work.ref))
            if present:
                return Outcome(Status.OK, f"{work.ref} is present: pull skipped", image_id=present)
        image_id = self._retrying(lambda: engine.pull(work.ref, line))
        return Outcome(Status.OK, f"did pull {work.ref}", image_id=image_id)

    def _container(self, engine: Engine, action: Action, work: ContainerWork) -> Outcome:
        w = work.workload
        if action.operation == Operation.STOP:
            self._retrying(lambda: engine.stop(work.old_id, w.stop_timeout_s))
            return Outcome(Status.OK, "did stop", container_id=work.old_id)
        self._wait_healthy(engine, work)
        if action.operation == Operation.START:
            self._retrying(lambda: engine.start(work.old_id))
            return self._probe(
                engine, work, Outcome(Status.OK, "did start", container_id=work.old_id)
            )
        if action.operation == Operation.PROBE:
            return self._probe(
                engine, work, Outcome(Status.OK, "unchanged", container_id=work.old_id)
            )
        # create or replace: the image id is read now, since a build may just have made it.
        image_id = self._retrying(lambda: engine.image_id(w.image_ref))
        if not image_id:
            raise PermanentError(f"image {w.image_ref} is not present")
        spec = workload_spec(w, image_id, work.inputs)
        labels = work.labels | {LABEL_SPEC_HASH: spec_hash(spec)}
        if action.verb is Verb.REPLACE and work.old_id:
            # Fast removal with init: true (the init process forwards SIGTERM at once).
            self._retrying(lambda: engine.remove(work.old_id, 2.0 if w.init else w.stop_timeout_s))
        message = f"did {action.operation}"
        try:
            cid = self._retrying(lambda: engine.create_container(work.name, w, image_id, labels))
        except PermanentError:
            # The name may have been taken since the plan by the same container (another
            # podform, a retried create whose answer was lost): the same stack and spec hash
            # is adopted; anything else is still the error it was.
            cid = self._same_container(engine, work.name, labels)
            if not cid:
                raise
            message = f"adopted {work.name}: it exists with this stack's labels and spec hash"
        outcome = Outcome(Status.OK, message, container_id=cid, spec=spec)
        if w.state == "running":
            self._retrying(lambda: engine.start(cid))
            return self._probe(engine, work, outcome, cid)
        return outcome

    def _wait_healthy(self, engine: Engine, work: ContainerWork) -> None:
        """`condition: healthy`: run each dependency's health check until it passes, for as
        long as that check allows (the planner's healthy_wait_s), then fail with its status."""
        for dep in work.healthy_deps:
            self._wait_one_healthy(engine, dep, work.healthy_wait_s)

    def _wait_one_healthy(self, engine: Engine, dep: str, wait_s: float) -> None:
        last = ""

        def check() -> None:
            nonlocal last
            if self.stop_event.is_set():
                raise PermanentError(f"interrupted while waiting for {dep} to become healthy")
            try:
                last = engine.healthcheck(dep)
            except PermanentError as exc:
                last = str(exc)
            if last != "healthy":
                raise TemporaryError(f"{dep} is {last or 'not answering'}")

        policy = RetryPolicy(attempts=1_000_000, max_delay_s=wait_s, initial_s=0.5, max_wait_s=2.0)
        try:
            retrying(check, policy, sleep=self.stop_event.wait)
        except TemporaryError:
            raise PermanentError(
                f"dependency {dep} did not become healthy within {wait_s:g}s, what its health "
                f"check allows (last: {last or 'no answer'})"
            ) from None

    def _same_container(self, engine: Engine, name: str, labels: dict[str, str]) -> str:
        """The id of container `name` when it carries this stack's labels and spec hash."""
        found = self._retrying(lambda: engine.list_containers(name))
        for c in found:
            if (
                c.name == name
                and c.labels.get(LABEL_STACK) == labels.get(LABEL_STACK)
                and c.labels.get(LABEL_SPEC_HASH) == labels.get(LABEL_SPEC_HASH)
            ):
                return c.id
        return ""

    def _probe(
        self, engine: Engine, work: ContainerWork, outcome: Outcome, cid: str = ""
    ) -> Outcome:
        if not work.probes:
            return outcome
        failed = first_failure(engine, cid or work.old_id, work.probes, self._retrying)
        if failed is None:
            outcome.probe = ProbeResult.PASSED
        else:
            outcome.status = Status.DEGRADED
            outcome.probe = ProbeResult.FAILED
            outcome.message = str(failed)
        return outcome

    def _remove_superseded(self, engine: Engine, work: RemoveWork) -> Outcome:
        """A previous build: removed unless it is still the current one or still in use."""
        if self._retrying(lambda: engine.image_id(work.name)) == work.id:
            return Outcome(Status.OK, f"kept: {work.name} still is this build")
        try:
            self._retrying(lambda: engine.remove_image(work.id))
        except PermanentError as exc:
            if "in use" not in str(exc):
                raise
            return Outcome(Status.OK, "kept: a container podform does not manage still uses it")
        return Outcome(Status.OK, "did remove")

    def _retrying(self, call: Callable[[], T]) -> T:
        """The one retry policy (runtime/retry.py), reported as `retry` events."""
        return retrying(
            call,
            self.retry,
            on_retry=lambda attempt, error: self.emit(
                Event.RETRY, attempt=attempt, error=str(error or "")
            ),
        )


def _image_by_ref(engine: Engine, ref: str) -> ObservedImage | None:
    found = engine.find_image(ref)
    return found if found is not None and ref in found.refs else None


__all__ = [
    "Connections",
    "Engine",
    "Executor",
    "MachineWork",
]
