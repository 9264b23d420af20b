"""load -> validate -> model -> observe -> plan -> execute -> record, for one pass.

The composition of the pipeline, shared by the CLI commands and watch mode. It holds no
decisions of its own (the planner has them) and prints nothing (the CLI does).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from reconciler.engine.adoption import adopt
from reconciler.engine.hashing import masked_spec
from reconciler.engine.observed import Observed, Recorded, RecordedContainer
from reconciler.engine.plan import (
    Action,
    ContainerWork,
    ImageWork,
    NetworkWork,
    Plan,
    PlanOptions,
    SecretWork,
    Verb,
)
from reconciler.engine.planner_delete import plan_delete
from reconciler.errors import InvalidInput, Issue, PodmanUnreachable, TemporaryError
from reconciler.manifests.model import Desired, build_desired
from reconciler.runtime.executor import DEGRADED, OK, Execution, Executor, Outcome
from reconciler.runtime.inventory import Inventory, state_dir
from reconciler.runtime.machines import MachineLayer, record_machine

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


def load_desired(
    paths: Sequence[str], stdin: BinaryIO | None = None, cache_dir: Path | None = None
) -> Desired:
    """Manifests -> Desired, all-or-nothing: InvalidInput carries every problem found.

    With cache_dir, a document set that already passed schema validation unchanged (same
    bytes-level data, same schemas, same podform) skips jsonschema, whose import and
    compilation are a large share of a no-op apply. References and policy are always checked.
    """
    from reconciler.manifests.loader import load_manifests
    from reconciler.manifests.schema import validate_documents

    docs = load_manifests(paths, stdin=stdin)
    key = _validation_key(docs) if cache_dir else ""
    if not (cache_dir and key in _read_validated(cache_dir)):
        issues: list[Issue] = validate_documents(docs)
        if issues:
            raise InvalidInput(issues)
        if cache_dir:
            _remember_validated(cache_dir, key)
    return build_desired(docs)


# Stack names match [a-z0-9]...: a leading "_" keeps podform's own state files apart from every
# `<stack>.json` inventory (a stack named "validated" once shared this file and lost its inventory).
_VALIDATED_FILE = "_validated.json"
_LEGACY_VALIDATED_FILE = "validated.json"
_VALIDATED_KEEP = 16


def _validation_key(docs: Sequence[Any]) -> str:
    from reconciler import __version__
    from reconciler.engine.hashing import canonical_json, sha256_hex
    from reconciler.manifests.schema import schema_dir

    schemas = b"".join(p.read_bytes() for p in sorted(schema_dir().glob("*.json")))
    data = canonical_json([[d.file, d.data] for d in docs])
    return sha256_hex(__version__.encode() + sha256_hex(schemas).encode() + data.encode())


def _read_validated(cache_dir: Path) -> list[str]:
    import json

    try:
        keys = json.loads((cache_dir / _VALIDATED_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []


def _remember_validated(cache_dir: Path, key: str) -> None:
    """Best effort: a cache that cannot be written only costs the next run some time."""
    import json
    import os
    import tempfile

    keys = [key, *(k for k in _read_validated(cache_dir) if k != key)][:_VALIDATED_KEEP]
    tmp = ""
    try:
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".validated-")
        with os.fdopen(fd, "w") as f:
            json.dump(keys, f)
        os.replace(tmp, cache_dir / _VALIDATED_FILE)
        tmp = ""
        _drop_legacy_cache(cache_dir)
    except OSError:
        if tmp:  # a full disk must not leave temporary files behind
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _drop_legacy_cache(cache_dir: Path) -> None:
    """Remove the old cache file `validated.json` (a JSON list), never a stack's inventory."""
    import json

    legacy = cache_dir / _LEGACY_VALIDATED_FILE
    with contextlib.suppress(OSError, ValueError):
        if isinstance(json.loads(legacy.read_text()), list):
            legacy.unlink()


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


