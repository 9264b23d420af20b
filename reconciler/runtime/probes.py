"""GPU probes: run a container's probe commands in order and say which failed, if any.

The one probe loop, used by apply (executor), `podform status` and `podform doctor`. The
verdict on one command's result is pure and lives in engine.drift.probe_failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from reconciler.engine.drift import probe_failure

# (mapping name, command, expected output or None, timeout in seconds), as in ContainerWork.probes
ProbeCommand = tuple[str, tuple[str, ...], str | None, float]


class Execs(Protocol):
    """The one engine call probes need (backends.podman_api.PodmanApi has it)."""

    def exec(self, ident: str, command: list[str], timeout_s: float) -> tuple[int, str]: ...


@dataclass(frozen=True)
class ProbeFailed:
    mapping: str  # the DeviceMapping whose probe failed
    why: str  # from engine.drift.probe_failure: "GPU not visible: `cmd`: exit code 1"

    def __str__(self) -> str:
        return f"degraded: {self.why} (probe of {self.mapping})"


def first_failure(
    engine: Execs,
    ident: str,
    probes: Iterable[ProbeCommand],
    call: Callable[[Callable[[], tuple[int, str]]], tuple[int, str]] = lambda f: f(),
) -> ProbeFailed | None:
    """Run each probe in `ident` until one fails; None when all passed. `call` wraps each exec
    (the executor passes its retry policy); engine errors propagate to the caller."""
    for mapping, command, expect, timeout in probes:

        def run(c: tuple[str, ...] = command, t: float = timeout) -> tuple[int, str]:
            return engine.exec(ident, list(c), t)

        code, output = call(run)
        why = probe_failure(command, expect, code, output)
        if why:
            return ProbeFailed(mapping, why)
    return None
