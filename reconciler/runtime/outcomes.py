"""What executing a plan reports: each action's Outcome (with its Status), the Execution of a
whole plan, and the Events the executor streams while it runs.

Plain values, shared by the executor that makes them, the orchestrator that records them and
the CLI that prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.engine.observed import ProbeResult


class Status(StrEnum):
    """How one action ended; OK and DEGRADED count as done for its dependents."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"
    DEGRADED = "degraded"  # done, but its probe failed

    @property
    def succeeded(self) -> bool:
        return self in (Status.OK, Status.DEGRADED)


class Event(StrEnum):
    """What the executor tells its `on_event` sink, with keyword details per event."""

    START = "start"  # action=
    PROGRESS = "progress"  # action=, line=
    DONE = "done"  # action=, outcome=
    SKIPPED = "skipped"  # action=, reason=
    RETRY = "retry"  # attempt=, error=


@dataclass
class Outcome:
    status: Status
    message: str = ""
    container_id: str = ""
    image_id: str = ""
    spec: dict[str, Any] | None = None
    probe: ProbeResult = ProbeResult.NOT_RUN
    object_id: str = ""  # a created secret's id
    seconds: float = 0.0
    changed: bool = False  # the action changed something in Podman


@dataclass
class Execution:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def failed(self) -> bool:
        return any(o.status is not Status.OK for o in self.outcomes.values())

    @property
    def changed(self) -> bool:
        return any(o.changed for o in self.outcomes.values())
