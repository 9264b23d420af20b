"""Machines in the pipeline: list them, run preflight, execute machine actions, find sockets.

Sits beside the executor, under orchestrator.py: `Connections` there holds one MachineLayer
and asks it for a machine's API URL (`unix://` + inspect's PodmanSocket path, re-read after
every start) and to execute machine actions through MachineCli. It decides nothing: the
machine plan and the two phases are made by the pure engine (machine_planner, phases,
preflight); this module only wires them to the podman binary.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

from reconciler.engine.observed import ClientInfo, ObservedMachine, Recorded
from reconciler.engine.plan import Action, MachineWork, Operation
from reconciler.engine.preflight import needs_client, preflight
from reconciler.errors import PermanentError, PreflightFailed, TemporaryError
from reconciler.manifests.model import Desired
from reconciler.runtime.backends.machine_cli import MachineCli
from reconciler.runtime.backends.machine_errors import MachineAlreadyRunning
from reconciler.runtime.backends.machine_runner import Runner, SubprocessRunner
from reconciler.runtime.retry import RetryPolicy, retrying

# A started machine's API socket can take a moment to appear (gvproxy comes up after the VM).
SOCKET_WAIT = RetryPolicy(attempts=1_000, max_delay_s=60.0, initial_s=0.2, max_wait_s=2.0)


class MachineLayer:
    """The podman binary's machines for one Reconciler: client, snapshot, sockets."""

    def __init__(self, podman: str | None, runner: Runner | None = None) -> None:
        self._cli = MachineCli(podman or "podman", runner or SubprocessRunner())
        self._lock = threading.Lock()
        self.machines: dict[str, ObservedMachine] = {}
        self._sockets: dict[str, str] = {}
        self._providers: dict[str, str | None] = {}
        self._done: dict[str, set[str]] = {}  # action id -> steps done (retries resume)
        self.initialised: set[str] = set()  # machines `init` created (the inventory's truth)

    def client(self) -> ClientInfo:
        return self._cli.client_info()

    # --- observe ----------------------------------------------------------------------------

    def observe(self, desired: Desired, recorded: Recorded) -> dict[str, ObservedMachine]:
        """List machines once, only when the stack declares or the inventory records any."""
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

    # --- preflight --------------------------------------------------------------------------

    def check(self, desired: Desired) -> ClientInfo | None:
        """Preflight before any machine is listed or changed: PreflightFailed names each fix."""
        client = self.client() if needs_client(desired) else None
        problems = preflight(desired, client)
        if problems:
            raise PreflightFailed(problems)
        return client

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
        if op == Operation.REMOVE:
            step("rm", lambda: self._cli.rm(name, provider))
            self._forget(name)
        elif op in (Operation.INIT, Operation.REPLACE):
            if op == Operation.REPLACE:
                step("rm", lambda: self._cli.rm(name, s.get("old_provider") or provider))
                self._forget(name)
            step("init", lambda: self._init(work))
        elif op == Operation.SET:
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
        elif op == Operation.STOP:
            step("stop", lambda: self._stop(name, provider))
        elif op != Operation.START:
            raise PermanentError(f"no way to {op} a machine")
        if work.start_after or op == Operation.START:
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
        with self._lock:
            self._providers[work.name] = work.provider
            self.initialised.add(work.name)

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
        last = [""]

        def socket_up() -> None:
            last[0] = self._refresh_socket(name)
            if not (last[0] and os.path.exists(last[0])):
                raise TemporaryError(f"machine {name}: API socket is not up yet")

        try:
            retrying(socket_up, SOCKET_WAIT)
        except TemporaryError:
            raise TemporaryError(
                f"machine {name} started, but its API socket {last[0] or '(unknown)'} did not "
                f"appear within {SOCKET_WAIT.max_delay_s:g}s"
            ) from None
