"""Machines in the pipeline: observe them, check preflight, plan them, run them, record them.

Sits beside the executor, under app.py: `Connections` in app.py holds one MachineLayer and
asks it for a machine's API URL (`unix://` + inspect's PodmanSocket path, re-read after every
start) and to execute machine actions through MachineCli. The decisions stay in the pure
machine_planner and preflight modules; this module only wires them to the podman binary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from typing import Any

from reconciler.engine.machine_planner import plan_delete_machines, plan_machines
from reconciler.engine.observed import ClientInfo, Observed, ObservedMachine, Recorded
from reconciler.engine.plan import (
    Action,
    ContainerWork,
    MachineWork,
    Operation,
    Plan,
    PlanOptions,
    Verb,
)
from reconciler.engine.planner import plan as make_plan
from reconciler.engine.preflight import needs_client, preflight
from reconciler.errors import PermanentError, PreflightFailed, TemporaryError
from reconciler.manifests.model import Desired
from reconciler.runtime.backends.machine_cli import MachineCli
from reconciler.runtime.backends.machine_errors import MachineAlreadyRunning
from reconciler.runtime.backends.machine_runner import Runner, SubprocessRunner

# A started machine's API socket can take a moment to appear (gvproxy comes up after the VM).
SOCKET_WAIT_S = 60.0
DELETE_PLACEHOLDER = "--machines is handled by the machine layer"


class MachineLayer:
    """The podman binary's machines for one Reconciler: client, snapshot, sockets."""

    def __init__(self, podman: str | None, runner: Runner | None = None) -> None:
        self._cli = MachineCli(podman or "podman", runner or SubprocessRunner())
        self._lock = threading.Lock()
        self.machines: dict[str, ObservedMachine] = {}
        self._sockets: dict[str, str] = {}
        self._providers: dict[str, str | None] = {}
        self._done: dict[str, set[str]] = {}  # action id -> steps done (retries resume)
        self.assumed_empty: set[str] = set()  # machine keys planned as empty (not running)

    def client(self) -> ClientInfo:
        return self._cli.client_info()

    # --- observe ----------------------------------------------------------------------------

    def observe(self, desired: Desired, recorded: Recorded) -> dict[str, ObservedMachine]:
        """List machines once, only when the stack declares or the inventory records any."""
        self.assumed_empty = set()
        if not desired.machines and not recorded.machines:
            self.machines = {}
            return {}
        found = self.list_all()
        with self._lock:
            for name, machine in desired.machines.items():
                self._providers.setdefault(name, machine.provider)
        return found

    def list_all(self) -> dict[str, ObservedMachine]:
        """Every machine by name (one `list` + `inspect`), remembered with its socket."""
        found: dict[str, ObservedMachine] = {}
        for m in self._cli.list_machines():
            found.setdefault(m.name, m)  # 5.x: one name under two providers; list order wins
        with self._lock:
            self.machines = found
            self._sockets = {n: m.socket_path for n, m in found.items() if m.socket_path}
            self._providers = {n: m.provider for n, m in found.items()}
        return found

    def settle_unobservable(self, observed: Observed, desired: Desired, key: str) -> bool:
        """A machine connection that cannot be observed now; True when it was settled here.

        A declared machine that is not running yet but will be started is taken as empty, so
        its images and workloads are planned as created once it starts. One declared stopped
        (or not declared at all) is reported as not observed.
        """
        machine = self.machines.get(key)
        if machine is not None and machine.state == "running" and machine.socket_path:
            if os.path.exists(machine.socket_path):
                return False
            observed.errors[key] = f"machine {key}: API socket {machine.socket_path} is not up"
            return True
        declared = desired.machines.get(key)
        if declared is not None and declared.state == "running":
            observed.containers[key], observed.images[key], observed.volumes[key] = [], [], []
            self.assumed_empty.add(key)
        elif declared is not None:
            observed.errors[key] = f"machine {key} is declared stopped"
        else:
            observed.errors[key] = f"machine {key} is not running"
        return True

    def url(self, key: str) -> str:
        """`unix://` + the machine's API socket; TemporaryError while it is not up yet."""
        with self._lock:
            path = self._sockets.get(key, "")
        if not path:
            path = self._refresh_socket(key)
        if not path:
            raise TemporaryError(f"machine {key} is not running: its API socket is not known yet")
        if not os.path.exists(path):
            raise TemporaryError(f"machine {key}: API socket {path} is not up yet")
        return "unix://" + path

    def _refresh_socket(self, name: str) -> str:
        path = self._cli.socket_path(name, self._providers.get(name))
        with self._lock:
            if path:
                self._sockets[name] = path
            else:
                self._sockets.pop(name, None)
        return path

    # --- plan -------------------------------------------------------------------------------

    def check(self, desired: Desired) -> ClientInfo | None:
        """Preflight before any machine is listed or changed: PreflightFailed names each fix."""
        client = self.client() if needs_client(desired) else None
        problems = preflight(desired, client)
        if problems:
            raise PreflightFailed(problems)
        return client

    def plan(
        self,
        desired: Desired,
        observed: Observed,
        recorded: Recorded,
        content_hashes: dict[str, str],
        options: PlanOptions,
        client: ClientInfo | None,
    ) -> Plan:
        """The whole plan: machine actions first, then planner.plan with them."""
        machine_actions, errors = plan_machines(
            desired, observed.machines, recorded.machines, client, options
        )
        plan = make_plan(
            desired, observed, recorded, content_hashes, options, machine_actions=machine_actions
        )
        restarted = {
            a.name
            for a in machine_actions
            if isinstance(a.work, MachineWork) and a.work.stop_first and a.work.start_after
        }
        actions = tuple(self._annotate(a, restarted) for a in plan.actions)
        return dataclasses.replace(plan, actions=actions, errors=plan.errors + tuple(errors))

    def _annotate(self, action: Action, restarted: set[str]) -> Action:
        conn = action.connection
        if conn in self.assumed_empty and action.changes_something:
            reason = (
                f"planned as {action.verb.value} once machine {conn} runs "
                "(not running now, so nothing inside it was observed)"
            )
            return dataclasses.replace(action, reason=reason)
        work = action.work
        if (
            conn in restarted
            and isinstance(work, ContainerWork)
            and action.verb is Verb.UNCHANGED
            and work.workload.state == "running"
        ):
            # The machine stops and starts again; its containers need starting after it.
            return dataclasses.replace(
                action,
                verb=Verb.UPDATE,
                operation=Operation.START,
                reason=f"machine {conn} restarts: start it again",
            )
        return action

    def plan_delete(
        self, plan: Plan, desired: Desired, observed: Observed, recorded: Recorded
    ) -> Plan:
        """`delete --machines`: the machine removals, after every other delete."""
        after = tuple(a.id for a in plan.actions)
        actions, warnings = plan_delete_machines(
            desired, observed.machines, recorded.machines, after
        )
        kept = tuple(w for w in plan.warnings if w != DELETE_PLACEHOLDER)
        return dataclasses.replace(
            plan, actions=plan.actions + tuple(actions), warnings=kept + tuple(warnings)
        )

    # --- execute ----------------------------------------------------------------------------

    def execute(self, action: Action) -> None:
        """Run one machine action; steps already done survive the executor's retries."""
        work = action.work
        if not isinstance(work, MachineWork):
            raise PermanentError(f"no machine work for {action.id}")
        done = self._done.setdefault(action.id, set())
        s = work.settings

        def step(name: str, call: Any) -> None:
            if name not in done:
                call()
                done.add(name)

        op, name, provider = action.operation, work.name, work.provider
        if op == "remove":
            step("rm", lambda: self._cli.rm(name, provider))
            self._forget(name)
        elif op in ("init", "replace"):
            if op == "replace":
                step("rm", lambda: self._cli.rm(name, s.get("old_provider") or provider))
                self._forget(name)
            step("init", lambda: self._init(work))
        elif op == "set":
            if work.stop_first:
                step("stop", lambda: self._stop(name, provider))
            step(
                "set",
                lambda: self._cli.set(
                    name,
                    provider,
                    cpus=s.get("cpus"),
                    memory_mib=s.get("memory_mib"),
                    disk_gib=s.get("disk_gib"),
                    rootful=s.get("rootful"),
                ),
            )
        elif op == "stop":
            step("stop", lambda: self._stop(name, provider))
        elif op != "start":
            raise PermanentError(f"no way to {op} a machine")
        if work.start_after or op == "start":
            step("start", lambda: self._start(name, provider))
            step("socket", lambda: self._wait_socket(name))
        self._done.pop(action.id, None)

    def _init(self, work: MachineWork) -> None:
        s = work.settings
        self._cli.init(
            work.name,
            work.provider,
            s.get("cpus"),
            s.get("memory_mib"),
            s.get("disk_gib"),
            s.get("rootful"),
            s.get("volumes") or [],
        )
        self._providers[work.name] = work.provider

    def _start(self, name: str, provider: str | None) -> None:
        # A retried start whose first try got through finds the machine running: fine.
        with contextlib.suppress(MachineAlreadyRunning):
            self._cli.start(name, provider)

    def _stop(self, name: str, provider: str | None) -> None:
        self._cli.stop(name, provider)
        self._forget(name)

    def _forget(self, name: str) -> None:
        with self._lock:
            self._sockets.pop(name, None)

    def _wait_socket(self, name: str) -> None:
        """Re-read the socket after a start (it may move) and wait until it exists."""
        deadline = time.monotonic() + SOCKET_WAIT_S
        delay = 0.2
        while True:
            path = self._refresh_socket(name)
            if path and os.path.exists(path):
                return
            if time.monotonic() + delay > deadline:
                raise TemporaryError(
                    f"machine {name} started, but its API socket {path or '(unknown)'} did not "
                    f"appear within {SOCKET_WAIT_S:g}s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def record_machine(machines: dict[str, dict[str, object]], action: Action) -> None:
    """After a successful machine action: remember what podform created (and its volumes,
    which Podman cannot report), so `delete --machines` removes only those."""
    work = action.work
    if not isinstance(work, MachineWork):
        return
    if action.verb in (Verb.CREATE, Verb.REPLACE):
        machines[action.name] = {
            "provider": work.provider or "",
            "volumes": list(work.settings.get("volumes") or []),
            "created_by": "podform",
        }
