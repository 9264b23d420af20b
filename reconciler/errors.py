"""The exception tree and the location/issue values every layer reports with.

Lowest layer: imports nothing from podform. Two kinds of failure, as in kopf: a
TemporaryError may succeed when retried (the executor is the only place that retries),
a PermanentError will not. Both carry a message written for a human.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Location:
    """Where a YAML node starts: display path of the file, 1-based line and column."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Issue:
    """One problem in the user's input, printed as `file:line:col: Kind "name": $.path: message`."""

    message: str
    location: Location | None = None
    json_path: str = ""  # "$.spec.replicas"; empty when the issue is about the whole document
    subject: str = ""  # 'Workload "llama"'; empty when the document has no usable kind/name

    def __str__(self) -> str:
        parts = [str(self.location)] if self.location else []
        if self.subject:
            parts.append(self.subject)
        if self.json_path:
            parts.append(self.json_path)
        parts.append(self.message)
        return ": ".join(parts)

    def to_json(self) -> dict[str, object]:
        loc = self.location
        return {
            "file": loc.file if loc else None,
            "line": loc.line if loc else None,
            "col": loc.col if loc else None,
            "subject": self.subject or None,
            "path": self.json_path or None,
            "message": self.message,
        }


class PodformError(Exception):
    """Base of every error podform raises on purpose. The message is for the user."""


class InvalidInput(PodformError):
    """The manifests are not acceptable; nothing was changed. Carries every issue found."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = sorted(
            issues, key=lambda i: (i.location or Location("", 0, 0), i.json_path, i.message)
        )
        super().__init__("\n".join(str(i) for i in self.issues))


class TemporaryError(PodformError):
    """May succeed when retried: socket not up yet, 5xx, 409 while a container stops."""


class PermanentError(PodformError):
    """Will fail again the same way: 4xx, build failures, refused by policy."""


class PodmanUnreachable(PermanentError):
    """The Podman API cannot be reached at all (after bounded retries)."""


class Interrupted(PermanentError):
    """SIGINT/SIGTERM arrived while a pass waited to retry; nothing was changed. One-shot
    commands exit 130; watch and sync end the pass and stop as after any pass."""


class PodmanTimeout(TemporaryError):
    """Podman did not answer a call in time (an exec outliving its timeout ends this way)."""


class LockHeld(PermanentError):
    """Another podform process holds this stack's lock."""


class PreflightFailed(PermanentError):
    """A prerequisite (GPU, provider, krunkit, ...) is missing; nothing was changed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))