def observe(desired: Desired, recorded: Recorded, connections: Connections) -> Observed:
    """One snapshot: per connection in use, one list call each for containers, images, volumes.

    No separate ping (Podman's /version alone costs more than the three lists): the first
    list call doubles as the reachability check.
    """
    keys = {""} | {w.connection for w in desired.workloads.values()}
    keys |= {i.connection for i in desired.images.values()}
    keys |= {c.connection for c in recorded.containers.values()}
    observed = Observed()
    observed.machines = connections.machines.observe(desired, recorded)
    for key in sorted(keys):
        if key and connections.machines.settle_unobservable(observed, desired, key):
            continue
        engine = connections.engine(key)
        containers_of_stack = functools.partial(engine.list_containers, f"{desired.stack.name}-")
        try:
            # The three lists go out together (they are independent reads), each with retries:
            # Podman 4.x answers 500 to an image list racing another client's removal
            # ("locating item named manifest ..."), which is transient.
            shared = _shared_lists(desired, recorded, engine, key)
            with ThreadPoolExecutor(max_workers=3 + len(shared)) as pool:
                lists = [
                    pool.submit(_first_call, f)
                    for f in (containers_of_stack, engine.list_images, engine.list_volumes)
                ]
                more = {name: pool.submit(_first_call, f) for name, f in shared.items()}
                containers, images, volumes = (f.result() for f in lists)
                if "networks" in more:
                    observed.networks[key] = more["networks"].result()
                if "secrets" in more:
                    observed.secrets[key] = more["secrets"].result()
            observed.containers[key] = containers
            observed.images[key] = images
            observed.volumes[key] = volumes
        except PodmanUnreachable:
            if key == "":
                raise
            observed.errors[key] = f"cannot reach Podman at {engine.url}"
    return observed


def _shared_lists(
    desired: Desired, recorded: Recorded, engine: Any, key: str
) -> dict[str, Callable[[], Any]]:
    """The network and secret list calls this connection needs: only where this stack has
    or had some, so a stack without secrets pays no call for them."""
    prefix = f"{key}:"
    calls: dict[str, Callable[[], Any]] = {}
    if (
        desired.workloads
        or desired.networks
        or any(k.startswith(prefix) for k in recorded.networks)
    ):
        calls["networks"] = engine.list_networks
    if desired.secrets or any(k.startswith(prefix) for k in recorded.secrets):
        calls["secrets"] = engine.list_secrets
    return calls


