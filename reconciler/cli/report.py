"""What happened, per resource: the apply report (text and JSON) and live progress events.

Sits above the plan and the executor's outcomes; renders them, decides nothing.
"""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING, Any

from reconciler.engine.plan import Operation, Plan
from reconciler.runtime.outcomes import Event, Status

if TYPE_CHECKING:
    from reconciler.runtime.orchestrator import PassResult


def apply_text(
    result: PassResult, color: bool = False, what: str = "Apply", shown: Plan | None = None
) -> str:
    """The plan (unless SHOWN, printed before the pass ran, is still the plan: machines that
    started may have let more be planned), each action's outcome and a summary."""
    plan = result.plan
    out = [] if shown is plan else [plan.render(color=color, show_unchanged=False)]
    ex = result.execution
    if ex is None:
        if not plan.errors:
            out.append(
                "Dry run: nothing was changed.\n" if not plan.is_empty() else "No changes.\n"
            )
        else:
            out.append("Nothing was changed: fix the errors above first.\n")
        return "".join(out)
    counts: dict[str, int] = {}
    for action in plan.actions:
        o = ex.outcomes.get(action.id)
        if o is None:
            continue
        counts[o.status] = counts.get(o.status, 0) + 1
        if (
            action.changes_something
            or o.status is not Status.OK
            or action.operation == Operation.PROBE
        ):
            out.append(
                f"  {o.status:<11} {action.kind} {action.name}: {o.message} ({o.seconds:.1f}s)\n"
            )
    changed = sum(1 for o in ex.outcomes.values() if o.changed)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    state = "interrupted" if ex.interrupted else ("failed" if ex.failed else "complete")
    head = f"{what} {state}"
    # Nothing declared and nothing deleted: no statuses to list ("0 changed; ." otherwise).
    out.append(f"{head}: {changed} changed; {summary}.\n" if summary else f"{head}: 0 changed.\n")
    return "".join(out)


def apply_json(result: PassResult) -> dict[str, Any]:
    data = result.plan.to_json()
    ex = result.execution
    data["applied"] = ex is not None
    data["problems"] = result.problems
    if ex is not None:
        for action in data["actions"]:
            o = ex.outcomes.get(action["id"])
            if o is not None:
                action["result"] = {
                    "status": o.status,
                    "message": o.message,
                    "seconds": round(o.seconds, 3),
                    "container_id": o.container_id or None,
                    "probe": o.probe or None,
                }
        data["interrupted"] = ex.interrupted
        data["ok"] = result.ok
    return data


class EventPrinter:
    """Executor events -> structured log lines; build output streamed on a TTY."""

    def __init__(self, stream: IO[str] = sys.stderr, live: bool = True) -> None:
        from reconciler.cli import log

        self.stream = stream
        self.live = live and stream.isatty()
        self.log = log.get()

    def __call__(self, event: str, **kw: Any) -> None:
        action = kw.get("action")
        name = f"{action.kind}/{action.name}" if action is not None else ""
        if event == Event.PROGRESS:
            if self.live:
                print(f"  [{action.name if action else ''}] {kw.get('line', '')}", file=self.stream)
            else:
                self.log.debug("progress", resource=name, line=kw.get("line", ""))
        elif event == Event.START:
            self.log.info(
                "action started", resource=name, operation=action.operation if action else ""
            )
        elif event == Event.DONE:
            o = kw["outcome"]
            level = self.log.info if o.status is Status.OK else self.log.warning
            if action is not None and (action.changes_something or o.status is not Status.OK):
                level(
                    "action finished",
                    resource=name,
                    operation=action.operation,
                    status=o.status,
                    message=o.message,
                    seconds=round(o.seconds, 3),
                )
        elif event == Event.SKIPPED:
            self.log.warning("action skipped", resource=name, reason=kw.get("reason", ""))
        elif event == Event.RETRY:
            self.log.info("retrying", attempt=kw.get("attempt"), error=kw.get("error"))
