"""Why an existing container differs from its spec: field-level changes, crash loops, probes.

Pure helpers of the planner: the spec hash decides *whether* a container is replaced; these
say *what* changed (from the last applied spec in the inventory) and whether a container
that keeps stopping should be left alone and reported; probe_failure() is the verdict on
one GPU probe's result (runtime/probes.py runs them).
"""

from __future__ import annotations

from typing import Any

from reconciler.engine.observed import ObservedContainer, RecordedContainer
from reconciler.engine.plan import Change

# A container that Podman has restarted this often (or podform has started this often in a
# row) and that is not up is left alone and reported: starting it every pass would hide the
# real problem and churn the host.
CRASH_LOOP_RESTARTS = 3


def short(h: str) -> str:
    return h.removeprefix("sha256:")[:12]


def crash_loop(c: ObservedContainer, rec: RecordedContainer | None, should_run: bool) -> str:
    """Podman's own restart count where it reports one (not 4.3's list), else the number
    of times podform started this container in a row only to find it stopped again."""
    podman_restarts = c.restart_count >= CRASH_LOOP_RESTARTS and not c.running
    our_starts = rec is not None and rec.id == c.id and rec.starts >= CRASH_LOOP_RESTARTS
    if c.state == "restarting" or podman_restarts:
        return (
            f"crash-looping: restarted {c.restart_count} times, last exit code "
            f"{c.exit_code}; see `podman logs {c.name}`"
        )
    if should_run and not c.running and our_starts:
        assert rec is not None
        return (
            f"crash-looping: started {rec.starts} times and stopped again each time, last "
            f"exit code {c.exit_code}; see `podman logs {c.name}` (fix the cause, then "
            f"`podman start {c.name}` or change the workload)"
        )
    return ""


def field_changes(old: Any, new: Any, prefix: str = "") -> list[Change]:
    """Field paths that differ between two specs, as `env.LEVEL: "info" -> "debug"`."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[Change] = []
        for k in sorted(set(old) | set(new), key=str):
            if k == "v":
                continue
            path = f"{prefix}.{k}" if prefix else str(k)
            if k not in old:
                out.append(Change(path, None, new[k]))
            elif k not in new:
                out.append(Change(path, old[k], None))
            else:
                out.extend(field_changes(old[k], new[k], path))
        return out
    if old != new:
        if prefix == "image" and isinstance(old, str) and isinstance(new, str):
            return [Change(prefix, short(old), short(new))]
        return [Change(prefix, old, new)]
    return []


def probe_failure(command: tuple[str, ...], expect: str | None, code: int, output: str) -> str:
    """Why a GPU probe failed ("" when it passed): a non-zero exit, or `expect` not in output."""
    if code != 0:
        why = f"exit code {code}"
    elif expect is not None and expect not in output:
        why = f"output lacks {expect!r}"
    else:
        return ""
    return f"GPU not visible: `{' '.join(command)}`: {why}"