def _first_call(call: Callable[[], Any], budget_s: float = 5.0) -> Any:
    """A socket that is just coming up gets a few seconds; then one clear error."""
    deadline = time.monotonic() + budget_s
    delay = 0.1
    while True:
        try:
            return call()
        except TemporaryError as exc:
            if time.monotonic() + delay > deadline:
                raise PodmanUnreachable(
                    f"{exc}. Is the Podman service running? Start it with `podman system service` "
                    "or point podform at it with --url / CONTAINER_HOST."
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def content_hashes(desired: Desired) -> dict[str, str]:
    from reconciler.runtime.buildcontext import content_hash

    return {i.name: content_hash(i.build) for i in desired.images.values() if i.build is not None}


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


class Reconciler:
    """One stack's passes. Holds connections across passes (watch mode reuses them)."""

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
        self.observed = Observed()  # the snapshot of the last plan()

    def inventory(self, desired: Desired) -> Inventory:
        return Inventory(state_dir(self.settings.state_dir), desired.stack.name)

    def plan(self, desired: Desired) -> tuple[Plan, Recorded, list[str]]:
        inv = self.inventory(desired)
        recorded = inv.load()
        problems = []
        if inv.exists() and not recorded.valid:
            problems.append(f"inventory {inv.path}: {inv.problem}")
        client = self.connections.machines.check(desired)  # preflight, before any change
        options = self._with_secret_digests(desired, recorded)
        observed = observe(desired, recorded, self.connections)
        recorded = adopt(recorded, observed, desired.stack.name)  # what a killed pass left
        plan = self.connections.machines.plan(
            desired, observed, recorded, content_hashes(desired), options, client
        )
        self.observed = observed  # status reads the same snapshot
        return plan, recorded, problems

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

    def apply(self, desired: Desired, dry_run: bool = False) -> PassResult:
        inv = self.inventory(desired)
        with inv.lock(self.settings.lock_timeout):
            plan, recorded, problems = self.plan(desired)
            result = PassResult(desired, plan, problems=problems)
            if dry_run or plan.errors:
                return result
            execution = self._execute(plan)
            result.execution = execution
            after = record(recorded, plan, execution)
            # A no-op pass leaves the inventory as it was: no write, no fsync.
            if after != recorded or not recorded.valid:
                inv.save(after)
            return result

    def delete(self, desired: Desired, volumes: bool, machines: bool) -> PassResult:
        inv = self.inventory(desired)
        with inv.lock(self.settings.lock_timeout):
            recorded = inv.load()
            observed = observe(desired, recorded, self.connections)
            plan = plan_delete(desired, observed, recorded, volumes=volumes, machines=machines)
            if machines:
                plan = self.connections.machines.plan_delete(plan, desired, observed, recorded)
            execution = self._execute(plan)
            inv.save(record(recorded, plan, execution))
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


def record(before: Recorded, plan: Plan, execution: Execution) -> Recorded:
    """The inventory after a pass: what podform created and the spec it applied.

    A container is recorded when it was created now or is a declared replica that is up to
    date; a deleted one is dropped. A failed replace keeps the old record (the old container
    may still exist), so the next pass still knows it.
    """
    after = Recorded(valid=True, secret_key=before.secret_key)
    if before.valid:
        after.containers = dict(before.containers)
        after.images = dict(before.images)
        after.volumes = dict(before.volumes)
        after.machines = dict(before.machines)
        after.networks = dict(before.networks)
        after.secrets = dict(before.secrets)
    for action in plan.actions:
        outcome: Outcome | None = execution.outcomes.get(action.id)
        if outcome is None or outcome.status not in (OK, DEGRADED):
            continue
        if action.verb is Verb.DELETE:
            if action.kind == "Container":
                after.containers.pop(action.name, None)
            elif action.kind == "Image":
                after.images.pop(action.name, None)
            elif action.kind == "Volume":
                after.volumes.pop(f"{action.connection}:{action.name}", None)
            elif action.kind == "Machine":
                after.machines.pop(action.name, None)
            elif action.kind == "Network":
                after.networks.pop(f"{action.connection}:{action.name}", None)
            elif action.kind == "Secret":
                after.secrets.pop(f"{action.connection}:{action.name}", None)
            continue
        if action.kind == "Machine":
            record_machine(after.machines, action)
        work = action.work
        if action.kind == "Container" and isinstance(work, ContainerWork):
            prev = after.containers.get(action.name)
            spec = (
                masked_spec(outcome.spec)
                if outcome.spec is not None
                else (prev.spec if prev else {})
            )
            probe = outcome.probe or (prev.probe if prev and outcome.spec is None else "")
            after.containers[action.name] = RecordedContainer(
                outcome.container_id or work.old_id,
                work.workload.name,
                action.connection,
                spec,
                probe,
                _starts_in_a_row(action, prev),
            )
        elif (
            action.kind == "Image"
            and isinstance(work, ImageWork)
            and action.verb is not Verb.UNCHANGED
        ):
            after.images[action.name] = {
                "ref": work.ref,
                "id": outcome.image_id,
                "connection": action.connection,
                "content_hash": work.content_hash,
            }
        elif isinstance(work, NetworkWork) and action.verb is not Verb.UNCHANGED:
            after.networks[f"{action.connection}:{action.name}"] = {
                "name": action.name,
                "connection": action.connection,
            }
        elif isinstance(work, SecretWork) and action.verb is not Verb.UNCHANGED:
            after.secrets[f"{action.connection}:{action.name}"] = {
                "name": action.name,
                "connection": action.connection,
                "id": outcome.object_id,
                "hmac": work.digest,
            }
        elif action.kind == "Volume" and action.verb is Verb.CREATE:
            after.volumes[f"{action.connection}:{action.name}"] = {
                "name": action.name,
                "connection": action.connection,
            }
    return after


def _starts_in_a_row(action: Action, prev: RecordedContainer | None) -> int:
    """Count podform's starts of a container that keeps stopping; any pass that finds it as
    declared (or a new container) resets the count. The planner reports a crash loop from it."""
    if action.operation == "start":
        return (prev.starts if prev else 0) + 1
    if action.warnings and prev is not None:  # left alone as crash-looping: keep the count
        return prev.starts
    return 0


def manifest_paths(paths: Sequence[str]) -> list[Path]:
    from reconciler.manifests.loader import manifest_files

    return manifest_files(paths)
